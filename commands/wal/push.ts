import {Args, Flags} from '@oclif/core'

import {BaseCommand} from '../../src/cli/base-command.js'
import type {PushResult} from '../../src/wal/archive.js'
import {repositoryLocationFlags} from '../../src/cli/flags.js'
import type {AsyncPushResult} from '../../src/wal/async-push.js'

export default class WalPush extends BaseCommand<typeof WalPush> {
  static preloadConfig = false
  static summary = "Archive one WAL file into the repository (PostgreSQL's archive_command)."
  static description = `Reads the file, checksums and compresses it (zstd, else gzip) and stores it under its timeline without ever overwriting: pushing the same content again succeeds, different content fails (exit 2). The repository remembers the cluster's system identifier at first push and refuses WAL from any other cluster (exit 2). Success is reported only after the object is durable.

PostgreSQL runs it as the postgres OS user in the data directory, without your environment: keep the command line self-contained (see \`charge-ops wal archive-command\`).`
  static examples = [
    "archive_command = '<%= config.bin %> wal push %p --repo /var/backups/charge-ops --stack charge-analysis'",
    "archive_command = '<%= config.bin %> wal push %p --repo /var/backups/charge-ops --stack charge-analysis --async --process-max 2'",
    "archive_command = '<%= config.bin %> wal push %p --repo /var/backups/charge-ops --stack charge-analysis --async --process-max 4 --queue-max 4GB'",
    "archive_command = '<%= config.bin %> wal push %p --repo s3://backups/charge-ops --stack charge-analysis --aws-env-file /etc/charge-ops/s3.env'",
  ]
  static args = {path: Args.string({required: true, description: 'the WAL file (%p: relative to the data directory)'})}
  static flags = {
    ...repositoryLocationFlags,
    engine: Flags.string({
      options: ['native', 'wal-g'],
      default: 'native',
      description: 'wal-g: run `wal-g wal-push` with WALG_* settings derived from --repo / --stack',
    }),
    compression: Flags.string({
      options: ['zstd', 'gzip'],
      default: 'zstd',
      description: 'zstd (falls back to gzip when the binary is missing)',
    }),
    async: Flags.boolean({
      default: false,
      description:
        'also push the next .ready segments in parallel and record them in the spool; later calls return once they checked the record (docs/pitr.md)',
    }),
    'process-max': Flags.integer({min: 1, max: 64, default: 2, description: 'with --async: segments pushed at once'}),
    spool: Flags.string({
      description: 'with --async: the spool directory (default: charge-ops-spool in the data directory)',
    }),
    'queue-max': Flags.string({
      description:
        'WAL waiting in pg_wal past which every call warns loudly in the server log (e.g. 4GB); capacity and the ChargeOpsWalArchiveQueueFull alert use it too. Nothing is ever dropped (docs/pitr.md)',
    }),
  }

  /** charge-ops.yaml is read only when the command line does not say where the repository is. */
  private async settingsIfNeeded(always = false) {
    const settings =
      always || !(this.flags.repo ?? process.env.CHARGE_OPS_REPO) || !this.flags.stack
        ? await this.loadSettings()
        : undefined
    return () => settings ?? {stack: ''}
  }

  async run(): Promise<PushResult | AsyncPushResult | {engine: 'wal-g'; file: string}> {
    if (this.flags.engine === 'wal-g') {
      const {walgFromFlags} = await import('../../src/backup/walg-cli.js')
      const {env, runWalg, walgPlans} = await walgFromFlags(this.flags, await this.settingsIfNeeded(true))
      await runWalg(walgPlans.walPush(env, this.args.path), {logger: this.logger})
      return {engine: 'wal-g', file: this.args.path}
    }
    if (this.flags['queue-max']) {
      const {checkQueue, parseQueueMax} = await import('../../src/wal/queue.js')
      const warning = await checkQueue(this.args.path, parseQueueMax(this.flags['queue-max']))
      if (warning) this.logger.warn(`wal push ${this.args.path}: ${warning}`)
    }
    const {openWalRepository} = await import('../../src/wal/context.js')
    const {pushWal} = await import('../../src/wal/archive.js')
    const {storage, stack, repository} = await openWalRepository(this.flags, await this.settingsIfNeeded())
    if (this.flags.async) {
      const {pushWalAsync} = await import('../../src/wal/async-push.js')
      const done = await pushWalAsync({
        storage,
        stack,
        repository,
        path: this.args.path,
        compression: this.flags.compression as 'zstd' | 'gzip',
        processMax: this.flags['process-max'],
        spool: this.flags.spool,
      })
      this.logger.debug(
        `${done.file}: ${done.fromSpool ? 'pushed ahead earlier (spool record, content checked)' : `→ ${done.key}`}; pushed ahead ${done.pushedAhead.length}, failed ${done.failedAhead.length}`,
      )
      return done
    }
    const result = await pushWal({
      storage,
      stack,
      path: this.args.path,
      compression: this.flags.compression as 'zstd' | 'gzip',
    })
    this.logger.debug(
      `${result.file} → ${storage.location}/${result.key} (${result.bytes} → ${result.storedBytes} bytes${result.alreadyArchived ? ', already archived' : ''})`,
    )
    return result
  }
}
