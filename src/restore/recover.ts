/**
 * `charge-ops recover` — the guide's quick-recovery runbook (§6.1.8) as resumable steps:
 *  1 maintenance on (writes stop)       2 restore the base backup into a NEW data dir
 *  3 replay WAL to the target, promote  4 repoint DATABASE_URL in the .env (old copy kept)
 *  5 verify: migration version, /health (optional), row counts
 * Progress lives in `<stateDir>/recover.json`; a rerun with the same target and data dir skips
 * finished steps. Any failure before step 4 leaves the old database serving (maintenance is
 * switched off again); a failed verification after step 4 puts the old .env back.
 */
import {existsSync} from 'node:fs'
import {copyFile, mkdir, readFile, rm, stat} from 'node:fs/promises'
import {join, resolve} from 'node:path'

import type {Settings} from '../config/settings.js'
import {writeFileAtomic} from '../core/fs/atomic.js'
import {acquireLocalLock} from '../core/fs/lock.js'
import {faultPoint} from '../core/faults.js'
import {jsonJournal} from '../core/fs/journal.js'
import {ChecksFailedError, RolledBackError, UsageError} from '../errors.js'
import type {Logger} from '../output/logger.js'
import {maskUrl} from '../output/redact.js'
import type {RepositoryStorage} from '../repository/storage.js'
import {describeTarget, type RecoveryTarget} from './pitr-target.js'
import type {PitrResult, RecoveryOutcome} from './pitr.js'

type LocalStepId = 'maintenance' | 'restore' | 'replay' | 'repoint' | 'verify'
/** compose (recover-compose.ts) adds: stop the writers and PostgreSQL; start the stack on the recovered cluster */
export type StepId = LocalStepId | 'stop' | 'start'
export const STEP_TITLES: Record<LocalStepId, string> = {
  maintenance: '1/5 maintenance mode on (writes stop)',
  restore: '2/5 restore the base backup into a new data directory',
  replay: '3/5 replay WAL to the target and promote',
  repoint: '4/5 repoint DATABASE_URL to the recovered server',
  verify: '5/5 verify: migration version, health, row counts',
}

export interface RecoverState {
  /** where it recovered: a new data directory on this host (local), or the compose stack's postgres volume */
  deployment?: 'local' | 'compose'
  target: string
  dataDir: string
  port: number
  startedAt: string
  done: Partial<Record<StepId, string>>
  oldDatabaseUrl?: string
  oldMigration?: string | null
  envBackup?: string
  /** the pgbouncer.ini as it was, when PgBouncer was repointed */
  pgbouncerBackup?: string
  restore?: PitrResult
  recovery?: RecoveryOutcome
  verify?: VerifyReport
  finishedAt?: string
  /** compose: the cluster as it was before, moved aside inside the postgres volume (removed by hand once the data is checked) */
  oldCluster?: string
  /** compose: the command that removes it */
  removeOldCluster?: string
}

export interface VerifyReport {
  migration: {old: string | null | undefined; recovered: string | null; matches: boolean | null}
  health?: {url: string; status: number; ok: boolean}
  rowCounts: Record<string, number>
  tables: number
}

export interface RecoverOptions {
  settings: Settings
  storage: RepositoryStorage
  stack: string
  repository: string
  awsEnvFile?: string
  target: RecoveryTarget
  dataDir: string
  port: number
  /** host written into the new DATABASE_URL (default 127.0.0.1) */
  host?: string
  healthUrl?: string
  migrationsDir?: string
  logger: Logger
  entry?: string
  /** restore_command prefetches this many segments ahead (default 8, as `restore pitr`; 0: none) */
  walPrefetch?: number
  /** with the service not installed (tests), skip maintenance mode */
  skipMaintenance?: boolean
  /** repoint PgBouncer's entry for the database instead of DATABASE_URL (restore/pgbouncer.ts) */
  pgbouncer?: import('./pgbouncer.js').PgbouncerTarget
}

export interface RecoverStep {
  id: StepId
  title: string
  done: () => boolean
  run: (note: (text: string) => void) => Promise<void>
}

export const stateFile = (settings: Pick<Settings, 'stateDir'>) => join(settings.stateDir, 'recover.json')

/**
 * Runs `fn` holding `<stateDir>/recover.lock`, for the whole recovery: two runs would share one
 * journal, and on compose the second would restore into the volume the first is writing.
 */
