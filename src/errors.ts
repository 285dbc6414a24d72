/**
 * The one error taxonomy and exit-code registry (DESIGN §3).
 *
 * Every failure a user can meet is a CliError subclass carrying a stable `code` (for --json and
 * scripts), the exit code, and a `hint` telling the next step. Anything else that escapes is a bug
 * and exits 70 (EX_SOFTWARE) with the stack shown only under --verbose.
 */

export const ExitCode = {
  ok: 0,
  /** checks ran and found problems (validate, capacity, verify, doctor) */
  findings: 1,
  /** bad usage, bad input or invalid configuration */
  usage: 2,
  /** pending migrations or schema drift (`migrate status --exit-code`) */
  pendingMigrations: 3,
  /** another run holds the lock */
  locked: 4,
  /** a dependency is unreachable (PostgreSQL, Redis, Chroma, S3, a tool binary) */
  unreachable: 5,
  /** an operation failed and was rolled back (upgrade, restore) */
  rolledBack: 6,
  /** an unexpected internal error: a bug in charge-ops */
  bug: 70,
  /**
   * `wal fetch` only (PostgreSQL's restore_command): the archive has a problem (checksum mismatch,
   * damaged object, repository unreachable). PostgreSQL treats an exit status above 125 as fatal and
   * stops recovery; any lower failure would read as "end of archive" and promote early, losing data.
   */
  walArchiveFatal: 126,
} as const

export type ExitCodeValue = (typeof ExitCode)[keyof typeof ExitCode]

/** Documented meaning of every exit code, rendered into docs/exit-codes.md. */
export const EXIT_CODE_DOCS: Record<ExitCodeValue, string> = {
  0: 'success / all checks pass',
  1: 'checks ran and found problems (validate, capacity, verify, doctor)',
  2: 'bad usage, bad input or invalid configuration',
  3: 'pending migrations or schema drift (migrate status --exit-code)',
  4: 'another run holds the lock',
  5: 'a dependency is unreachable (PostgreSQL, Redis, Chroma, S3, a tool binary)',
  6: 'an operation failed and was rolled back (upgrade, restore)',
  70: 'internal error (a bug: please report it with --verbose output)',
  126: 'wal fetch only: the WAL archive has a problem; PostgreSQL stops recovery instead of promoting early',
}

/** What the registry knows of one error code. */
export interface ErrorCodeInfo {
  /** the exit code(s) it leaves with; several only where the failing step decides (noted in meaning) */
  readonly exit: ExitCodeValue | readonly ExitCodeValue[]
  /** one line for docs/exit-codes.md */
  readonly meaning: string
}

const E = ExitCode

/**
 * Every string code charge-ops emits, declared once. `CliError` takes only these (a typo or a new
 * code missing here is a compile error); test/unit/error-codes.test.ts checks that every exit code
 * used with a code is the one declared here and that docs/exit-codes.md is rendered from this table.
 * Exit 70 belongs to INTERNAL alone: only a bug leaves with it.
 */
