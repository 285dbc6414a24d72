/**
 * The migration engine: applies and reverts `service/migrations`, one runner at a time (advisory
 * lock), each migration in its own transaction (unless marked no-transaction) with lock_timeout and
 * statement_timeout set, and its history row written in that same transaction.
 */
import os from 'node:os'

import type {Client} from 'pg'

import {faultPoint} from '../core/faults.js'
import {UsageError} from '../errors.js'
import {silentLogger, type Logger} from '../output/logger.js'
import {connect} from '../postgres/connection.js'
import {formatMs, parseTimeout} from '../core/units/duration.js'
import {MigrationFailedError, MigrationStateError} from './errors.js'
import {compareVersions, loadMigrations, sameVersion, type MigrationFile, type MigrationSection} from './files.js'
import {
  deleteHistory,
  ensureHistoryTable,
  historyTableExists,
  insertHistory,
  markSucceeded,
  readHistory,
  HISTORY_TABLE,
  type HistoryRow,
} from './history.js'
import {acquireMigrationLock, unlock} from './lock.js'
import {lineOfPosition} from './sql-split.js'
import {compareWithHistory, type MigrationComparison, type Problem, type StatusEntry} from './state.js'

export const DEFAULT_LOCK_TIMEOUT = '10s'
export const DEFAULT_STATEMENT_TIMEOUT = '30min'

export interface ConnectionOptions {
  databaseUrl: string
  migrationsDir: string
  logger?: Logger
}

export interface RunOptions extends ConnectionOptions {
  /** how long to wait for another runner's lock, in ms (0 / undefined: fail at once, exit 4) */
  lockWait?: number
  /** print the plan and SQL, change nothing */
  dryRun?: boolean
  /** default lock_timeout per migration (a file's directive wins), e.g. "10s"; "0" = none */
  lockTimeout?: string
  /** default statement_timeout per migration (a file's directive wins), e.g. "30min"; "0" = none */
  statementTimeout?: string
  /** recorded in the history (default: OS user@host) */
  appliedBy?: string
}

export interface UpOptions extends RunOptions {
  /** apply up to and including this version */
  to?: string
  /** apply pending migrations below the applied head too */
  outOfOrder?: boolean
}

export interface DownOptions extends RunOptions {
  /** revert this many migrations (default 1) */
  steps?: number
  /** revert every migration above this version ("0": all) */
  to?: string
}

export interface PlannedMigration {
  version: string
  name: string
  file: string
  direction: 'up' | 'down'
  transactional: boolean
  lockTimeoutMs: number
  statementTimeoutMs: number
  statements: number
  /** the SQL that runs (the section's text) */
  sql: string
}

export interface AppliedMigration {
  version: string
  name: string
  file: string
  direction: 'up' | 'down'
  executionMs: number
}

export interface MigrateResult {
  direction: 'up' | 'down'
  dryRun: boolean
  /** what runs (or, with dryRun, would run), in order */
  plan: PlannedMigration[]
  /** what ran */
  applied: AppliedMigration[]
  /** head version before and after */
  before: string | null
  current: string | null
  /** migrations still pending afterwards */
  pending: number
  totalMs: number
}

export function defaultAppliedBy(): string {
  let user = process.env.USER ?? 'unknown'
  try {
    user = os.userInfo().username
  } catch {
    // no passwd entry (containers): keep $USER
  }
  return `${user}@${os.hostname()}`
}

async function openSession(databaseUrl: string): Promise<Client> {
  return connect(databaseUrl, {applicationName: `charge-ops migrate (pid ${process.pid} on ${os.hostname()})`})
}

/** Runs `fn` holding the migration lock on a dedicated session; always unlocks and disconnects. */
async function withLockedSession<T>(options: RunOptions, fn: (client: Client) => Promise<T>): Promise<T> {
  const logger = options.logger ?? silentLogger
  const client = await openSession(options.databaseUrl)
  try {
    await acquireMigrationLock(client, {
      waitMs: options.lockWait ?? 0,
      onWait: (holder) =>
        logger.info(
          `waiting for the migration lock held by pid ${holder?.pid ?? '?'} (${holder?.applicationName ?? 'unknown'}), up to ${formatMs(options.lockWait ?? 0)}…`,
        ),
      onTakeover: (holder, deadPid) =>
        logger.warn(
          `the migration lock was held by server session ${holder.pid} of a charge-ops migrate run that no longer runs (pid ${deadPid}, killed?): ended that session — PostgreSQL rolled its transaction back — and took the lock over`,
        ),
    })
    try {
      return await fn(client)
    } finally {
      await unlock(client).catch(() => {})
    }
  } finally {
    await client.end().catch(() => {})
  }
}

