import {Args, Flags} from '@oclif/core'

import {BaseCommand} from '../../src/cli/base-command.js'
import {ExitCode} from '../../src/errors.js'
import {dirFlag, migrateContext} from '../../src/migrate/cli.js'
import {LINT_RULES, lintMigrations, type LintResult} from '../../src/migrate/lint.js'
import {renderTable} from '../../src/output/table.js'

export default class MigrateLint extends BaseCommand<typeof MigrateLint> {
  static summary = 'Flag lock-heavy or destructive statements in migrations (for CI).'
  static description = `Checks the up sections for: ${Object.keys(LINT_RULES).join(', ')}. A table created earlier in the same migration is "new" and exempt. Silence one statement with a comment inside or just above it: "-- charge-ops:lint-ignore <rule>[, <rule>]"; a whole file with "-- charge-ops:lint-ignore-file <rule>". Exit 1 when any error-level finding remains (warnings alone exit 0, or 1 with --strict). Needs no database.`
  static examples = [
    '<%= config.bin %> migrate lint',
    '<%= config.bin %> migrate lint service/migrations/0007_add_index.sql --json',
    '<%= config.bin %> migrate lint --strict',
  ]
  static strict = false
  static args = {
    files: Args.string({description: 'migration files to lint (default: every file in the migrations directory)'}),
  }
  static flags = {
    dir: dirFlag,
    strict: Flags.boolean({description: 'warnings fail too (exit 1)'}),
  }

  async run(): Promise<LintResult> {
    const files = this.argv.filter((a) => !a.startsWith('-') && a.endsWith('.sql'))
    const dir =
      files.length > 0 ? undefined : migrateContext(this.flags, () => this.settings(), {database: false}).migrationsDir
    const result = lintMigrations({dir, files})
    if (result.findings.length > 0) {
      this.log(
        renderTable(
          ['FILE:LINE', 'LEVEL', 'RULE', 'STATEMENT'],
          result.findings.map((f) => [`${f.file}:${f.line}`, f.severity, f.rule, f.statement ?? '']),
        ),
      )
      this.log('')
      for (const f of result.findings)
        this.log(`${f.path}:${f.line}: ${f.severity} [${f.rule}] ${f.message}\n  fix: ${f.hint}`)
    }
    this.log(
      `${result.files} file${result.files === 1 ? '' : 's'} checked: ${result.errors} error${result.errors === 1 ? '' : 's'}, ${result.warnings} warning${result.warnings === 1 ? '' : 's'}`,
    )
    if (result.errors > 0 || (this.flags.strict && result.warnings > 0)) process.exitCode = ExitCode.findings
    return result
  }
}
