/**
 * `upgrade --rehearse`: before production is touched, restore the newest backup into a scratch
 * database on the same server, run the new version's migrations there (timed, each), start the new
 * release's API against it in a scratch state dir on a free port (no worker: it must not take
 * production's jobs from Redis), health-check it, and report the expected downtime. Everything
 * scratch is removed afterwards, also on failure.
 */
import {mkdtempSync, rmSync} from 'node:fs'
import {tmpdir} from 'node:os'
import {join} from 'node:path'

import type {Settings} from '../config/settings.js'
import {requireSetting} from '../config/settings.js'
import type {Logger} from '../output/logger.js'
import type {Progress} from '../output/progress.js'

export interface RehearsalResult {
  ok: boolean
  backupId: string
  from: {backupServiceVersion: string | null; schemaHead: string | null}
  to: {version: string; schemaHead: string | null}
  restoreMs: number
  migrations: Array<{file: string; ms: number}>
  migrateMs: number
  startMs?: number
  health?: {status: string; version?: string; smoke: string}
  /** expected downtime: drain (stop timeout at most) + migrations + start */
  expectedDowntimeMs?: number
  failure?: {step: 'restore' | 'migrate' | 'start' | 'verify'; error: string}
  scratchDatabase: string
}

export async function rehearseUpgrade(options: {
  settings: Settings
  logger: Logger
  to: string
  progress?: (l: string, t?: number) => Progress
  cwd?: string
  startTimeoutMs?: number
  lastStopMs?: number
}): Promise<RehearsalResult> {
  const {settings, logger} = options
  // The scratch database is created, restored and migrated by one role: the admin connection when
  // one is given (the application and migration roles usually may not create databases).
  const url =
    settings.adminDatabaseUrl ||
    process.env.MIGRATION_DATABASE_URL ||
    requireSetting(settings.databaseUrl, 'DATABASE_URL', 'Set DATABASE_URL in the backend .env.')
  const {openBackupContext} = await import('../backup/context.js')
  const ctx = await openBackupContext({settings, logger, progress: options.progress})
  const {resolveBackup} = await import('../repository/manifest.js')
  const manifest = await resolveBackup(ctx.storage, ctx.stack, 'latest', {kind: ['db', 'all']})
  const rel = await import('./release.js')
  const staged = await rel.stageRelease(settings, options.to, {logger, cwd: options.cwd})
  const {scratchDatabase} = await import('../postgres/scratch.js')
  const db = scratchDatabase(url, 'charge_ops_rehearse', {
    code: 'REHEARSE_NO_CREATEDB',
    message: (m) => `the rehearsal cannot create its scratch database: ${m}`,
    hint: 'Set CHARGE_OPS_ADMIN_URL to a role that may create databases on that server (e.g. postgresql://postgres@host:5432/postgres); nothing was changed.',
  })
  const scratch = db.name
  const scratchUrl = db.url
  const stateDir = mkdtempSync(join(tmpdir(), 'charge-ops-rehearse-'))
  const result: RehearsalResult = {
    ok: false,
    backupId: manifest.id,
    from: {backupServiceVersion: manifest.serviceVersion ?? null, schemaHead: manifest.migrationHead ?? null},
    to: {version: staged.info.version, schemaHead: null},
    restoreMs: 0,
    migrations: [],
    migrateMs: 0,
    scratchDatabase: scratch,
  }
  let scratchSettings: Settings | undefined
  try {
    await db.create()
    logger.info(`rehearsal: restoring ${manifest.id} into scratch database ${scratch}`)
    try {
      const {restoreDatabaseDump} = await import('../restore/logical.js')
      const restored = await restoreDatabaseDump({
        storage: ctx.storage,
        manifest,
        targetUrl: scratchUrl,
        logger,
        progress: options.progress,
        encryption: ctx.encryption,
      })
      result.restoreMs = restored.durationMs
    } catch (error) {
      result.failure = {step: 'restore', error: (error as Error).message}
      return result
    }
    logger.info(`rehearsal: migrating ${scratch} with ${staged.info.version}'s migrations`)
    try {
      const {migrateUp} = await import('../migrate/index.js')
      const migrated = await migrateUp({databaseUrl: scratchUrl, migrationsDir: staged.migrationsDir, logger})
      result.migrations = migrated.applied.map((a) => ({file: a.file, ms: a.executionMs}))
      result.migrateMs = migrated.totalMs
      result.to.schemaHead = migrated.current
    } catch (error) {
      result.failure = {step: 'migrate', error: (error as Error).message}
      return result
    }
    // The new release, from its staging dir, against the scratch database.
    const {installDependencies} = await import('./release.js')
    await installDependencies(staged.stagingDir, {logger})
    const {freePort} = await import('../sandbox/servers.js')
    const port = await freePort()
    scratchSettings = {
      ...settings,
      stateDir,
      databaseUrl: scratchUrl,
      uploadsDir: join(stateDir, 'uploads'),
      backendEnv: {...settings.backendEnv, DATABASE_URL: scratchUrl, HOST: '127.0.0.1', PORT: String(port)},
    }
    const {startService} = await import('../service/process.js')
    const started = Date.now()
    try {
      await startService(scratchSettings, {
        workers: 0,
        releaseRoot: staged.stagingDir,
        timeoutMs: options.startTimeoutMs ?? 30_000,
        logger,
      })
      result.startMs = Date.now() - started
    } catch (error) {
      result.failure = {step: 'start', error: (error as Error).message}
      return result
    }
    try {
      const {verifyService} = await import('./local.js')
      const check = await verifyService(
        {settings: scratchSettings, migrationUrl: scratchUrl},
        {version: staged.info.version, migrationsDir: staged.migrationsDir},
      )
      result.health = {status: check.health, version: check.version, smoke: check.smoke}
    } catch (error) {
      result.failure = {step: 'verify', error: (error as Error).message}
      return result
    }
    result.expectedDowntimeMs = (options.lastStopMs ?? 0) + result.migrateMs + (result.startMs ?? 0)
    result.ok = true
    return result
  } finally {
    if (scratchSettings) {
      const {stopService} = await import('../service/process.js')
      await stopService(scratchSettings, {timeoutMs: 10_000}).catch(() => {})
    }
    rel.discardStaging(staged)
    rmSync(stateDir, {recursive: true, force: true})
    await db.drop(logger)
  }
}