async function withSession<T>(databaseUrl: string, fn: (client: Client) => Promise<T>): Promise<T> {
  const client = await openSession(databaseUrl)
  try {
    return await fn(client)
  } finally {
    await client.end().catch(() => {})
  }
}

const DRIFT_CODES = {
  changed: 'MIGRATION_CHANGED',
  missing: 'MIGRATION_MISSING',
  failed: 'MIGRATION_FAILED',
  'out-of-order': 'MIGRATION_OUT_OF_ORDER',
} as const

/** Refuses to run over drift: edited / missing applied migrations, failed entries, out-of-order files. */
function assertNoDrift(comparison: MigrationComparison, options: {outOfOrder?: boolean}): void {
  const blocking = comparison.problems.filter((p) => !(p.kind === 'out-of-order' && options.outOfOrder))
  if (blocking.length === 0) return
  const first = blocking[0]
  const more =
    blocking.length > 1
      ? ` (and ${blocking.length - 1} more problem${blocking.length > 2 ? 's' : ''}: see \`charge-ops migrate validate\`)`
      : ''
  throw new MigrationStateError(DRIFT_CODES[first.kind], `${first.message}${more}`, {
    hint: first.hint,
    data: {problems: blocking},
  })
}

/**
 * Without a history table, a schema that already has tables was not built by charge-ops. Objects
 * of an extension (pg_stat_statements' views, created before the first migration as
 * `db slow-queries` advises) are not the application's schema and do not count.
 */
async function assertFreshOrTracked(client: Client): Promise<void> {
  if (await historyTableExists(client)) return
  const {rows} = await client.query<{n: string}>(
    `SELECT count(*) AS n FROM pg_class c JOIN pg_namespace s ON s.oid = c.relnamespace
      WHERE s.nspname = current_schema() AND c.relkind IN ('r', 'p', 'v', 'm') AND c.relname <> $1
        AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid AND d.deptype = 'e')`,
    [HISTORY_TABLE],
  )
  if (Number(rows[0].n) > 0) {
    throw new MigrationStateError(
      'SCHEMA_NOT_EMPTY',
      `the schema already has ${rows[0].n} table(s) but no ${HISTORY_TABLE} history`,
      {
        hint: 'This database was not set up by charge-ops migrate. Mark the existing schema as applied up to a version with `charge-ops migrate baseline --version <V>`, then run `migrate up`.',
      },
    )
  }
}

function timeouts(file: MigrationFile, options: RunOptions): {lockTimeoutMs: number; statementTimeoutMs: number} {
  return {
    lockTimeoutMs: file.lockTimeoutMs ?? parseTimeout(options.lockTimeout ?? DEFAULT_LOCK_TIMEOUT, 'lock timeout'),
    statementTimeoutMs:
      file.statementTimeoutMs ??
      parseTimeout(options.statementTimeout ?? DEFAULT_STATEMENT_TIMEOUT, 'statement timeout'),
  }
}

function planOf(file: MigrationFile, direction: 'up' | 'down', options: RunOptions): PlannedMigration {
  const section = direction === 'up' ? file.up : file.down!
  return {
    version: file.version,
    name: file.name,
    file: file.file,
    direction,
    transactional: file.transactional,
    ...timeouts(file, options),
    statements: section.statements.length,
    sql: section.sql.trim(),
  }
}