export async function withRecoverLock<T>(settings: Pick<Settings, 'stateDir'>, fn: () => Promise<T>): Promise<T> {
  const release = await acquireLocalLock(join(settings.stateDir, 'recover.lock'), {what: 'recover'})
  try {
    return await fn()
  } finally {
    await release()
  }
}

// The journal is fsynced (file and directory) before a step that depends on it runs: a power cut
// must not lose the record that the .env was already repointed.
const recoverJournal = (settings: Pick<Settings, 'stateDir'>) =>
  jsonJournal<RecoverState>(stateFile(settings), {
    what: 'the recover journal',
    hint: 'Check whether DATABASE_URL in the .env (a copy `.before-recover-*` is kept beside it) or PgBouncer already points at the recovered server, and whether maintenance mode is on (`charge-ops service maintenance`).',
  })

export async function saveState(settings: Settings, state: RecoverState): Promise<void> {
  recoverJournal(settings).save(state)
}

export async function loadRecoverState(settings: Settings): Promise<RecoverState | undefined> {
  return recoverJournal(settings).load()
}

/** Replaces (or adds) KEY=value in a .env text, keeping every other line as it was. */
export function setEnvLine(text: string, key: string, value: string): string {
  const lines = text.split('\n')
  const re = new RegExp(`^\\s*(export\\s+)?${key}\\s*=`)
  let found = false
  const out = lines.map((line) => {
    if (re.test(line)) {
      found = true
      return `${key}=${value}`
    }
    return line
  })
  if (!found) {
    if (out.length > 0 && out.at(-1) === '') out.splice(out.length - 1, 0, `${key}=${value}`)
    else out.push(`${key}=${value}`)
  }
  return out.join('\n')
}

/** Copies `file` once to `<file>.before-recover-<start>`, kept for the operator; returns that path. */
async function keepOriginal(file: string, startedAt: string): Promise<string> {
  const backup = `${file}.before-recover-${startedAt.replace(/[:.]/g, '')}`
  if (!existsSync(backup)) await copyFile(file, backup)
  return backup
}

/**
 * Replaces `path` with `text` atomically, keeping the file's mode and, when run as root, its owner
 * (a pgbouncer.ini owned by postgres must stay readable by PgBouncer after the rewrite).
 */
const replaceKeepingMode = (path: string, text: string, fallbackMode: number) =>
  writeFileAtomic(path, text, {mode: fallbackMode, keepExisting: true})

export function repointedUrl(oldUrl: string, host: string, port: number): string {
  const url = new URL(oldUrl)
  url.hostname = host
  url.port = String(port)
  return url.toString()
}

export async function tableCounts(databaseUrl: string): Promise<Record<string, number>> {
  const {withClient} = await import('../postgres/connection.js')
  return withClient(databaseUrl, async (client) => {
    const {rows} = await client.query<{name: string}>(
      `SELECT quote_ident(schemaname) || '.' || quote_ident(relname) AS name FROM pg_stat_user_tables WHERE schemaname NOT IN ('pg_catalog', 'information_schema') ORDER BY 1`,
    )
    const out: Record<string, number> = {}
    for (const r of rows)
      out[r.name] = Number((await client.query<{n: string}>(`SELECT count(*) AS n FROM ${r.name}`)).rows[0].n)
    return out
  })
}

export async function migrationVersion(
  databaseUrl: string,
  migrationsDir: string | undefined,
): Promise<string | null | undefined> {
  if (!migrationsDir || !existsSync(migrationsDir)) return undefined
  const {currentVersion} = await import('../migrate/index.js')
  return (await currentVersion({databaseUrl, migrationsDir})).current
}

/** What the five steps and the rollback share: the persisted state and where the old and new servers are. */
interface RecoverRun {
  options: RecoverOptions
  settings: Settings
  s: RecoverState
  dataDir: string
  target: string
  envFile: string
  oldUrl: string
  newUrl: string
  database: string
  bouncer: RecoverOptions['pgbouncer']
  /** the step is finished: recorded in the journal before the next one runs */
  mark: (id: StepId) => Promise<void>
}