export const ERROR_CODES = {
  // generic
  USAGE: {exit: E.usage, meaning: 'bad flags or arguments (also oclif parse errors)'},
  INTERNAL: {exit: E.bug, meaning: 'an unexpected error: a bug in charge-ops (rerun with --verbose and report it)'},
  CANCELLED: {exit: E.usage, meaning: 'the operator answered no at a confirmation prompt'},
  CONFIRMATION_REQUIRED: {exit: E.usage, meaning: 'a destructive step needs --yes when there is no terminal to ask'},
  CHECKS_FAILED: {exit: E.findings, meaning: 'checks ran and found problems (the report says which)'},
  DEPENDENCY_UNREACHABLE: {exit: E.unreachable, meaning: 'a service or tool charge-ops needs cannot be reached'},
  ROLLED_BACK: {exit: E.rolledBack, meaning: 'the operation failed and the previous state was restored'},
  LOCK_HELD: {exit: E.locked, meaning: 'another run holds the lock'},
  EXTERNAL_COMMAND_FAILED: {
    exit: [E.findings, E.unreachable],
    meaning: 'an outside program failed (exit 5 where the caller marks it as a dependency)',
  },
  TOOL_NOT_FOUND: {exit: E.unreachable, meaning: 'a required program is not on PATH'},
  TOOL_MISSING: {exit: E.unreachable, meaning: 'a required program or plugin (docker compose) is missing'},
  WOULD_OVERWRITE: {exit: E.usage, meaning: 'generated files differ from what is on disk; pass --force to overwrite'},
  // configuration
  CONFIG_INVALID: {exit: E.usage, meaning: 'the configuration is invalid'},
  CONFIG_MISSING: {exit: E.usage, meaning: 'a required setting is not configured'},
  CONFIG_UNREADABLE: {exit: E.usage, meaning: 'a configuration file cannot be read or parsed'},
  DATABASE_URL_INVALID: {exit: E.usage, meaning: 'DATABASE_URL cannot be parsed'},
  INVALID_ANSWERS: {exit: E.usage, meaning: 'the init answers file or flags are invalid'},
  AWS_ENV_FILE_INVALID: {exit: E.usage, meaning: 'the S3 credentials env file has a bad line'},
  AWS_ENV_FILE_MODE: {exit: E.usage, meaning: 'the S3 credentials env file is readable by others'},
  AWS_ENV_FILE_UNREADABLE: {exit: E.usage, meaning: 'the S3 credentials env file cannot be read'},
  INVALID_CRON: {exit: E.usage, meaning: 'a schedule is not a valid cron expression'},
  CRON_NOT_PORTABLE: {exit: E.usage, meaning: 'a cron expression means different things to cron and systemd'},
  // PostgreSQL
  PG_AUTH: {exit: E.unreachable, meaning: 'PostgreSQL rejected the password'},
  PG_AUTH_FAILED: {exit: E.usage, meaning: 'PostgreSQL refused the user or password of the connection URL'},
  PG_PERMISSION_DENIED: {exit: E.usage, meaning: 'the role of the connection URL lacks a privilege'},
  PG_DNS: {exit: E.unreachable, meaning: 'the PostgreSQL host name does not resolve'},
  PG_HBA: {exit: E.unreachable, meaning: 'pg_hba.conf has no entry for this user and host'},
  PG_NO_DATABASE: {exit: E.unreachable, meaning: 'the database named in the URL does not exist'},
  PG_REFUSED: {exit: E.unreachable, meaning: 'PostgreSQL refused the connection'},
  PG_SSL: {exit: E.unreachable, meaning: 'PostgreSQL does not accept SSL but sslmode requires it'},
  PG_STARTING: {exit: E.unreachable, meaning: 'PostgreSQL is starting up or shutting down'},
  PG_TIMEOUT: {exit: E.unreachable, meaning: 'PostgreSQL did not answer in time'},
  PG_UNREACHABLE: {exit: E.unreachable, meaning: 'PostgreSQL cannot be reached'},
  PG_VERSION: {exit: E.findings, meaning: 'PostgreSQL is older than 15 (a config validate --connect check)'},
  PG_STAT_STATEMENTS_MISSING: {exit: E.usage, meaning: 'pg_stat_statements is not installed or not loaded'},
  PGBOUNCER_UNREACHABLE: {exit: E.unreachable, meaning: 'the PgBouncer admin console cannot be reached'},
  NO_SUCH_RELATION: {exit: E.usage, meaning: 'the named table or index does not exist'},
  REINDEX_NEEDS_PG12: {exit: E.usage, meaning: 'REINDEX CONCURRENTLY needs PostgreSQL 12 or newer'},
  // Redis, Chroma, S3, Docker
  REDIS_AUTH: {exit: E.unreachable, meaning: 'Redis requires a password that REDIS_URL lacks (or rejects it)'},
  REDIS_DNS: {exit: E.unreachable, meaning: 'the Redis host name does not resolve'},
  REDIS_LOADING: {exit: E.unreachable, meaning: 'Redis is still loading its dataset'},
  REDIS_REFUSED: {exit: E.unreachable, meaning: 'Redis refused the connection'},
  REDIS_TIMEOUT: {exit: E.unreachable, meaning: 'Redis did not answer in time'},
  REDIS_TLS: {exit: E.unreachable, meaning: 'TLS with Redis failed (rediss:// against plain Redis or the reverse)'},
  REDIS_UNREACHABLE: {exit: E.unreachable, meaning: 'Redis cannot be used'},
  CHROMA_AUTH: {exit: E.unreachable, meaning: 'Chroma refused the request (authentication)'},
  CHROMA_DNS: {exit: E.unreachable, meaning: 'the Chroma host name does not resolve'},
  CHROMA_REFUSED: {exit: E.unreachable, meaning: 'Chroma refused the connection'},
  CHROMA_TIMEOUT: {exit: E.unreachable, meaning: 'Chroma did not answer in time'},
  CHROMA_TLS: {exit: E.unreachable, meaning: 'TLS with Chroma failed'},
  CHROMA_UNREACHABLE: {
    exit: E.unreachable,
    meaning: 'Chroma cannot be used (or the URL is not a Chroma API v2 server)',
  },
  CHROMA_DIR_MISSING: {exit: E.usage, meaning: 'CHROMA_PERSIST_DIRECTORY does not exist'},
  S3_AUTH: {exit: E.unreachable, meaning: 'S3 rejected the credentials or denied access'},
  S3_DNS: {exit: E.unreachable, meaning: 'the S3 endpoint does not resolve'},
  S3_NO_BUCKET: {exit: E.unreachable, meaning: 'the S3 bucket does not exist'},
  S3_REFUSED: {exit: E.unreachable, meaning: 'the S3 endpoint refused the connection'},
  S3_REGION: {exit: E.unreachable, meaning: 'the S3 bucket is in another region'},
  S3_TIMEOUT: {exit: E.unreachable, meaning: 'the S3 endpoint did not answer in time'},
  S3_TLS: {exit: E.unreachable, meaning: 'TLS with the S3 endpoint failed'},
  S3_UNREACHABLE: {exit: E.unreachable, meaning: 'the S3 bucket cannot be reached'},
  DOCKER_UNREACHABLE: {exit: E.unreachable, meaning: 'the Docker daemon is not reachable'},
  // backup repository
  REPOSITORY_NOT_DIRECTORY: {exit: E.usage, meaning: 'the backup repository path is not a directory'},
  REPOSITORY_NOT_WRITABLE: {exit: E.unreachable, meaning: 'the backup repository is not writable'},
  REPOSITORY_NO_SPACE: {exit: E.unreachable, meaning: 'the backup repository ran out of space'},
  REPOSITORY_UNREADABLE: {
    exit: E.usage,
    meaning: 'an object of the repository cannot be read by this user (ownership)',
  },
  BAD_BACKUP_ID: {exit: E.usage, meaning: 'not a backup id'},
  BACKUP_EXISTS: {exit: E.usage, meaning: 'a backup with that id already has a manifest'},
  BACKUP_NOT_FOUND: {exit: E.usage, meaning: 'no such backup (or it is incomplete)'},
  BACKUP_DELETED: {exit: E.findings, meaning: 'the backup was deleted (by prune?) while it was verified'},
  BACKUP_WRONG_KIND: {
    exit: [E.usage, E.findings],
    meaning: 'the backup is of another kind than the command needs (exit 1 from backup verify --restore-drill)',
  },
  MANIFEST_INVALID: {exit: E.findings, meaning: 'a backup manifest is damaged or incomplete'},
  VERIFY_FAILED: {exit: E.findings, meaning: 'a backup part does not match its manifest checksum'},
  CHECKSUM_MISMATCH: {exit: E.findings, meaning: 'a stored part does not match its checksum; nothing was restored'},
  DECRYPT_FAILED: {exit: E.findings, meaning: 'a part cannot be decrypted with the key given'},
  KEY_REQUIRED: {
    exit: [E.usage, E.findings],
    meaning: 'the backup is encrypted and no key was given (exit 1 while verifying base blocks)',
  },
  KEY_FILE_INVALID: {exit: E.usage, meaning: 'the encryption key file does not hold 32 bytes or 64 hex characters'},
  KEY_FILE_MISSING: {exit: E.usage, meaning: 'the encryption key file cannot be read'},
  KEY_FILE_MODE: {exit: E.usage, meaning: 'the encryption key file is readable by others'},
  UPLOADS_DIR_MISSING: {exit: E.usage, meaning: 'UPLOADS_DIR does not exist'},
  CROSS_STORE_MISMATCH: {exit: E.findings, meaning: 'backup all finished but the database and file stores disagree'},
  BACKUP_WAL_NOT_ARCHIVED: {exit: E.unreachable, meaning: 'the WAL a physical backup needs was not archived in time'},
  // base backups (file engine)
  BASE_BLOCK_CORRUPT: {exit: E.findings, meaning: 'a stored block of a base backup is damaged'},
  BASE_BLOCK_MISSING: {exit: E.findings, meaning: 'a block a base backup references is missing'},
  BASE_CHAIN_BROKEN: {exit: E.findings, meaning: 'a base backup references a backup that is gone'},
  BASE_DATADIR: {exit: E.usage, meaning: 'the data directory cannot be read by the file engine'},
  BASE_NO_PRIOR: {exit: E.usage, meaning: 'no full base backup to build a differential or incremental on'},
  BASE_PRIOR_FAILED: {exit: E.findings, meaning: 'the prior base backup failed verification'},
  BASE_PRIOR_MISSING: {exit: E.findings, meaning: 'a prior base backup has an unreadable manifest'},
  BASE_STANDBY: {exit: E.usage, meaning: 'the file engine backs up a primary only'},
  BASE_TABLESPACES: {exit: E.usage, meaning: 'the server has user tablespaces, which the file engine does not back up'},
  // WAL
  WAL_ARCHIVE_COMMAND_EMPTY: {exit: E.usage, meaning: 'archive_command is empty'},
  WAL_ARCHIVE_OFF: {exit: E.usage, meaning: 'WAL archiving is not configured'},
  WAL_BAD_NAME: {exit: E.usage, meaning: 'not a WAL file name'},
  WAL_CHECK_STANDBY: {exit: E.usage, meaning: 'wal check was pointed at a standby'},
  WAL_CHECK_TIMEOUT: {exit: E.findings, meaning: 'the switched WAL segment did not reach the repository in time'},
  WAL_CLUSTER_MISMATCH: {exit: E.usage, meaning: 'the repository belongs to another cluster'},
  WAL_CONFLICT: {exit: E.usage, meaning: 'the WAL file is already archived with different content'},
  WAL_NAME_MISMATCH: {exit: E.usage, meaning: 'the WAL file holds another timeline than its name says'},
  WAL_NOT_A_SEGMENT: {exit: E.usage, meaning: 'the file does not start with a WAL segment header'},
  WAL_REPO_PERMISSION: {exit: E.usage, meaning: 'permission denied in the WAL repository'},
  WAL_UNREADABLE: {exit: E.usage, meaning: 'the WAL file cannot be read'},
  // restore and point-in-time recovery
  BAD_TARGET: {exit: E.usage, meaning: 'refusing to restore into a system database'},
  TARGET_IN_USE: {exit: E.usage, meaning: 'the target database stays in use'},
  TARGET_NOT_EMPTY: {exit: E.usage, meaning: 'the target database is not empty'},
  RESTORE_NEEDS_SUPERUSER: {exit: E.usage, meaning: 'pg_restore needs a role with more privileges'},
  RESTORE_LEFTOVER: {exit: E.usage, meaning: 'a leftover directory of an earlier restore is in the way'},
  ROW_COUNTS_DIFFER: {exit: E.findings, meaning: 'restored row counts differ from the backup'},
  FILES_MISMATCH: {exit: E.findings, meaning: 'restored files do not match the backup file list'},
  CHROMA_COUNTS_DIFFER: {
    exit: E.findings,
    meaning: 'the restored Chroma collections hold other counts than the backup',
  },
  NO_SPACE: {exit: E.unreachable, meaning: 'not enough free space for the restored copy'},
  MIGRATION_HEAD_NEWER: {
    exit: E.usage,
    meaning: 'the backup was taken at a newer migration than the installed service',
  },
  DRILL_NO_CREATEDB: {exit: E.usage, meaning: 'the restore drill cannot create its scratch database'},
  PITR_BASE_CORRUPT: {exit: E.findings, meaning: 'a base backup file does not match its manifest checksum'},
  PITR_DATADIR: {exit: E.usage, meaning: 'the recovery data directory is not a directory'},
  PITR_DATADIR_NOT_EMPTY: {exit: E.usage, meaning: 'the recovery data directory is not empty'},
  PITR_DATADIR_OWNER: {exit: E.usage, meaning: 'the recovery data directory belongs to root'},
  PITR_DATADIR_RUNNING: {exit: E.usage, meaning: 'a server runs on the recovery data directory'},
  PITR_NO_BASE: {exit: E.usage, meaning: 'no base backup precedes the recovery target'},
  PITR_TARGET: {exit: E.usage, meaning: 'the recovery target flags are missing or contradictory'},
  PITR_TARGET_BEYOND_ARCHIVE: {
    exit: E.findings,
    meaning:
      'the recovery target lies beyond the archived WAL (after its newest segment, or for a time after its last commit)',
  },
  PITR_TARGET_NOT_REACHED: {
    exit: E.findings,
    meaning: 'recovery ended before the target was reached; the server did not promote',
  },
  PITR_RECOVERY_FAILED: {exit: E.findings, meaning: 'PostgreSQL recovery failed; nothing was promoted'},
  PITR_WAL_MISSING: {exit: E.findings, meaning: 'WAL needed to make the base backup consistent is missing'},
  PITR_WAL_UNREADABLE: {
    exit: E.findings,
    meaning: 'pg_waldump cannot read an archived segment, so how far the archive reaches cannot be told',
  },
  RECOVER_NO_ENV: {exit: E.usage, meaning: 'recover has no backend .env to repoint'},
  RECOVER_PGBOUNCER_INI: {exit: E.usage, meaning: 'the PgBouncer configuration cannot be read'},
  RECOVER_PGBOUNCER_NO_ENTRY: {exit: E.usage, meaning: "the database has no entry in PgBouncer's [databases]"},
  RECOVER_PGBOUNCER_RELOAD: {exit: E.usage, meaning: 'PgBouncer cannot be told to reload'},
  RECOVER_ROLLBACK_FAILED: {
    exit: E.findings,
    meaning: 'a compose recovery failed and putting the old cluster back did not complete',
  },
  RECOVER_STATE_MISMATCH: {exit: E.usage, meaning: 'an unfinished recovery with other settings is recorded'},
  RECOVER_VERIFY_FAILED: {exit: E.findings, meaning: 'the recovered server failed verification'},
  // migrations
  MIGRATIONS_PENDING: {exit: E.pendingMigrations, meaning: 'migrations are pending'},
  MIGRATION_FILE_INVALID: {exit: E.usage, meaning: 'a migration file cannot be used as written'},
  MIGRATION_FAILED: {
    exit: [E.rolledBack, E.pendingMigrations],
    meaning: 'a migration failed and was rolled back (exit 6); exit 3 when the history records that failure',
  },
  MIGRATION_FAILED_PARTIAL: {exit: E.findings, meaning: 'a no-transaction migration failed part-way (migrate repair)'},
  MIGRATION_CHANGED: {exit: E.pendingMigrations, meaning: 'an applied migration file was edited'},
  MIGRATION_MISSING: {exit: E.pendingMigrations, meaning: 'an applied migration file is missing'},
  MIGRATION_OUT_OF_ORDER: {exit: E.pendingMigrations, meaning: 'a pending migration sorts before an applied one'},
  MIGRATION_IRREVERSIBLE: {exit: E.usage, meaning: 'the migration has no down section'},
  SCHEMA_NOT_EMPTY: {
    exit: E.pendingMigrations,
    meaning: 'the schema has tables but no migration history (baseline it)',
  },
  HISTORY_NOT_EMPTY: {exit: E.pendingMigrations, meaning: 'the migration history already has entries'},
  // service, sandbox, images
  SERVICE_NOT_BUILT: {exit: E.usage, meaning: 'the bundled service is not built'},
  SERVICE_START_FAILED: {
    exit: [E.findings, E.unreachable],
    meaning: 'a service process could not start (exit 5 when it started and died or never answered)',
  },
  LOG_NOT_FOUND: {exit: E.usage, meaning: 'no such service log'},
  SANDBOX_MISSING: {exit: E.usage, meaning: 'no sandbox exists at that root'},
  SANDBOX_NO_PG_USER: {exit: E.unreachable, meaning: 'running as root with no postgres OS user'},
  SANDBOX_API_ERROR: {exit: E.unreachable, meaning: 'the sandbox service answered an error'},
  SANDBOX_ANALYSES_TIMEOUT: {exit: E.unreachable, meaning: 'the sandbox analyses did not finish in time'},
  IMAGES_BASE_MISSING: {exit: E.usage, meaning: 'the base image is not in the Docker daemon'},
  IMAGES_MISSING: {exit: E.usage, meaning: 'the image sources are missing from this installation'},
  IMAGES_NODE_FETCH: {exit: E.unreachable, meaning: 'the Node.js runtime for the images cannot be fetched'},
  IMAGES_UNSUPPORTED_ARCH: {exit: E.usage, meaning: 'images build supports x64 and arm64 only'},
  // upgrade
  UPGRADE_PREFLIGHT_FAILED: {
    exit: [E.findings, E.usage, E.pendingMigrations, E.locked, E.unreachable],
    meaning: 'an upgrade preflight check failed; nothing changed (exit of the gravest failed check)',
  },
  UPGRADE_REHEARSAL_FAILED: {exit: E.findings, meaning: 'the upgrade rehearsal failed'},
  UPGRADE_VERIFY_FAILED: {exit: E.findings, meaning: 'the upgraded service failed verification'},
  UPGRADE_ROLLBACK_FAILED: {exit: E.findings, meaning: 'the upgrade failed and so did its rollback'},
  UPGRADE_OTHER_HOST: {exit: E.locked, meaning: 'the interrupted upgrade ran on another host'},
  JOURNAL_UNREADABLE: {
    exit: E.findings,
    meaning:
      'a resumable run\'s journal (recover, restore files) exists but cannot be parsed: never read as "no journal"',
  },
  UPGRADE_JOURNAL_UNREADABLE: {
    exit: E.findings,
    meaning: "the upgrade journal cannot be parsed (an interrupted upgrade's record is damaged)",
  },
  REHEARSE_NO_CREATEDB: {exit: E.usage, meaning: 'the rehearsal cannot create its scratch database'},
  RELEASE_STAGING_MISSING: {exit: E.findings, meaning: 'the staged release is gone'},
  TYPESCRIPT_MISSING: {exit: E.unreachable, meaning: 'TypeScript is missing to build the service from sources'},
} as const satisfies Record<string, ErrorCodeInfo>