function failure(
  error: unknown,
  file: MigrationFile,
  section: MigrationSection,
  index: number,
  direction: 'up' | 'down',
  rolledBack: boolean,
): MigrationFailedError {
  const statement = section.statements[index]
  const pgError = error as {
    message?: string
    code?: string
    position?: string
    detail?: string
    hint?: string
    where?: string
  }
  const line = statement.line + (pgError.position ? lineOfPosition(statement.sql, Number(pgError.position)) : 0)
  const excerpt = statement.sql.length > 200 ? `${statement.sql.slice(0, 200)}…` : statement.sql
  const reason = pgError.message ?? String(error)
  let hint: string
  if (pgError.code === '55P03')
    hint =
      'lock_timeout expired: another session holds a lock on the table. Retry when traffic is lower, or raise the limit (--lock-timeout or "-- charge-ops:lock-timeout").'
  else if (pgError.code === '57014')
    hint =
      'statement_timeout expired. Raise it for this migration with "-- charge-ops:statement-timeout 2h" (or --statement-timeout).'
  else hint = rolledBack ? 'Fix the statement and rerun.' : 'Fix the statement.'
  if (rolledBack) hint = `Nothing of ${file.file} was applied (its transaction was rolled back). ${hint}`
  else
    hint = `${file.file} ran outside a transaction, so statements before line ${statement.line} stayed applied; it is recorded as failed. Finish or undo it by hand, then \`charge-ops migrate repair --yes\` and rerun. ${hint}`
  const detail = pgError.detail ? ` (${pgError.detail})` : ''
  return new MigrationFailedError(
    `migration ${file.file} failed (${direction}) at line ${line}, statement ${index + 1} of ${section.statements.length}: ${reason}${detail}\n    ${excerpt.replaceAll('\n', '\n    ')}`,
    {
      version: file.version,
      name: file.name,
      file: file.path,
      line,
      statement: excerpt,
      sqlState: pgError.code,
      rolledBack,
      direction,
    },
    {hint, cause: error},
  )
}

async function runStatements(
  client: Client,
  file: MigrationFile,
  section: MigrationSection,
  direction: 'up' | 'down',
  rolledBack: boolean,
): Promise<void> {
  for (const [index, statement] of section.statements.entries()) {
    try {
      const running = client.query(statement.sql)
      // kill point: the statement is on the server, running, when this run dies — its session
      // outlives the client (holding the migration lock) until it next reads from the socket
      const fault = faultPoint(`migrate.${direction}.statement-sent`, () => ({
        version: file.version,
        statement: index + 1,
      }))
      if (fault) {
        running.catch(() => {}) // awaited below; not an unhandled rejection while paused
        await fault
      }
      await running
    } catch (error) {
      throw failure(error, file, section, index, direction, rolledBack)
    }
  }
}

async function applyOne(
  client: Client,
  file: MigrationFile,
  direction: 'up' | 'down',
  options: RunOptions,
  appliedBy: string,
): Promise<number> {
  const section = direction === 'up' ? file.up : file.down!
  const {lockTimeoutMs, statementTimeoutMs} = timeouts(file, options)
  const started = performance.now()
  const elapsed = () => Math.round(performance.now() - started)
  if (file.transactional) {
    await client.query('BEGIN')
    try {
      await client.query(`SET LOCAL lock_timeout = ${lockTimeoutMs}`)
      await client.query(`SET LOCAL statement_timeout = ${statementTimeoutMs}`)
      await runStatements(client, file, section, direction, true)
      if (direction === 'up')
        await insertHistory(client, {
          version: file.version,
          name: file.name,
          checksum: file.checksum,
          executionMs: elapsed(),
          appliedBy,
          success: true,
          kind: 'sql',
        })
      else await deleteHistory(client, file.version)
      // kill point: statements and history row written, not committed — PostgreSQL rolls all of it back
      await faultPoint(`migrate.${direction}.before-commit`, () => ({version: file.version}))
      await client.query('COMMIT')
    } catch (error) {
      await client.query('ROLLBACK').catch(() => {})
      if (error instanceof MigrationFailedError) throw error
      // COMMIT itself (a deferred constraint) or the history write failed: still rolled back whole.
      const pgError = error as {message?: string; code?: string}
      throw new MigrationFailedError(
        `migration ${file.file} failed (${direction}) at COMMIT: ${pgError.message ?? String(error)}`,
        {
          version: file.version,
          name: file.name,
          file: file.path,
          line: section.line,
          statement: 'COMMIT',
          sqlState: pgError.code,
          rolledBack: true,
          direction,
        },
        {
          hint: `Nothing of ${file.file} was applied (its transaction was rolled back). Check deferred constraints and rerun.`,
          cause: error,
        },
      )
    }
    return elapsed()
  }
  // No transaction: record the attempt first, so an interruption leaves a visible "failed" entry.
  if (direction === 'up')
    await insertHistory(client, {
      version: file.version,
      name: file.name,
      checksum: file.checksum,
      executionMs: 0,
      appliedBy,
      success: false,
      kind: 'sql',
    })
  else await client.query(`UPDATE ${HISTORY_TABLE} SET success = false WHERE version = $1`, [file.version])
  await client.query(`SET lock_timeout = ${lockTimeoutMs}`)
  await client.query(`SET statement_timeout = ${statementTimeoutMs}`)
  try {
    await runStatements(client, file, section, direction, false)
  } finally {
    await client.query('RESET lock_timeout').catch(() => {})
    await client.query('RESET statement_timeout').catch(() => {})
  }
  if (direction === 'up') await markSucceeded(client, file.version, elapsed())
  else await deleteHistory(client, file.version)
  return elapsed()
}

