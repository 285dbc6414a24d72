import {Flags} from '@oclif/core'

import {BaseCommand} from '../../src/cli/base-command.js'
import {migrateContext, runFlags} from '../../src/migrate/cli.js'
import {migrateDown, type MigrateResult} from '../../src/migrate/index.js'
import {renderMigrateResult} from '../../src/migrate/render.js'

export default class MigrateDown extends BaseCommand<typeof MigrateDown> {
  static summary = 'Revert the latest migration(s) with their down sections.'
  static description =
    'Reverts the newest applied migration (or --steps N, or every one above --to V; --to 0 reverts all). Refuses when a migration to revert is irreversible (no down section), edited since it was applied, or missing. Down usually drops data: it asks for confirmation (--yes when not interactive). Take a backup first.'
  static examples = [
    '<%= config.bin %> migrate down --dry-run',
    '<%= config.bin %> migrate down --steps 2 --yes',
    '<%= config.bin %> migrate down --to 0003 --yes --json',
  ]
  static flags = {
    ...runFlags,
    steps: Flags.integer({description: 'how many migrations to revert (default 1)', min: 1, exclusive: ['to']}),
    to: Flags.string({description: 'revert every migration above this version (0: all)', exclusive: ['steps']}),
  }

  async run(): Promise<MigrateResult> {
    const ctx = migrateContext(this.flags, () => this.settings())
    const options = {...ctx, steps: this.flags.steps, to: this.flags.to, logger: this.logger}
    if (!ctx.dryRun) {
      const plan = await migrateDown({...options, dryRun: true})
      if (plan.plan.length === 0) {
        this.log('nothing to revert')
        return plan
      }
      await this.confirm(`Revert ${plan.plan.map((p) => p.file).join(', ')}? Down migrations usually drop data`)
    }
    const result = await migrateDown(options)
    this.log(renderMigrateResult(result))
    return result
  }
}