export type ErrorCode = keyof typeof ERROR_CODES

/** The exit codes a registered code may leave with. */
export function exitCodesOf(code: ErrorCode): readonly ExitCodeValue[] {
  const exit: ErrorCodeInfo['exit'] = ERROR_CODES[code].exit
  return typeof exit === 'number' ? [exit] : exit
}

/** docs/exit-codes.md, rendered by the build from this file (one place for the table). */
export function renderExitCodeDocs(): string {
  const lines = [
    '# Exit codes and error codes',
    '',
    '<!-- Generated from src/errors.ts by `npm run build`; do not edit by hand. -->',
    '',
    'Every failure prints `error [CODE]: message` (and a hint) on stderr; with `--json` the same code is in `error.code`.',
    'Exit 70 means a bug in charge-ops: rerun with `--verbose` and report the output.',
    'The same tables are in the CLI: `charge-ops --help` ends with the exit codes, `charge-ops --help exit-codes` lists every code.',
    '',
    '| exit | meaning |',
    '|---:|---|',
    ...Object.entries(EXIT_CODE_DOCS).map(([exit, meaning]) => `| ${exit} | ${meaning} |`),
    '',
    '## Error codes',
    '',
    '| code | exit | meaning |',
    '|---|---:|---|',
    ...(Object.keys(ERROR_CODES) as ErrorCode[])
      .sort()
      .map((code) => `| \`${code}\` | ${exitCodesOf(code).join(', ')} | ${ERROR_CODES[code].meaning} |`),
    '',
  ]
  return lines.join('\n')
}

