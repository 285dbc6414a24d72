import {Flags} from '@oclif/core'

import {BaseCommand} from '../../src/cli/base-command.js'
import {migrateContext, runFlags} from '../../src/migrate/cli.js'
import {migrateUp, type MigrateResult} from '../../src/migrate/index.js'
import {renderMigrateResult} from '../../src/migrate/render.js'

export default class MigrateUp extends BaseCommand<typeof MigrateUp> {
  static summary = 'Apply pending migrations (each in its own transaction, one runner at a time).'
  static description = `Takes a session-level advisory lock (another run: exit 4 at once, or wait with --lock-wait), refuses to run over drift (an applied migration edited or missing, a failed entry: exit 3), then applies each pending migration in its own transaction with lock_timeout and statement_timeout set. A failing migration is rolled back whole and named with its file, line and statement (exit 6).`
  static examples = [
    '<%= config.bin %> migrate up',
    '<%= config.bin %> migrate up --to 0003 --dry-run',
    'MIGRATION_DATABASE_URL=postgresql://charge_migrator@db:5432/charge_analysis <%= config.bin %> migrate up --lock-wait 60s --json',
  ]
  static flags = {
    ...runFlags,
    to: Flags.string({description: 'apply up to and including this version'}),
    'out-of-order': Flags.boolean({description: 'also apply pending migrations numbered below the applied head'}),
  }

  async run(): Promise<MigrateResult> {
    const ctx = migrateContext(this.flags, () => this.settings())
    const result = await migrateUp({
      ...ctx,
      to: this.flags.to,
      outOfOrder: this.flags['out-of-order'],
      logger: this.logger,
    })
    this.log(renderMigrateResult(result))
    return result
  }
}
