import {Flags} from '@oclif/core'

import {BaseCommand} from '../../src/cli/base-command.js'
import {requireSetting} from '../../src/config/settings.js'
import {bootstrapDatabase, collectPasswords, type BootstrapResult} from '../../src/install/bootstrap.js'
import {registerSecret} from '../../src/output/redact.js'
import {passwordOf} from '../../src/config/settings.js'

export default class DbBootstrap extends BaseCommand<typeof DbBootstrap> {
  static summary = 'Create the database and its three roles (app CRUD, migration DDL, read-only), idempotently.'
  static description = `The guide's §6.1.3, corrected: the application role may only read and write rows; the migration role owns schema public and creates the tables (default privileges give the application CRUD and the reporting role SELECT on everything it creates); the reporting role reads only. Safe to rerun: existing roles and the database are kept, attributes and grants are converged, each step reports whether it changed anything.

Passwords come from APP_DB_PASSWORD, MIGRATION_DB_PASSWORD and READONLY_DB_PASSWORD or from --*-password-file (mode 0600), never from the command line. They are sent as SCRAM-SHA-256 verifiers computed here, so the plain password is not in the server's statement log, and never printed.`
  static examples = [
    'APP_DB_PASSWORD=… MIGRATION_DB_PASSWORD=… READONLY_DB_PASSWORD=… <%= config.bin %> db bootstrap --admin-url postgresql://postgres@db:5432/postgres',
    '<%= config.bin %> db bootstrap --admin-url postgresql://postgres@localhost/postgres --database charge_analysis --app-password-file /run/secrets/app_db --dry-run',
  ]
  static flags = {
    'admin-url': Flags.string({
      description:
        'a superuser (or CREATEROLE+CREATEDB) connection URL; prefer the ADMIN_DATABASE_URL variable or PGPASSWORD (argv is visible in ps)',
      env: 'ADMIN_DATABASE_URL',
    }),
    database: Flags.string({
      description: 'database to create (default: the one named in DATABASE_URL, else charge_analysis)',
    }),
    'app-role': Flags.string({description: 'application role (CRUD only)', default: 'charge_user'}),
    'migration-role': Flags.string({
      description: 'migration role (DDL, owns schema public)',
      default: 'charge_migrator',
    }),
    'readonly-role': Flags.string({description: 'read-only reporting role', default: 'charge_reader'}),
    'app-password-file': Flags.string({
      description: 'file holding the application role password (else APP_DB_PASSWORD)',
    }),
    'migration-password-file': Flags.string({
      description: 'file holding the migration role password (else MIGRATION_DB_PASSWORD)',
    }),
    'readonly-password-file': Flags.string({
      description: 'file holding the read-only role password (else READONLY_DB_PASSWORD)',
    }),
    'dry-run': Flags.boolean({description: 'print the SQL it would run (passwords masked); change nothing'}),
  }

  async run(): Promise<BootstrapResult> {
    const adminUrl = requireSetting(
      this.flags['admin-url'],
      'the admin connection',
      'Pass --admin-url or set ADMIN_DATABASE_URL (prefer the variable: argv is visible in ps).',
    )
    registerSecret(passwordOf(adminUrl))
    let database = this.flags.database
    if (!database) {
      let fromSettings: string | undefined
      try {
        const url = this.settings().databaseUrl
        fromSettings = url ? decodeURIComponent(new URL(url).pathname.replace(/^\//, '')) || undefined : undefined
      } catch {
        fromSettings = undefined
      }
      database = fromSettings ?? 'charge_analysis'
    }
    const passwords = await collectPasswords(
      {
        app: this.flags['app-password-file'],
        migration: this.flags['migration-password-file'],
        readonly: this.flags['readonly-password-file'],
      },
      process.env,
      this.logger,
    )
    const result = await bootstrapDatabase({
      adminUrl,
      database,
      roles: {
        app: this.flags['app-role'],
        migration: this.flags['migration-role'],
        readonly: this.flags['readonly-role'],
      },
      passwords,
      dryRun: this.flags['dry-run'],
      logger: this.logger,
    })
    for (const step of result.steps) {
      if (result.dryRun) this.log(`-- ${step.description}\n${step.sql}\n`)
      else this.log(`${step.changed ? 'changed  ' : 'unchanged'}  ${step.description}`)
    }
    if (!result.dryRun) {
      this.log(
        `\n${result.changed} step${result.changed === 1 ? '' : 's'} changed. Connection URLs (add the passwords from your secret store):`,
      )
      this.log(
        `  DATABASE_URL=${result.urls.app}\n  MIGRATION_DATABASE_URL=${result.urls.migration}\n  reporting: ${result.urls.readonly}`,
      )
    }
    return result
  }
}