/** Builds the five steps over a persisted state; the caller runs them (listr2 in the command). */
export async function planRecover(
  options: RecoverOptions,
): Promise<{steps: RecoverStep[]; state: RecoverState; rollback: (error: unknown) => Promise<Error>}> {
  const {settings} = options
  const dataDir = resolve(options.dataDir)
  const target = describeTarget(options.target)
  const envFile = settings.envFilePath
  if (!envFile)
    throw new UsageError('no .env to repoint: charge-ops recover rewrites DATABASE_URL in the backend .env', {
      code: 'RECOVER_NO_ENV',
      hint: 'Pass --env-file or set paths.envFile in charge-ops.yaml.',
    })
  const oldUrl = settings.databaseUrl
  if (!oldUrl) throw new UsageError('DATABASE_URL is not set in the .env', {code: 'RECOVER_NO_ENV'})

  const s = await openRecoverState(settings, {target, dataDir, port: options.port, deployment: 'local'}, oldUrl)
  const mark = (id: StepId) => markDone(settings, s, id)
  const newUrl = repointedUrl(oldUrl, options.host ?? '127.0.0.1', options.port)
  const database = decodeURIComponent(new URL(oldUrl).pathname.slice(1))
  const bouncer = options.pgbouncer
  if (bouncer) {
    const {checkPgbouncer} = await import('./pgbouncer.js')
    await checkPgbouncer(bouncer, database)
  }
  const run: RecoverRun = {options, settings, s, dataDir, target, envFile, oldUrl, newUrl, database, bouncer, mark}
  const step = (
    id: LocalStepId,
    fn: (run: RecoverRun, note: (text: string) => void) => Promise<void>,
    title = STEP_TITLES[id],
  ) => journalledStep(s, run, id, title, fn)
  const steps = [
    step('maintenance', maintenanceOn),
    step('restore', restoreBase),
    step('replay', replayWal),
    step('repoint', repoint, bouncer ? `4/5 repoint PgBouncer's ${database} to the recovered server` : undefined),
    step('verify', verifyStep),
  ]
  return {steps, state: s, rollback: (error) => rollbackRecover(run, error)}
}

/** A step of either deployment's runbook over its run: done once the journal records it. */
export function journalledStep<R>(
  s: RecoverState,
  run: R,
  id: StepId,
  title: string,
  fn: (run: R, note: (text: string) => void) => Promise<void>,
): RecoverStep {
  return {id, title, done: () => Boolean(s.done[id]), run: (note) => fn(run, note)}
}

/**
 * The recovery journal of this host (both deployments): the recorded one when it is this recovery's
 * (an unfinished one resumes; a finished one with the same target and data directory is a no-op,
 * every step done), a fresh one when none or a finished other one is recorded; an unfinished other
 * one is refused.
 */
export async function openRecoverState(
  settings: Settings,
  key: {target: string; dataDir: string; port: number; deployment: 'local' | 'compose'},
  oldUrl: string,
): Promise<RecoverState> {
  const state = await loadRecoverState(settings)
  if (
    state &&
    !state.finishedAt &&
    (state.target !== key.target || state.dataDir !== key.dataDir || state.port !== key.port)
  ) {
    throw new UsageError(
      `an unfinished recovery to ${state.target} into ${state.dataDir} (port ${state.port}) is recorded in ${stateFile(settings)}`,
      {
        code: 'RECOVER_STATE_MISMATCH',
        // compose refuses --data-dir/--port (its recovery is named by the target alone); --target is the deployment, not the recovery target
        hint:
          state.deployment === 'compose'
            ? `Rerun it with the same target (${state.target}) in the compose deployment's folder to resume, or remove that file to start another.`
            : `Rerun it with the same recovery target (${state.target}), --data-dir and --port to resume, or remove that file to start another.`,
      },
    )
  }
  if (!state || (state.finishedAt && (state.target !== key.target || state.dataDir !== key.dataDir))) {
    return {
      deployment: key.deployment,
      target: key.target,
      dataDir: key.dataDir,
      port: key.port,
      startedAt: new Date().toISOString(),
      done: {},
      oldDatabaseUrl: maskUrl(oldUrl),
    }
  }
  return state
}

/** Records a finished step (fsynced) — the point a resumed run skips to; kill point `recover.after-<step>`. */
export async function markDone(settings: Settings, state: RecoverState, id: StepId): Promise<void> {
  state.done[id] = new Date().toISOString()
  await saveState(settings, state)
  await faultPoint(`recover.after-${id}`)
}

