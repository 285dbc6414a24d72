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

/** Documented meaning of every exit code, rendered into the README and `--help`. */
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

export interface CliErrorOptions {
  /** what the user should do next */
  hint?: string
  cause?: unknown
  /** extra machine-readable detail for --json */
  data?: Record<string, unknown>
}

export class CliError extends Error {
  readonly exitCode: ExitCodeValue
  readonly code: string
  readonly hint?: string
  readonly data?: Record<string, unknown>

  constructor(code: string, exitCode: ExitCodeValue, message: string, options: CliErrorOptions = {}) {
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
  constructor(message: string, options?: CliErrorOptions & {code?: string}) {
    super(options?.code ?? 'USAGE', ExitCode.usage, message, options)
  }
}

/** Configuration that cannot be read or is invalid. */
export class ConfigError extends CliError {
  constructor(message: string, options?: CliErrorOptions & {code?: string}) {
    super(options?.code ?? 'CONFIG_INVALID', ExitCode.usage, message, options)
  }
}

/** Checks ran and found problems; the command already printed them. */
export class ChecksFailedError extends CliError {
  constructor(message: string, options?: CliErrorOptions & {code?: string}) {
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
  constructor(message: string, options?: CliErrorOptions & {code?: string}) {
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
  constructor(command: string, message: string, options?: CliErrorOptions & {exitCode?: ExitCodeValue; code?: string}) {
    super(options?.code ?? 'EXTERNAL_COMMAND_FAILED', options?.exitCode ?? ExitCode.findings, message, options)
    this.command = command
  }
}

/** Normalises anything thrown into what the CLI prints and the code it exits with. */
export function describeError(error: unknown): {code: string; exitCode: ExitCodeValue; message: string; hint?: string; data?: Record<string, unknown>} {
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
  return {code: 'INTERNAL', exitCode: ExitCode.bug, message, hint: 'This is a bug in charge-ops; rerun with --verbose and report the output.'}
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
    return {code: 'PG_PERMISSION_DENIED', exitCode: ExitCode.usage, message: `PostgreSQL: ${message}`, hint: 'The role in the connection URL lacks that privilege: grant it, or use a role that has it.', data}
  }
  if (code.startsWith('28')) return {code: 'PG_AUTH_FAILED', exitCode: ExitCode.usage, message: `PostgreSQL: ${message}`, hint: 'Check the user and password of the connection URL.', data}
  if (code.startsWith('08') || code.startsWith('57P') || code === '53300') {
    return {code: 'PG_UNREACHABLE', exitCode: ExitCode.unreachable, message: `PostgreSQL: ${message}`, hint: 'Check that the server runs and accepts connections, then rerun.', data}
  }
  return undefined
}
