import {Args, Flags} from '@oclif/core'

import {BaseCommand} from '../../src/cli/base-command.js'
import type {FetchResult} from '../../src/wal/fetch.js'
import {repositoryLocationFlags} from '../../src/cli/flags.js'

export default class WalFetch extends BaseCommand<typeof WalFetch> {
  static preloadConfig = false
  static summary = "Restore one archived WAL file (PostgreSQL's restore_command)."
  static description = `Exit status, as PostgreSQL reads it:
  0    the file is at DEST, decompressed and checksum-verified
  1    the file is not in the archive (the normal end of the archive; nothing printed)
  126  the archive has the file but it cannot be used (checksum mismatch, damaged object), or the
       repository is unreachable / misconfigured: PostgreSQL stops recovery instead of promoting
       early with data missing. The reason is printed on stderr (it lands in the server log).`
  static examples = [
    "restore_command = '<%= config.bin %> wal fetch %f %p --repo /var/backups/charge-ops --stack charge-analysis'",
    '<%= config.bin %> wal fetch 000000010000000000000003 /tmp/seg --repo /var/backups/charge-ops --stack charge-analysis',
    "restore_command = '<%= config.bin %> wal fetch %f %p --repo /var/backups/charge-ops --stack charge-analysis --prefetch 8 --process-max 2'",
  ]
  static args = {
    name: Args.string({required: true, description: 'the WAL file name (%f)'}),
    destination: Args.string({required: true, description: 'where to write it (%p)'}),
  }
  static flags = {
    ...repositoryLocationFlags,
    engine: Flags.string({
      options: ['native', 'wal-g'],
      default: 'native',
      description: 'wal-g: run `wal-g wal-fetch` (its exit status is passed on)',
    }),
    prefetch: Flags.integer({
      min: 0,
      max: 256,
      default: 0,
      description:
        'also fetch the next K segments in parallel into the spool; later calls are served from it (docs/pitr.md)',
    }),
    'process-max': Flags.integer({
      min: 1,
      max: 64,
      default: 2,
      description: 'segments the prefetch worker fetches at once',
    }),
    spool: Flags.string({description: 'the spool directory (default: charge-ops-spool in the data directory)'}),
  }

  /** charge-ops.yaml is read only when the command line does not say where the repository is. */
  private async settingsIfNeeded(always = false) {
    const settings =
      always || !(this.flags.repo ?? process.env.CHARGE_OPS_REPO) || !this.flags.stack
        ? await this.loadSettings()
        : undefined
    return () => settings ?? {stack: ''}
  }

  async run(): Promise<FetchResult | undefined> {
    const {FETCH_ABORT_EXIT, FETCH_MISSING_EXIT, fetchWal} = await import('../../src/wal/fetch.js')
    if (this.flags.engine === 'wal-g') {
      const {walgFromFlags} = await import('../../src/backup/walg-cli.js')
      const {env, runWalg, walgPlans} = await walgFromFlags(this.flags, await this.settingsIfNeeded(true))
      try {
        await runWalg(walgPlans.walFetch(env, this.args.name, this.args.destination), {logger: this.logger})
        return {file: this.args.name, status: 'restored', destination: this.args.destination}
      } catch (error) {
        // wal-g exits 74 (EX_IOERR) when the file is not in storage: that is the end of the archive
        const exit = (error as {cause?: {exitCode?: number}}).cause?.exitCode
        process.exitCode = exit === 74 ? FETCH_MISSING_EXIT : FETCH_ABORT_EXIT
        if (exit !== 74) this.logger.error(`wal fetch ${this.args.name}: ${(error as Error).message}`)
        return undefined
      }
    }
    try {
      const {openWalRepository} = await import('../../src/wal/context.js')
      const {storage, stack, repository} = await openWalRepository(this.flags, await this.settingsIfNeeded())
      const prefetch =
        this.flags.prefetch > 0
          ? {
              count: this.flags.prefetch,
              processMax: this.flags['process-max'],
              root: this.flags.spool,
              repository,
              stack,
            }
          : undefined
      const result = await fetchWal({
        storage,
        stack,
        name: this.args.name,
        destination: this.args.destination,
        prefetch,
      })
      if (result.prefetchProblem)
        this.logger.warn(`wal fetch ${this.args.name}: ${result.prefetchProblem}; the segments are fetched directly`)
      if (result.status === 'missing') process.exitCode = FETCH_MISSING_EXIT
      return result
    } catch (error) {
      // Any failure other than "not archived" must stop recovery, not end it: see the description.
      const {describeError} = await import('../../src/errors.js')
      const described = describeError(error)
      this.logger.error(`wal fetch ${this.args.name}: ${described.message}`)
      if (described.hint) this.logger.write(`  hint: ${described.hint}\n`)
      process.exitCode = FETCH_ABORT_EXIT
      return undefined
    }
  }
}