/** Applies pending migrations (up to `to`). */
export async function migrateUp(options: UpOptions): Promise<MigrateResult> {
  const logger = options.logger ?? silentLogger
  const files = loadMigrations(options.migrationsDir)
  if (options.to !== undefined && !files.some((f) => sameVersion(f.version, options.to!))) {
    throw new UsageError(`--to ${options.to}: no migration with that version in ${options.migrationsDir}`, {
      hint: 'Use a version shown by `charge-ops migrate status`.',
    })
  }
  const started = performance.now()
  const select = (comparison: MigrationComparison) =>
    comparison.pending.filter((f) => options.to === undefined || compareVersions(f.version, options.to) <= 0)

  if (options.dryRun) {
    return withSession(options.databaseUrl, async (client) => {
      await assertFreshOrTracked(client)
      const comparison = compareWithHistory(files, await readHistory(client))
      assertNoDrift(comparison, options)
      const plan = select(comparison).map((f) => planOf(f, 'up', options))
      return {
        direction: 'up',
        dryRun: true,
        plan,
        applied: [],
        before: comparison.current,
        current: comparison.current,
        pending: comparison.pending.length,
        totalMs: Math.round(performance.now() - started),
      }
    })
  }

  return withLockedSession(options, async (client) => {
    await assertFreshOrTracked(client)
    await ensureHistoryTable(client)
    // Read the history only under the lock: a runner that waited sees what the other one applied.
    const comparison = compareWithHistory(files, await readHistory(client))
    assertNoDrift(comparison, options)
    const todo = select(comparison)
    const plan = todo.map((f) => planOf(f, 'up', options))
    const applied: AppliedMigration[] = []
    const appliedBy = options.appliedBy ?? defaultAppliedBy()
    if (todo.length === 0)
      logger.info(`database is up to date${comparison.current ? ` (at ${comparison.current})` : ''}`)
    for (const [k, file] of todo.entries()) {
      logger.info(`applying ${file.file} (${k + 1}/${todo.length})${file.transactional ? '' : ' [no transaction]'}…`)
      const executionMs = await applyOne(client, file, 'up', options, appliedBy)
      applied.push({version: file.version, name: file.name, file: file.file, direction: 'up', executionMs})
      logger.info(`  applied ${file.file} in ${formatMs(executionMs)}`)
      // kill point: between two migrations — the history records exactly the committed ones
      await faultPoint('migrate.up.committed', () => ({version: file.version}))
    }
    const current = applied.length > 0 ? applied.at(-1)!.version : comparison.current
    return {
      direction: 'up',
      dryRun: false,
      plan,
      applied,
      before: comparison.current,
      current:
        current !== null && comparison.current !== null && compareVersions(comparison.current, current) > 0
          ? comparison.current
          : current,
      pending: comparison.pending.length - applied.length,
      totalMs: Math.round(performance.now() - started),
    }
  })
}

