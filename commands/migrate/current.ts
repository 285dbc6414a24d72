import {BaseCommand} from '../../src/cli/base-command.js'
import {connectionFlags, migrateContext} from '../../src/migrate/cli.js'
import {currentVersion} from '../../src/migrate/index.js'

export default class MigrateCurrent extends BaseCommand<typeof MigrateCurrent> {
  static summary = 'Print the version the database is at (the newest applied migration).'
  static examples = ['<%= config.bin %> migrate current', '<%= config.bin %> migrate current --json']
  static flags = {...connectionFlags}

  async run(): Promise<{current: string | null; name: string | null; pending: number}> {
    const ctx = migrateContext(this.flags, () => this.settings())
    const result = await currentVersion(ctx)
    this.log(
      result.current
        ? `${result.current}_${result.name}${result.pending > 0 ? ` (${result.pending} pending)` : ''}`
        : `none${result.pending > 0 ? ` (${result.pending} pending)` : ''}`,
    )
    return result
  }
}