export interface CliErrorOptions {
  /** what the user should do next */
  hint?: string
  cause?: unknown
  /** extra machine-readable detail for --json */
  data?: Record<string, unknown>
}

export class CliError extends Error {
  readonly exitCode: ExitCodeValue
  readonly code: ErrorCode
  readonly hint?: string
  readonly data?: Record<string, unknown>

  constructor(code: ErrorCode, exitCode: ExitCodeValue, message: string, options: CliErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : {cause: options.cause})
    this.name = new.target.name
    this.code = code
    this.exitCode = exitCode
    this.hint = options.hint
    this.data = options.data
  }
}

/** Bad flags, arguments or input files. */
export class UsageError extends CliError {
  constructor(message: string, options?: CliErrorOptions & {code?: ErrorCode}) {
    super(options?.code ?? 'USAGE', ExitCode.usage, message, options)
  }
}

/** Configuration that cannot be read or is invalid. */
export class ConfigError extends CliError {
  constructor(message: string, options?: CliErrorOptions & {code?: ErrorCode}) {
    super(options?.code ?? 'CONFIG_INVALID', ExitCode.usage, message, options)
  }
}

/** Checks ran and found problems; the command already printed them. */
export class ChecksFailedError extends CliError {
  constructor(message: string, options?: CliErrorOptions & {code?: ErrorCode}) {
    super(options?.code ?? 'CHECKS_FAILED', ExitCode.findings, message, options)
  }
}

