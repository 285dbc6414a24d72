import {Flags} from '@oclif/core'

import {BaseCommand} from '../../src/cli/base-command.js'
import {repositoryLocationFlags} from '../../src/cli/flags.js'
import type {PruneResult} from '../../src/backup/prune.js'

export default class BackupPrune extends BaseCommand<typeof BackupPrune> {
  static summary = 'Apply the retention policy and remove abandoned partial backups.'
  static description =
    'Policy from charge-ops.yaml backup.retention (keepLast, keepDays, daily, weekly, monthly; flags override). Never deletes the newest complete verified backup, nor the newest backup of any kind. Incomplete backups (no manifest: killed or failed runs) are removed.'
  static examples = [
    '<%= config.bin %> backup prune --dry-run',
    '<%= config.bin %> backup prune --keep-days 30 --keep-last 7 --yes',
  ]
  static flags = {
    ...repositoryLocationFlags,
    'dry-run': Flags.boolean({description: 'show what would be deleted, delete nothing'}),
    'keep-last': Flags.integer({min: 1, description: 'keep the newest N backups per kind'}),
    'keep-days': Flags.integer({min: 0, description: 'keep every backup younger than D days'}),
    daily: Flags.integer({min: 0, description: 'keep the newest backup of each of the last N days that have one'}),
    weekly: Flags.integer({min: 0, description: '… of each of the last N ISO weeks'}),
    monthly: Flags.integer({min: 0, description: '… of each of the last N months'}),
  }

  async run(): Promise<PruneResult> {
    const {pruneBackups} = await import('../../src/backup/prune.js')
    const {formatBytes} = await import('../../src/core/units/size.js')
    const ctx = await this.backupContext({repo: this.flags.repo, stack: this.flags.stack})
    const f = this.flags
    const policy = Object.fromEntries(
      Object.entries({
        keepLast: f['keep-last'],
        keepDays: f['keep-days'],
        daily: f.daily,
        weekly: f.weekly,
        monthly: f.monthly,
      }).filter(([, v]) => v !== undefined),
    )
    if (!f['dry-run']) {
      const preview = await pruneBackups(ctx, {dryRun: true, policy})
      if (preview.deleted.length > 0 || preview.wal.deleted > 0) {
        await this.confirm(
          `delete ${preview.deleted.length} backup(s) and ${preview.wal.deleted} archived WAL file(s) (${formatBytes(preview.bytesFreed)})`,
        )
      }
    }
    const result = await pruneBackups(ctx, {dryRun: f['dry-run'], policy})
    const verb = result.dryRun ? 'would delete' : 'deleted'
    for (const d of result.deleted) this.log(`${verb} ${d.id} (${formatBytes(d.bytes)})`)
    for (const i of result.incompleteRemoved)
      this.log(`${result.dryRun ? 'would remove' : 'removed'} incomplete ${i.id} (${formatBytes(i.bytes)})`)
    for (const t of result.temporaryRemoved)
      this.log(`${result.dryRun ? 'would remove' : 'removed'} ${t.key}, left by a killed run (${formatBytes(t.bytes)})`)
    if (result.wal.deleted > 0)
      this.log(
        `${verb} ${result.wal.deleted} archived WAL file(s) older than ${result.wal.keepFrom} (${formatBytes(result.wal.bytes)})`,
      )
    this.log(
      `kept ${result.kept.length}, ${verb} ${result.deleted.length} + ${result.incompleteRemoved.length} incomplete + ${result.temporaryRemoved.length} temp file(s), ${formatBytes(result.bytesFreed)} ${result.dryRun ? 'to free' : 'freed'}`,
    )
    return result
  }
}