/** Reverts the latest `steps` migrations (default 1), or every one above `to`. */
export async function migrateDown(options: DownOptions): Promise<MigrateResult> {
  const logger = options.logger ?? silentLogger
  if (options.steps !== undefined && options.to !== undefined)
    throw new UsageError('use either --steps or --to, not both')
  if (options.steps !== undefined && (!Number.isInteger(options.steps) || options.steps < 1))
    throw new UsageError(`--steps must be a positive whole number, not ${options.steps}`)
  if (options.to !== undefined && !/^\d+$/.test(options.to))
    throw new UsageError(`--to must be a version number (e.g. 0003, or 0 for all), not "${options.to}"`)
  const files = loadMigrations(options.migrationsDir)
  const started = performance.now()

  const planDown = (history: HistoryRow[]) => {
    const comparison = compareWithHistory(files, history)
    const blocking = comparison.problems.filter((p) => p.kind !== 'out-of-order')
    assertNoDrift({...comparison, problems: blocking}, {})
    const applied = history.filter((r) => r.success).sort((a, b) => compareVersions(b.version, a.version))
    let chosen: HistoryRow[]
    if (options.to !== undefined) {
      if (BigInt(options.to) !== 0n && !applied.some((r) => sameVersion(r.version, options.to!))) {
        throw new UsageError(`--to ${options.to}: that version is not applied`, {
          hint: 'Use a version listed by `charge-ops migrate history`, or --to 0 to revert everything.',
        })
      }
      chosen = applied.filter((r) => compareVersions(r.version, options.to!) > 0)
    } else chosen = applied.slice(0, options.steps ?? 1)
    const todo = chosen.map((row) => files.find((f) => sameVersion(f.version, row.version))!)
    const irreversible = todo.filter((f) => f.down === undefined)
    if (irreversible.length > 0) {
      throw new UsageError(
        `${irreversible[0].file} is irreversible (it has no "-- charge-ops:down" section); nothing was reverted`,
        {
          code: 'MIGRATION_IRREVERSIBLE',
          hint: 'Restore from a backup taken before it was applied, or write a new forward migration that undoes the change.',
        },
      )
    }
    return {comparison, todo}
  }

  if (options.dryRun) {
    return withSession(options.databaseUrl, async (client) => {
      const {comparison, todo} = planDown(await readHistory(client))
      const plan = todo.map((f) => planOf(f, 'down', options))
      const after =
        todo.length > 0 ? previousApplied(await readHistory(client), todo.at(-1)!.version) : comparison.current
      return {
        direction: 'down',
        dryRun: true,
        plan,
        applied: [],
        before: comparison.current,
        current: after,
        pending: comparison.pending.length,
        totalMs: Math.round(performance.now() - started),
      }
    })
  }

  return withLockedSession(options, async (client) => {
    const history = await readHistory(client)
    const {comparison, todo} = planDown(history)
    const plan = todo.map((f) => planOf(f, 'down', options))
    const appliedBy = options.appliedBy ?? defaultAppliedBy()
    const applied: AppliedMigration[] = []
    if (todo.length === 0) logger.info('nothing to revert')
    for (const [k, file] of todo.entries()) {
      logger.info(`reverting ${file.file} (${k + 1}/${todo.length})${file.transactional ? '' : ' [no transaction]'}…`)
      const executionMs = await applyOne(client, file, 'down', options, appliedBy)
      applied.push({version: file.version, name: file.name, file: file.file, direction: 'down', executionMs})
      logger.info(`  reverted ${file.file} in ${formatMs(executionMs)}`)
      await faultPoint('migrate.down.committed', () => ({version: file.version}))
    }
    const after = compareWithHistory(files, await readHistory(client))
    return {
      direction: 'down',
      dryRun: false,
      plan,
      applied,
      before: comparison.current,
      current: after.current,
      pending: after.pending.length,
      totalMs: Math.round(performance.now() - started),
    }
  })
}

function previousApplied(history: HistoryRow[], version: string): string | null {
  const below = history
    .filter((r) => r.success && compareVersions(r.version, version) < 0)
    .sort((a, b) => compareVersions(b.version, a.version))
  return below[0]?.version ?? null
}

export interface StatusResult {
  current: string | null
  /** pending migrations (out-of-order ones included) */
  pending: number
  /** edited, missing or failed applied migrations */
  drift: number
  migrations: StatusEntry[]
  problems: Problem[]
  historyTable: boolean
}

/** Files vs history, read-only (no lock taken, nothing created). */
export async function migrationStatus(options: ConnectionOptions): Promise<StatusResult> {
  const files = loadMigrations(options.migrationsDir)
  return withSession(options.databaseUrl, async (client) => {
    const exists = await historyTableExists(client)
    const comparison = compareWithHistory(files, exists ? await readHistory(client) : [])
    return {
      current: comparison.current,
      pending: comparison.pending.length,
      drift: comparison.problems.filter((p) => p.kind !== 'out-of-order').length,
      migrations: comparison.entries,
      problems: comparison.problems,
      historyTable: exists,
    }
  })
}

export interface ValidateResult {
  ok: boolean
  migrations: number
  applied: number
  pending: number
  problems: Problem[]
}

/** Checks the files parse and that applied ones are unchanged, present and in order. */
export async function validateMigrations(options: ConnectionOptions): Promise<ValidateResult> {
  const status = await migrationStatus(options)
  return {
    ok: status.problems.length === 0,
    migrations: status.migrations.filter((m) => m.file).length,
    applied: status.migrations.filter((m) => ['applied', 'baseline', 'changed'].includes(m.state)).length,
    pending: status.pending,
    problems: status.problems,
  }
}

export async function migrationHistory(options: {databaseUrl: string}): Promise<HistoryRow[]> {
  return withSession(options.databaseUrl, (client) => readHistory(client))
}