export class PendingMigrationsError extends CliError {
  constructor(message: string, options?: CliErrorOptions) {
    super('MIGRATIONS_PENDING', ExitCode.pendingMigrations, message, options)
  }
}

export class LockHeldError extends CliError {
  constructor(message: string, options?: CliErrorOptions) {
    super('LOCK_HELD', ExitCode.locked, message, options)
  }
}

/** PostgreSQL, Redis, Chroma, S3 or a required binary cannot be reached. */
export class UnreachableError extends CliError {
  constructor(message: string, options?: CliErrorOptions & {code?: ErrorCode}) {
    super(options?.code ?? 'DEPENDENCY_UNREACHABLE', ExitCode.unreachable, message, options)
  }
}

/** The operation failed and the previous state was restored. */
export class RolledBackError extends CliError {
  constructor(message: string, options?: CliErrorOptions) {
    super('ROLLED_BACK', ExitCode.rolledBack, message, options)
  }
}

/** An outside program failed; records the (redacted) command line. */
export class ExternalCommandError extends CliError {
  readonly command: string
  constructor(
    command: string,
    message: string,
    options?: CliErrorOptions & {exitCode?: ExitCodeValue; code?: ErrorCode},
  ) {
    super(options?.code ?? 'EXTERNAL_COMMAND_FAILED', options?.exitCode ?? ExitCode.findings, message, options)
    this.command = command
  }
}