/** Step 1: the old migration version noted, maintenance mode on. */
async function maintenanceOn(
  {options, settings, s, target, oldUrl, mark}: RecoverRun,
  note: (text: string) => void,
): Promise<void> {
  s.oldMigration = await migrationVersion(oldUrl, options.migrationsDir).catch(() => undefined)
  if (options.skipMaintenance) note('skipped (--no-maintenance)')
  else {
    const {setMaintenance} = await import('../service/maintenance.js')
    const status = await setMaintenance(settings, true, `charge-ops recover to ${target}`)
    note(`flag ${status.file}, redis ${status.redis}`)
  }
  await mark('maintenance')
}

/** Step 2: the base backup and its WAL restored into the new data directory. */
async function restoreBase({options, s, dataDir, mark}: RecoverRun, note: (text: string) => void): Promise<void> {
  const {PARTIAL_CONTROL, restorePitr} = await import('./pitr.js')
  // our own interrupted extraction (no pg_control yet) is safe to clear; anything else is refused
  if (existsSync(join(dataDir, PARTIAL_CONTROL)) && !existsSync(join(dataDir, 'global', 'pg_control'))) {
    const owner = await stat(dataDir)
    await rm(dataDir, {recursive: true, force: true})
    await mkdir(dataDir, {mode: 0o700})
    const {chown} = await import('node:fs/promises')
    await chown(dataDir, owner.uid, owner.gid).catch(() => {})
  }
  s.restore = await restorePitr({
    storage: options.storage,
    stack: options.stack,
    repository: options.repository,
    awsEnvFile: options.awsEnvFile,
    target: options.target,
    dataDir,
    archive: 'keep',
    start: undefined,
    port: options.port,
    logger: options.logger,
    entry: options.entry,
    walPrefetch: options.walPrefetch ?? 8,
  })
  note(`base backup ${s.restore.backupId}; WAL ${s.restore.archive.firstSegment} … ${s.restore.archive.lastSegment}`)
  await mark('restore')
}

/** Step 3: the server started on the new data directory, WAL replayed to the target, promoted. */
async function replayWal({options, s, dataDir, oldUrl, mark}: RecoverRun, note: (text: string) => void): Promise<void> {
  const {startAndAwaitRecovery, targetOwner} = await import('./pitr.js')
  // a server already started by an interrupted run is waited for, not started again
  const owner = await targetOwner(dataDir, true)
  s.recovery = await startAndAwaitRecovery(dataDir, options.port, 3600, owner, options.logger, {databaseUrl: oldUrl})
  note(
    `${s.recovery.stoppedAt ?? `redo done at ${s.recovery.redoDoneAt ?? '(see the log)'}`}; timeline ${s.recovery.timeline}; port ${options.port}`,
  )
  await mark('replay')
}

/** Step 4: DATABASE_URL in the .env (or PgBouncer's entry) pointed at the recovered server, the old file kept. */
async function repoint(
  {options, settings, s, envFile, newUrl, database, bouncer, mark}: RecoverRun,
  note: (text: string) => void,
): Promise<void> {
  if (bouncer) {
    const {repointIni, reloadPgbouncer} = await import('./pgbouncer.js')
    s.pgbouncerBackup ??= await keepOriginal(bouncer.ini, s.startedAt)
    await saveState(settings, s)
    const updated = repointIni(await readFile(bouncer.ini, 'utf8'), database, options.host ?? '127.0.0.1', options.port)
    await replaceKeepingMode(bouncer.ini, updated, 0o640)
    const how = await reloadPgbouncer(bouncer, updated)
    note(
      `PgBouncer's ${database} → ${options.host ?? '127.0.0.1'}:${options.port} (${how}; old file kept as ${s.pgbouncerBackup}); DATABASE_URL unchanged`,
    )
    await mark('repoint')
    return
  }
  s.envBackup ??= await keepOriginal(envFile, s.startedAt)
  await saveState(settings, s)
  await replaceKeepingMode(envFile, setEnvLine(await readFile(envFile, 'utf8'), 'DATABASE_URL', newUrl), 0o600)
  note(`DATABASE_URL → ${maskUrl(newUrl)} (old .env kept as ${s.envBackup}); restart the service to use it`)
  await mark('repoint')
}