export async function currentVersion(
  options: ConnectionOptions,
): Promise<{current: string | null; name: string | null; pending: number}> {
  const status = await migrationStatus(options)
  const entry = status.migrations.find((m) => m.version === status.current)
  return {current: status.current, name: entry?.name ?? null, pending: status.pending}
}

export interface RepairAction {
  action: 'update-checksum' | 'remove-failed' | 'remove-missing'
  version: string
  name: string
  detail: string
}

export interface RepairResult {
  dryRun: boolean
  actions: RepairAction[]
}

/**
 * Realigns the history with the files: records the current checksum of edited migrations, removes
 * failed entries (after the operator fixed the partial change) and entries whose file is gone.
 */
export async function repairMigrations(options: RunOptions): Promise<RepairResult> {
  const files = loadMigrations(options.migrationsDir)
  const planRepair = (history: HistoryRow[]): RepairAction[] => {
    const comparison = compareWithHistory(files, history)
    const actions: RepairAction[] = []
    for (const entry of comparison.entries) {
      if (entry.state === 'changed')
        actions.push({
          action: 'update-checksum',
          version: entry.version,
          name: entry.name,
          detail: `record the checksum of the edited ${entry.file}`,
        })
      else if (entry.state === 'failed')
        actions.push({
          action: 'remove-failed',
          version: entry.version,
          name: entry.name,
          detail: 'remove the failed entry (it will run again on the next `migrate up`)',
        })
      else if (entry.state === 'missing')
        actions.push({
          action: 'remove-missing',
          version: entry.version,
          name: entry.name,
          detail: 'remove the entry of the missing file',
        })
    }
    return actions
  }
  if (options.dryRun)
    return withSession(options.databaseUrl, async (client) => ({
      dryRun: true,
      actions: planRepair(await readHistory(client)),
    }))
  return withLockedSession(options, async (client) => {
    const actions = planRepair(await readHistory(client))
    await client.query('BEGIN')
    try {
      for (const a of actions) {
        if (a.action === 'update-checksum') {
          const file = files.find((f) => sameVersion(f.version, a.version))!
          await client.query(`UPDATE ${HISTORY_TABLE} SET checksum = $2, name = $3 WHERE version = $1`, [
            a.version,
            file.checksum,
            file.name,
          ])
        } else await deleteHistory(client, a.version)
      }
      await faultPoint('migrate.repair.before-commit', () => ({actions: actions.length}))
      await client.query('COMMIT')
    } catch (error) {
      await client.query('ROLLBACK').catch(() => {})
      throw error
    }
    ;(options.logger ?? silentLogger).info(
      actions.length === 0
        ? 'nothing to repair'
        : `repaired ${actions.length} history entr${actions.length === 1 ? 'y' : 'ies'}`,
    )
    return {dryRun: false, actions}
  })
}

export interface BaselineResult {
  version: string
  marked: Array<{version: string; name: string}>
}

/** Marks an existing schema as migrated up to `version` without running anything. */
export async function baselineMigrations(options: RunOptions & {version: string}): Promise<BaselineResult> {
  const files = loadMigrations(options.migrationsDir)
  if (!files.some((f) => sameVersion(f.version, options.version))) {
    throw new UsageError(`--version ${options.version}: no migration with that version in ${options.migrationsDir}`, {
      hint: 'Baseline at the version whose schema the database already has.',
    })
  }
  const chosen = files.filter((f) => compareVersions(f.version, options.version) <= 0)
  const marked = chosen.map((f) => ({version: f.version, name: f.name}))
  if (options.dryRun) return {version: options.version, marked}
  return withLockedSession(options, async (client) => {
    await ensureHistoryTable(client)
    const history = await readHistory(client)
    if (history.length > 0) {
      throw new MigrationStateError(
        'HISTORY_NOT_EMPTY',
        `${HISTORY_TABLE} already has ${history.length} entr${history.length === 1 ? 'y' : 'ies'}; baseline is only for a database never migrated by charge-ops`,
        {
          hint: 'Use `charge-ops migrate status` to see where it stands.',
        },
      )
    }
    const appliedBy = options.appliedBy ?? defaultAppliedBy()
    await client.query('BEGIN')
    try {
      for (const f of chosen)
        await insertHistory(client, {
          version: f.version,
          name: f.name,
          checksum: f.checksum,
          executionMs: 0,
          appliedBy,
          success: true,
          kind: 'baseline',
        })
      await client.query('COMMIT')
    } catch (error) {
      await client.query('ROLLBACK').catch(() => {})
      throw error
    }
    return {version: options.version, marked}
  })
}
