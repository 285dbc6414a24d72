/**
 * The migration engine's public API (used by `charge-ops migrate …`, the bundled service's tests
 * and the quick start). See docs/migrate.md for the file format.
 */
export {
  migrateUp,
  migrateDown,
  migrationStatus,
  validateMigrations,
  migrationHistory,
  currentVersion,
  repairMigrations,
  baselineMigrations,
  defaultAppliedBy,
  DEFAULT_LOCK_TIMEOUT,
  DEFAULT_STATEMENT_TIMEOUT,
  type UpOptions,
  type DownOptions,
  type RunOptions,
  type ConnectionOptions,
  type MigrateResult,
  type PlannedMigration,
  type AppliedMigration,
  type StatusResult,
  type ValidateResult,
  type RepairResult,
  type RepairAction,
  type BaselineResult,
} from './engine.js'
export {loadMigrations, parseMigration, checksumOf, compareVersions, type MigrationFile} from './files.js'
export {HISTORY_TABLE, type HistoryRow} from './history.js'
export {MIGRATION_LOCK_KEY} from './lock.js'
export {MigrationFailedError, MigrationFileError, MigrationStateError} from './errors.js'
export {createMigration, type CreateResult} from './create.js'
export {resolveDatabaseUrl, resolveMigrationsDir, bundledMigrationsDir} from './locate.js'
export type {StatusEntry, MigrationState, Problem} from './state.js'
export type {Logger} from '../output/logger.js'