/** Normalises anything thrown into what the CLI prints and the code it exits with. */
export function describeError(error: unknown): {
  code: ErrorCode
  exitCode: ExitCodeValue
  message: string
  hint?: string
  data?: Record<string, unknown>
} {
  if (error instanceof CliError) {
    return {code: error.code, exitCode: error.exitCode, message: error.message, hint: error.hint, data: error.data}
  }
  const oclifExit = (error as {oclif?: {exit?: number}})?.oclif?.exit
  if (typeof oclifExit === 'number') {
    // oclif's own parse errors (unknown flag, missing arg) are usage errors.
    return {code: 'USAGE', exitCode: ExitCode.usage, message: (error as Error).message}
  }
  const message = error instanceof Error ? error.message : String(error)
  const server = describeServerError(error, message)
  if (server) return server
  return {
    code: 'INTERNAL',
    exitCode: ExitCode.bug,
    message,
    hint: 'This is a bug in charge-ops; rerun with --verbose and report the output.',
  }
}

/**
 * A PostgreSQL error that escaped without a more specific wrapper is the server refusing, not a
 * bug: the configured role lacks a privilege, its password is wrong, or the server went away.
 */
function describeServerError(error: unknown, message: string): ReturnType<typeof describeError> | undefined {
  const {code, severity} = (error ?? {}) as {code?: unknown; severity?: unknown}
  if (typeof code !== 'string' || !/^[0-9A-Z]{5}$/.test(code) || typeof severity !== 'string') return undefined
  const data = {sqlstate: code}
  if (code === '42501') {
    return {
      code: 'PG_PERMISSION_DENIED',
      exitCode: ExitCode.usage,
      message: `PostgreSQL: ${message}`,
      hint: 'The role in the connection URL lacks that privilege: grant it, or use a role that has it.',
      data,
    }
  }
  if (code.startsWith('28'))
    return {
      code: 'PG_AUTH_FAILED',
      exitCode: ExitCode.usage,
      message: `PostgreSQL: ${message}`,
      hint: 'Check the user and password of the connection URL.',
      data,
    }
  if (code.startsWith('08') || code.startsWith('57P') || code === '53300') {
    return {
      code: 'PG_UNREACHABLE',
      exitCode: ExitCode.unreachable,
      message: `PostgreSQL: ${message}`,
      hint: 'Check that the server runs and accepts connections, then rerun.',
      data,
    }
  }
  return undefined
}
