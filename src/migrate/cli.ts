/**
 * Flags and context shared by the `charge-ops migrate …` commands. This is CLI glue for
 * commands/migrate only: the engine modules never import it (and it is the one file here that
 * knows oclif).
 */
import {Flags} from '@oclif/core'

import type {Settings} from '../config/settings.js'
import {parseTimeout} from '../core/units/duration.js'
import {resolveDatabaseUrl, resolveMigrationsDir} from './locate.js'

export const dirFlag = Flags.string({
  description:
    'migrations directory (default: ./service/migrations next to charge-ops.yaml when present, else the bundled service/migrations)',
  env: 'CHARGE_OPS_MIGRATIONS_DIR',
})

export const databaseUrlFlag = Flags.string({
  description:
    "database to migrate, e.g. the migration role's URL (default: DATABASE_URL from the environment or .env). A direct connection, not PgBouncer in transaction mode.",
  env: 'MIGRATION_DATABASE_URL',
})

export const connectionFlags = {dir: dirFlag, 'database-url': databaseUrlFlag}

export const runFlags = {
  ...connectionFlags,
  'dry-run': Flags.boolean({description: 'print the plan and the SQL; change nothing'}),
  'lock-wait': Flags.string({
    description:
      "wait up to this long for another run's migration lock (e.g. 30s); without it a held lock exits 4 at once",
  }),
  'lock-timeout': Flags.string({
    description: 'lock_timeout for each migration unless the file sets one (default 10s; 0 = none)',
  }),
  'statement-timeout': Flags.string({
    description: 'statement_timeout for each migration unless the file sets one (default 30min; 0 = none)',
  }),
}

export interface MigrateFlagValues {
  dir?: string
  'database-url'?: string
  'dry-run'?: boolean
  'lock-wait'?: string
  'lock-timeout'?: string
  'statement-timeout'?: string
}

/** Settings are read only when a flag does not already say where to go (a broken .env then does not matter). */
export function migrateContext(
  flags: MigrateFlagValues,
  settings: () => Settings,
  needs: {database?: boolean} = {database: true},
) {
  let loaded: Settings | undefined
  const lazy = () => (loaded ??= settings())
  const migrationsDir = resolveMigrationsDir(flags.dir, flags.dir ? undefined : lazy())
  const databaseUrl =
    needs.database === false
      ? ''
      : resolveDatabaseUrl(flags['database-url'], flags['database-url'] ? undefined : lazy())
  // Validate durations before connecting, so a typo is a usage error and not a half-run.
  if (flags['lock-timeout']) parseTimeout(flags['lock-timeout'], '--lock-timeout')
  if (flags['statement-timeout']) parseTimeout(flags['statement-timeout'], '--statement-timeout')
  return {
    migrationsDir,
    databaseUrl,
    dryRun: Boolean(flags['dry-run']),
    lockWait: flags['lock-wait'] ? parseTimeout(flags['lock-wait'], '--lock-wait') : 0,
    lockTimeout: flags['lock-timeout'],
    statementTimeout: flags['statement-timeout'],
  }
}
