import {Args, Flags} from '@oclif/core'

import {BaseCommand} from '../../src/cli/base-command.js'
import {dirFlag, migrateContext} from '../../src/migrate/cli.js'
import {createMigration, type CreateResult} from '../../src/migrate/index.js'

export default class MigrateCreate extends BaseCommand<typeof MigrateCreate> {
  static summary = 'Create the next-numbered migration file with up and down sections.'
  static examples = [
    '<%= config.bin %> migrate create add_sessions_vehicle_index --no-transaction',
    '<%= config.bin %> migrate create "add training metrics table" --dir service/migrations',
  ]
  static args = {name: Args.string({description: 'what the migration does (becomes NNNN_name.sql)', required: true})}
  static flags = {
    dir: dirFlag,
    'no-transaction': Flags.boolean({
      description: 'mark it -- charge-ops:no-transaction (for CREATE INDEX CONCURRENTLY)',
    }),
  }

  async run(): Promise<CreateResult> {
    const ctx = migrateContext(this.flags, () => this.settings(), {database: false})
    const result = createMigration(ctx.migrationsDir, this.args.name, {noTransaction: this.flags['no-transaction']})
    this.log(`created ${result.path}`)
    return result
  }
}
