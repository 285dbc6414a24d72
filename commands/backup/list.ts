import {Flags} from '@oclif/core'

import {BaseCommand} from '../../src/cli/base-command.js'
import {repositoryLocationFlags} from '../../src/cli/flags.js'

export default class BackupList extends BaseCommand<typeof BackupList> {
  static summary = 'List the complete backups of the stack, newest first.'
  static description =
    'Only backups with a manifest are complete and restorable; --all also shows what killed or failed runs left — incomplete backups, temp files of unfinished writes, incomplete S3 uploads — all removed by backup prune (and temp files by the next backup).'
  static examples = ['<%= config.bin %> backup list', '<%= config.bin %> backup list --kind db --json']
  static flags = {
    ...repositoryLocationFlags,
    kind: Flags.string({options: ['db', 'files', 'base', 'all'], description: 'only this kind'}),
    all: Flags.boolean({description: 'also list incomplete backups and the temp files of killed runs'}),
  }

  async run() {
    const {openConfiguredRepository} = await import('../../src/repository/open.js')
    const {listBackups} = await import('../../src/repository/manifest.js')
    const {listingSummaries, formatAge} = await import('../../src/backup/describe.js')
    const {renderTable} = await import('../../src/output/table.js')
    const {formatBytes} = await import('../../src/core/units/size.js')
    const settings = this.settings({repository: this.flags.repo, stack: this.flags.stack})
    const storage = await openConfiguredRepository(settings)
    const listing = await listBackups(storage, settings.stack, {
      includeIncomplete: this.flags.all,
      kind: this.flags.kind as never,
    })
    const now = new Date()
    const {listLeftoverTemporary} = await import('../../src/repository/leftovers.js')
    // temp files / uploads of killed runs: invisible to the listing of backups, yet they hold space
    const temporary = this.flags.all
      ? (await listLeftoverTemporary(storage, settings.stack, now.getTime())).map((t) => ({
          key: t.key,
          bytes: t.size,
          ageSeconds: Math.max(0, Math.round((now.getTime() - t.mtime.getTime()) / 1000)),
          pid: t.pid,
        }))
      : []
    const result = {
      repository: storage.location,
      stack: settings.stack,
      ...listingSummaries(listing, now),
      ...(this.flags.all ? {temporary} : {}),
    }
    this.log(
      renderTable(
        ['ID', 'KIND', 'AGE', 'SIZE', 'DURATION', 'SERVICE', 'MIGRATION', 'VERIFIED'],
        result.backups.map((b) => [
          b.id,
          b.kind,
          formatAge(b.ageSeconds),
          formatBytes(b.bytes),
          b.durationMs === undefined ? '' : `${(b.durationMs / 1000).toFixed(1)}s`,
          b.serviceVersion ?? '-',
          b.migrationHead ?? '-',
          b.verified === null
            ? 'no'
            : b.verified
              ? `yes${b.restoreDrillSeconds === undefined ? '' : ` (drill ${b.restoreDrillSeconds.toFixed(1)}s)`}`
              : 'FAILED',
        ]),
      ),
    )
    for (const i of result.incomplete)
      this.log(`incomplete: ${i.id} (${formatBytes(i.bytes)}, last write ${formatAge(i.ageSeconds)} ago)`)
    for (const t of temporary)
      this.log(
        `left by a killed run: ${t.key} (${formatBytes(t.bytes)}, ${formatAge(t.ageSeconds)} old${t.pid ? `, pid ${t.pid} gone` : ''}) — backup prune removes it`,
      )
    for (const i of result.invalid) this.logger.warn(`invalid manifest: ${i.id}: ${i.error}`)
    if (result.backups.length === 0) {
      const {existsSync} = await import('node:fs')
      // a typo in --repo reads as "no backups": say when the directory is not even there
      if (storage.kind === 'local' && !existsSync(storage.location))
        this.logger.warn(
          `the repository ${storage.location} does not exist (yet): no backup was ever written there — check --repo / CHARGE_OPS_REPO`,
        )
      else this.logger.info(`no complete backups of stack ${settings.stack} in ${storage.location}`)
    }
    return result
  }
}
