import {CliError, ExitCode, type CliErrorOptions, type ErrorCode} from '../errors.js'

/** A migration file that cannot be used as written (bad name, missing up marker, bad directive…). */
export class MigrationFileError extends CliError {
  constructor(
    message: string,
    readonly file: string,
    readonly line?: number,
    options: CliErrorOptions = {},
  ) {
    super('MIGRATION_FILE_INVALID', ExitCode.usage, `${line ? `${file}:${line}` : file}: ${message}`, {
      ...options,
      data: {file, line, ...options.data},
    })
  }
}

/**
 * A statement of a migration failed. When the migration ran in a transaction nothing of it
 * remains (exit 6, "rolled back"); a no-transaction migration may be partly applied (exit 1) and
 * is recorded as failed until `migrate repair`.
 */
export class MigrationFailedError extends CliError {
  constructor(
    message: string,
    readonly details: {
      version: string
      name: string
      file: string
      line: number
      statement: string
      sqlState?: string
      rolledBack: boolean
      direction: 'up' | 'down'
    },
    options: CliErrorOptions = {},
  ) {
    super(
      details.rolledBack ? 'MIGRATION_FAILED' : 'MIGRATION_FAILED_PARTIAL',
      details.rolledBack ? ExitCode.rolledBack : ExitCode.findings,
      message,
      {
        ...options,
        data: {...details, ...options.data},
      },
    )
  }
}

/**
 * The database and the migration files disagree (edited or missing applied migration, a failed
 * entry, an out-of-order pending file): schema drift, exit 3 like `migrate status --exit-code`.
 */
export class MigrationStateError extends CliError {
  constructor(code: ErrorCode, message: string, options: CliErrorOptions = {}) {
    super(code, ExitCode.pendingMigrations, message, options)
  }
}
