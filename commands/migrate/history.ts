import {BaseCommand} from '../../src/cli/base-command.js'
import {connectionFlags, migrateContext} from '../../src/migrate/cli.js'
import {migrationHistory, type HistoryRow} from '../../src/migrate/index.js'
import {renderHistory} from '../../src/migrate/render.js'

export default class MigrateHistory extends BaseCommand<typeof MigrateHistory> {
  static summary = 'List the applied migrations from the charge_ops_migrations table.'
  static description =
    'One row per applied, baselined or failed migration: version, name, when, how long, by whom, and its sha256 checksum.'
  static examples = ['<%= config.bin %> migrate history', '<%= config.bin %> migrate history --json']
  static flags = {'database-url': connectionFlags['database-url']}

  async run(): Promise<{migrations: HistoryRow[]}> {
    const ctx = migrateContext({...this.flags, dir: '.'}, () => this.settings())
    const migrations = await migrationHistory({databaseUrl: ctx.databaseUrl})
    this.log(renderHistory(migrations))
    return {migrations}
  }
}
