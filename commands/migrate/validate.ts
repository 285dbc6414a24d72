import {BaseCommand} from '../../src/cli/base-command.js'
import {ExitCode} from '../../src/errors.js'
import {connectionFlags, migrateContext} from '../../src/migrate/cli.js'
import {validateMigrations, type ValidateResult} from '../../src/migrate/index.js'
import {renderValidate} from '../../src/migrate/render.js'

export default class MigrateValidate extends BaseCommand<typeof MigrateValidate> {
  static summary = 'Check that every migration file parses and that applied ones are unchanged, present and in order.'
  static description =
    'Exit 1 when a problem is found: an applied migration whose file changed (checksum), an applied migration whose file is missing, a failed no-transaction migration, or a pending file numbered below the applied head. Each problem comes with its fix.'
  static examples = ['<%= config.bin %> migrate validate', '<%= config.bin %> migrate validate --json']
  static flags = {...connectionFlags}

  async run(): Promise<ValidateResult> {
    const ctx = migrateContext(this.flags, () => this.settings())
    const result = await validateMigrations(ctx)
    this.log(renderValidate(result))
    if (!result.ok) process.exitCode = ExitCode.findings
    return result
  }
}
