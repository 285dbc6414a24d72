import {Flags} from '@oclif/core'

import {BaseCommand} from '../../src/cli/base-command.js'
import {repositoryLocationFlags} from '../../src/cli/flags.js'

interface WalPruneResult {
  keepFrom?: string
  deleted: string[]
  kept: number
  reason: string
  dryRun: boolean
}

export default class WalPrune extends BaseCommand<typeof WalPrune> {
  static summary = 'Delete archived WAL older than the oldest base backup still in the repository.'
  static description =
    'Keeps every WAL file from the first segment of the oldest complete base backup on, and every timeline history file; deletes older segments. Run it after `backup prune` has applied the retention policy to base backups. With no base backup nothing is deleted.'
  static examples = [
    '<%= config.bin %> wal prune --dry-run',
    '<%= config.bin %> wal prune --repo /var/backups/charge-ops --stack charge-analysis --yes',
  ]
  static flags = {
    ...repositoryLocationFlags,
    'dry-run': Flags.boolean({description: 'only list what would be deleted'}),
  }

  async run(): Promise<WalPruneResult> {
    const {openWalRepository} = await import('../../src/wal/context.js')
    const {listArchive} = await import('../../src/wal/archive.js')
    const {listBackups} = await import('../../src/repository/manifest.js')
    const {planWalRetention, deleteArchivedWal} = await import('../../src/backup/physical-retention.js')
    const {withLock} = await import('../../src/repository/lock.js')
    const {storage, stack} = await openWalRepository(this.flags, () => this.settings())
    return withLock(storage, stack, {command: 'wal prune'}, async () => {
      const {complete} = await listBackups(storage, stack, {kind: 'base'})
      const plan = planWalRetention(await listArchive(storage, stack), complete)
      const result: WalPruneResult = {
        keepFrom: plan.keepFrom,
        deleted: plan.delete.map((f) => f.name),
        kept: plan.keep,
        reason: plan.reason,
        dryRun: this.flags['dry-run'],
      }
      if (plan.delete.length > 0 && !this.flags['dry-run']) {
        await this.confirm(`Delete ${plan.delete.length} archived WAL file(s) older than ${plan.keepFrom}?`)
        await deleteArchivedWal(storage, plan.delete)
      }
      this.log(
        `${this.flags['dry-run'] ? 'would delete' : 'deleted'} ${plan.delete.length} WAL file(s); kept ${plan.keep} (${plan.reason})`,
      )
      return result
    })
  }
}
