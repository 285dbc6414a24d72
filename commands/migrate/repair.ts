import {BaseCommand} from '../../src/cli/base-command.js'
import {connectionFlags, migrateContext} from '../../src/migrate/cli.js'
import {repairMigrations, type RepairResult} from '../../src/migrate/index.js'
import {Flags} from '@oclif/core'

export default class MigrateRepair extends BaseCommand<typeof MigrateRepair> {
  static summary = 'Realign the history with the files: record edited checksums, remove failed and missing entries.'
  static description =
    'Use after fixing a failed no-transaction migration by hand (its entry is removed so it runs again), after a deliberate cosmetic edit of an applied migration (its new checksum is recorded), or after deliberately deleting a migration file. Shows what it will do and asks first (--yes when not interactive).'
  static examples = ['<%= config.bin %> migrate repair --dry-run', '<%= config.bin %> migrate repair --yes']
  static flags = {
    ...connectionFlags,
    'dry-run': Flags.boolean({description: 'show what would change; change nothing'}),
    'lock-wait': Flags.string({description: "wait up to this long for another run's migration lock (e.g. 30s)"}),
  }

  async run(): Promise<RepairResult> {
    const ctx = migrateContext(this.flags, () => this.settings())
    const plan = await repairMigrations({...ctx, dryRun: true})
    for (const a of plan.actions)
      this.log(`${ctx.dryRun ? 'would ' : ''}${a.action} ${a.version}_${a.name}: ${a.detail}`)
    if (plan.actions.length === 0) {
      this.log('nothing to repair')
      return plan
    }
    if (ctx.dryRun) return plan
    await this.confirm(`Apply these ${plan.actions.length} change(s) to the migration history?`)
    const result = await repairMigrations({...ctx, dryRun: false, logger: this.logger})
    this.log(`repaired ${result.actions.length} entr${result.actions.length === 1 ? 'y' : 'ies'}`)
    return result
  }
}