/** Step 5: migration version, /health and row counts of the recovered database; maintenance off when they pass. */
async function verifyStep(
  {options, settings, s, oldUrl, newUrl, bouncer, mark}: RecoverRun,
  note: (text: string) => void,
): Promise<void> {
  // Through PgBouncer the clients' DATABASE_URL stays; after the reload it reaches the new server.
  s.verify = await checkRecovered({
    url: bouncer ? oldUrl : newUrl,
    migrationsDir: options.migrationsDir,
    oldMigration: s.oldMigration,
    healthUrl: options.healthUrl,
  })
  note(describeVerified(s.verify))
  // Maintenance off and the run finished BEFORE step 5 is recorded: once it is, a rerun skips every
  // step, so a kill between the record and the switch left maintenance on for good (kill point
  // recover.after-verify). Killed before the record, the rerun verifies again and switches it off.
  if (!options.skipMaintenance) {
    const {setMaintenance} = await import('../service/maintenance.js')
    await setMaintenance(settings, false)
  }
  s.finishedAt = new Date().toISOString()
  await mark('verify')
}

/**
 * The verification of both deployments: the recovered database's migration version against the old
 * one's, the service's /health when a URL is given, row counts per table. Throws
 * RECOVER_VERIFY_FAILED naming every problem.
 */
export async function checkRecovered(o: {
  url: string
  migrationsDir?: string
  oldMigration: string | null | undefined
  healthUrl?: string
}): Promise<VerifyReport> {
  const recovered = await migrationVersion(o.url, o.migrationsDir)
  const rowCounts = await tableCounts(o.url)
  const report: VerifyReport = {
    migration: {
      old: o.oldMigration,
      recovered: recovered ?? null,
      matches: o.oldMigration === undefined || recovered === undefined ? null : o.oldMigration === recovered,
    },
    rowCounts,
    tables: Object.keys(rowCounts).length,
  }
  if (o.healthUrl) {
    const response = await fetch(o.healthUrl, {signal: AbortSignal.timeout(10_000)}).catch((error: Error) => ({
      status: 0,
      ok: false,
      error,
    }))
    report.health = {url: o.healthUrl, status: response.status, ok: response.ok}
  }
  const problems: string[] = []
  if (report.migration.matches === false)
    problems.push(
      `migration version ${report.migration.recovered} differs from the old database's ${report.migration.old}`,
    )
  if (report.health && !report.health.ok) problems.push(`${o.healthUrl} answered ${report.health.status || 'nothing'}`)
  if (report.tables === 0) problems.push('the recovered database has no tables')
  if (problems.length > 0)
    throw new ChecksFailedError(`verification failed: ${problems.join('; ')}`, {
      code: 'RECOVER_VERIFY_FAILED',
      data: {verify: report},
    })
  return report
}

export const describeVerified = (report: VerifyReport) =>
  `${report.tables} tables, ${Object.values(report.rowCounts).reduce((a, b) => a + b, 0)} rows; migration ${report.migration.recovered ?? 'n/a'}${report.health ? `; health ${report.health.status}` : ''}`

/** After a failed step: the old .env (or pgbouncer.ini) put back and maintenance switched off, so the old database keeps serving. */
async function rollbackRecover(
  {options, settings, s, dataDir, envFile, bouncer}: RecoverRun,
  error: unknown,
): Promise<Error> {
  const undone: string[] = []
  const original = bouncer ? s.pgbouncerBackup : s.envBackup
  if (s.done.repoint && original && existsSync(original)) {
    const text = await readFile(original, 'utf8')
    await replaceKeepingMode(bouncer ? bouncer.ini : envFile, text, bouncer ? 0o640 : 0o600)
    delete s.done.repoint
    if (bouncer) {
      const {reloadPgbouncer} = await import('./pgbouncer.js')
      const failed = await reloadPgbouncer(bouncer, text).then(
        () => undefined,
        (reloadError: Error) => reloadError.message,
      )
      undone.push(
        failed === undefined
          ? 'PgBouncer points at the old server again'
          : `the old ${bouncer.ini} is back but PgBouncer did not reload (${failed}): reload it by hand`,
      )
    } else {
      undone.push('the old .env is back')
    }
  }
  if (s.done.maintenance && !options.skipMaintenance) {
    const {setMaintenance} = await import('../service/maintenance.js')
    await setMaintenance(settings, false).catch(() => {})
    delete s.done.maintenance
    undone.push('maintenance mode is off')
  }
  await saveState(settings, s).catch(() => {})
  const message = error instanceof Error ? error.message : String(error)
  return new RolledBackError(
    `recover failed: ${message}; the old database keeps serving (${undone.join(', ') || 'nothing had changed'})`,
    {
      hint: `Fix the cause and rerun the same command: finished steps are skipped (${stateFile(settings)}). ${s.done.restore ? `The new data directory ${dataDir} is kept for inspection.` : ''}`,
      cause: error,
    },
  )
}
