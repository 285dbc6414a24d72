import {Args, Flags} from '@oclif/core'

import {BaseCommand} from '../../src/cli/base-command.js'
import {encryptFlag, repositoryLocationFlags} from '../../src/cli/flags.js'
import type {RestoreDbResult} from '../../src/restore/logical-db.js'

export default class RestoreDb extends BaseCommand<typeof RestoreDb> {
  static summary = 'Restore a logical database backup into the configured database or a new one.'
  static description = `Checks first, touching nothing until they pass: the backup's migration head must not be newer than the installed service's migrations (exit 2 unless --force), and a non-empty target is replaced only with --clean and --yes (exit 2).
Then pg_restore (parallel with --jobs) into a scratch database <target>_restoring on the same server; the dump's size and sha256 are checked against the manifest as it streams (one read; a mismatch drops the scratch database, the target is never touched, exit 1), per-table row counts compared with the manifest (a difference: likewise, exit 1), and one transaction renames the old database away and the restored one into place. The live database is restored with the service in maintenance mode (switched off again at the end, whatever happens). A kill at any moment leaves the old or the new database under the target name, never a half-restored one; a rerun cleans up and restores again.
Exit codes: 0 restored, 1 checksum / row-count mismatch, 2 refused (usage, non-empty target, newer migrations), 4 another restore into the same database runs, 5 PostgreSQL / repository unreachable.`
  static examples = [
    '<%= config.bin %> restore db latest --target-db charge_analysis_check',
    '<%= config.bin %> restore db 20261128T021500Z-db-3f2a --clean --yes --jobs 1   # stream, no staging space',
    '<%= config.bin %> restore db latest --clean --yes --admin-url postgresql://postgres@db:5432/postgres --json',
  ]

  static args = {id: Args.string({description: 'backup id or "latest"', required: true})}
  static flags = {
    'target-db': Flags.string({
      description: 'restore into this database (created on the DATABASE_URL server) instead of the live one',
    }),
    jobs: Flags.integer({
      description:
        'parallel pg_restore workers; above 1 zstd first decompresses the dump to a staging file (CHARGE_OPS_STAGING_DIR, the uncompressed size). 1 streams without a temp file. Default: 2 when the staging directory has room for the uncompressed dump, else 1',
      min: 1,
    }),
    clean: Flags.boolean({description: 'replace a non-empty target database (with --yes)'}),
    force: Flags.boolean({
      description: "restore even when the backup's migration head is newer than the installed service's migrations",
    }),
    'keep-previous': Flags.boolean({
      description: 'keep the replaced database as <target>_pre_<time> instead of dropping it',
    }),
    'admin-url': Flags.string({
      description:
        'connection that creates and renames databases (needs CREATEDB and ownership, or a superuser); default CHARGE_OPS_ADMIN_URL (environment or .env), else DATABASE_URL',
      env: 'CHARGE_OPS_ADMIN_URL',
    }),
    'migrations-dir': Flags.string({
      description: "the installed service's migrations (default: ./service/migrations, else the bundled ones)",
    }),
    'no-maintenance': Flags.boolean({
      description: 'do not switch the service to maintenance mode while the live database is restored',
    }),
    ...repositoryLocationFlags,
    encrypt: encryptFlag,
  }

  async run(): Promise<RestoreDbResult> {
    const {openBackupContext} = await import('../../src/backup/context.js')
    const {restoreDatabase} = await import('../../src/restore/logical-db.js')
    const settings = this.settings({repository: this.flags.repo, stack: this.flags.stack})
    const ctx = await openBackupContext({
      settings,
      logger: this.logger,
      progress: (label, total) => this.progress(label, total),
      encryptKeyFile: this.flags.encrypt,
    })
    const result = await restoreDatabase({
      settings,
      storage: ctx.storage,
      stack: ctx.stack,
      ref: this.args.id,
      targetDb: this.flags['target-db'],
      // CHARGE_OPS_ADMIN_URL of the .env too (init writes it for compose; on the host mapped to the published port):
      // the application's role may not create the scratch database (the compose upgrade's rollback failed on it)
      adminUrl: this.flags['admin-url'] ?? settings.adminDatabaseUrl,
      jobs: this.flags.jobs,
      clean: this.flags.clean,
      force: this.flags.force,
      keepPrevious: this.flags['keep-previous'],
      migrationsDir: this.flags['migrations-dir'],
      maintenance: !this.flags['no-maintenance'],
      encryption: ctx.encryption,
      confirm: (q) => this.confirm(q),
      logger: this.logger,
      progress: ctx.progress,
    })
    this.log(
      `restored backup ${result.id} into ${result.database}${result.replaced ? ' (replaced)' : ' (new)'} in ${(result.durationMs / 1000).toFixed(1)}s with ${result.jobs} job(s): ${result.tables} tables, row counts match the manifest`,
    )
    if (result.previousKeptAs)
      this.log(`the replaced database is kept as ${result.previousKeptAs} (drop it when no longer needed)`)
    if (result.live) this.log(`maintenance mode: ${result.maintenance}`)
    return result
  }
}
