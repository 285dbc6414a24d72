/**
 * The `local` target: the bundled service run by `charge-ops service` from releases. Each step's
 * `run` changes the stack; its `undo` puts it back and works from the journal alone, so that a
 * later run can finish the rollback of a process that was killed.
 */
import type {Settings} from '../config/settings.js'
import {CliError, ExitCode} from '../errors.js'
import type {Logger} from '../output/logger.js'
import type {Progress} from '../output/progress.js'
import type {JournalStore, StepName, StepRecord, UpgradeJournal} from './journal.js'
import type {StagedRelease} from './release.js'

export interface LocalContext {
  settings: Settings
  logger: Logger
  /** the application's DATABASE_URL (journal table, health) */
  databaseUrl: string
  /** MIGRATION_DATABASE_URL when set (migrations, restore), else DATABASE_URL */
  migrationUrl: string
  journal: UpgradeJournal
  store: JournalStore
  staged?: StagedRelease
  progress?: (label: string, totalBytes?: number) => Progress
  stopTimeoutMs: number
  startTimeoutMs: number
  /** schemas present before the upgrade (a restore drops any other) */
  schemasBefore?: string[]
}

export interface ServiceCheck {
  health: string
  version?: string
  smoke: string
  /** the web UI (guide §12 step 7), when the release serves one */
  ui: string
  migrations: string
}

/**
 * /health green, the version the service reports, an authenticated smoke request, and `migrate
 * status` clean against the release's migrations. Throws naming every problem.
 */
export async function verifyService(
  ctx: Pick<LocalContext, 'settings' | 'migrationUrl'>,
  expected: {version: string | null; migrationsDir: string},
  options: {attempts?: number} = {},
): Promise<ServiceCheck> {
  const {serviceStatus} = await import('../service/process.js')
  const problems: string[] = []
  let status = await serviceStatus(ctx.settings)
  // The API answers /health as soon as it listens; give dependencies a moment to report ok.
  for (let i = 1; i < (options.attempts ?? 10) && status.health?.status !== 'ok'; i++) {
    await new Promise((r) => setTimeout(r, 500))
    status = await serviceStatus(ctx.settings)
  }
  const health = status.health
  if (!status.running)
    problems.push(
      `not every service process is running (${status.processes.map((p) => `${p.name} ${p.running ? 'running' : 'stopped'}`).join(', ') || 'none'})`,
    )
  if (!health || health.status !== 'ok')
    problems.push(
      `/health is ${health ? `${health.status}${health.httpStatus ? ` (HTTP ${health.httpStatus})` : ''}${health.failing.length ? `: ${health.failing.join(', ')} failing` : ''}` : 'not answering'}`,
    )
  if (expected.version !== null && health?.version !== expected.version)
    problems.push(`the service reports version ${health?.version ?? '?'}, expected ${expected.version}`)
  let smoke = 'not run'
  if (health?.httpStatus) {
    const {mintServiceToken} = await import('../service/token.js')
    const token = await mintServiceToken(ctx.settings, {subject: 'charge-ops-upgrade', ttl: '5m', scope: 'api'})
    try {
      const response = await fetch(`${health.url}/api/v1/sessions?limit=1`, {
        headers: {authorization: `Bearer ${token.bearer}`},
        signal: AbortSignal.timeout(5000),
      })
      smoke = `GET /api/v1/sessions → ${response.status}`
      if (response.status !== 200) problems.push(`smoke request ${smoke}`)
    } catch (error) {
      smoke = `GET /api/v1/sessions failed: ${(error as Error).message}`
      problems.push(smoke)
    }
  }
  let ui = 'not checked'
  if (health?.httpStatus) {
    const {checkWebUi} = await import('./web-ui.js')
    const web = await checkWebUi(health.url)
    ui = web.detail
    if (!web.ok) problems.push(`the web UI does not answer: ${web.detail}`)
  }
  const {migrationStatus} = await import('../migrate/index.js')
  const st = await migrationStatus({databaseUrl: ctx.migrationUrl, migrationsDir: expected.migrationsDir})
  const migrations = `head ${st.current ?? 'none'}, ${st.pending} pending, ${st.drift} drift`
  if (st.pending > 0 || st.drift > 0)
    problems.push(
      `migrate status is not clean: ${migrations}${st.problems.length ? ` (${st.problems.map((p) => p.message).join('; ')})` : ''}`,
    )
  if (problems.length > 0) {
    throw new CliError('UPGRADE_VERIFY_FAILED', ExitCode.findings, `verification failed: ${problems.join('; ')}`, {
      hint: 'See `charge-ops service logs --error`.',
    })
  }
  return {health: health!.status, version: health!.version, smoke, ui, migrations}
}

type Runner = (ctx: LocalContext, record: StepRecord) => Promise<string | void>

export const runLocalStep: Record<StepName, Runner> = {
  async backup(ctx, record) {
    const {openBackupContext} = await import('../backup/context.js')
    const backupCtx = await openBackupContext({settings: ctx.settings, logger: ctx.logger, progress: ctx.progress})
    let manifest
    if (ctx.settings.uploadsDir || ctx.settings.chromaDir) {
      const {backupAll} = await import('../backup/all.js')
      const {filesOptionsFrom} = await import('../backup/files.js')
      manifest = await backupAll(backupCtx, filesOptionsFrom(backupCtx))
    } else {
      const {backupDatabase} = await import('../backup/db.js')
      manifest = await backupDatabase(backupCtx)
    }
    record.data.backupId = manifest.id
    ctx.journal.backupId = manifest.id
    await ctx.store.save(ctx.journal)
    const {verifyBackup, verificationError} = await import('../restore/verify.js')
    const verified = await verifyBackup(backupCtx, manifest.id)
    if (!verified.ok) throw verificationError(verified)
    const {manifestBytes} = await import('../repository/manifest.js')
    record.data.bytes = manifestBytes(manifest)
    return `${manifest.id} (${manifest.kind}, verified)`
  },

  async stop(ctx, record) {
    const {setMaintenance} = await import('../service/maintenance.js')
    const {stopService} = await import('../service/process.js')
    await setMaintenance(ctx.settings, true, `upgrade to ${ctx.journal.to.version}`)
    const {stopped} = await stopService(ctx.settings, {timeoutMs: ctx.stopTimeoutMs, logger: ctx.logger})
    record.data.stopped = stopped
    return stopped.length === 0
      ? 'maintenance on; the service was not running'
      : `maintenance on; stopped ${stopped.map((s) => `${s.name} (${s.how})`).join(', ')}`
  },

  async fetch(ctx, record) {
    const {placeRelease} = await import('./release.js')
    const placed = placeRelease(ctx.staged!)
    record.data.release = placed.dir
    ctx.journal.to.release = placed.dir
    ctx.journal.to.migrationsDir = `${placed.dir}/service/migrations`
    return `${placed.reused ? 'reusing' : 'installed'} ${placed.dir}`
  },

  async install(ctx, record) {
    const {installDependencies} = await import('./release.js')
    const result = await installDependencies(ctx.journal.to.release, {logger: ctx.logger})
    record.data.mode = result.mode
    return result.detail
  },

  async migrate(ctx, record) {
    const {migrateUp} = await import('../migrate/index.js')
    const result = await migrateUp({
      databaseUrl: ctx.migrationUrl,
      migrationsDir: ctx.journal.to.migrationsDir,
      logger: ctx.logger,
      lockWait: 30_000,
    })
    record.data.applied = result.applied.map((a) => ({version: a.version, file: a.file, ms: a.executionMs}))
    record.data.ms = result.totalMs
    ctx.journal.to.schemaHead = result.current
    return result.applied.length === 0
      ? `nothing to apply (at ${result.current ?? 'none'})`
      : `applied ${result.applied.map((a) => a.file).join(', ')} in ${result.totalMs} ms`
  },

  async start(ctx, record) {
    const {switchCurrent} = await import('./release.js')
    const {startService} = await import('../service/process.js')
    switchCurrent(ctx.settings, ctx.journal.to.release)
    record.data.switched = true
    const status = await startService(ctx.settings, {
      releaseRoot: ctx.journal.to.release,
      timeoutMs: ctx.startTimeoutMs,
      logger: ctx.logger,
    })
    return `releases/current → ${ctx.journal.to.version}; ${status.processes.map((p) => `${p.name} pid ${p.pid}`).join(', ')}`
  },

  async verify(ctx, record) {
    const check = await verifyService(ctx, {
      version: ctx.journal.to.version,
      migrationsDir: ctx.journal.to.migrationsDir,
    })
    record.data.check = check
    return `health ${check.health}, version ${check.version}, ${check.smoke}, web UI: ${check.ui}, ${check.migrations}`
  },
}

type Undo = (ctx: LocalContext, record: StepRecord) => Promise<string | void>

/** How the schema went back; recorded in the journal's rollback section. */
async function revertSchema(
  ctx: LocalContext,
): Promise<{method: 'down-migrations' | 'restore' | 'none'; detail: string}> {
  const {terminateOrphanedMigrationSessions, appliedAbove, readSchemaHead} = await import('./database.js')
  const from = ctx.journal.from
  await terminateOrphanedMigrationSessions(ctx.migrationUrl, ctx.logger).catch((error) =>
    ctx.logger.warn(`could not look for orphaned migration sessions: ${(error as Error).message}`),
  )
  const {versions, failed} = await appliedAbove(ctx.migrationUrl, from.schemaHead)
  if (versions.length === 0 && failed.length === 0)
    return {method: 'none', detail: `schema still at ${from.schemaHead ?? 'none'}: nothing to revert`}
  const {loadMigrations, migrateDown} = await import('../migrate/index.js')
  const {sameVersion} = await import('../migrate/files.js')
  let reason: string
  const dir = ctx.journal.to.migrationsDir
  const files = dir
    ? (() => {
        try {
          return loadMigrations(dir)
        } catch {
          return []
        }
      })()
    : []
  const missingDown = versions.filter((v) => !files.find((f) => sameVersion(f.version, v))?.down)
  if (failed.length > 0) reason = `migration(s) ${failed.join(', ')} failed part-way (no transaction)`
  else if (missingDown.length > 0) reason = `migration(s) ${missingDown.join(', ')} have no down section`
  else {
    try {
      const result = await migrateDown({
        databaseUrl: ctx.migrationUrl,
        migrationsDir: dir,
        to: from.schemaHead ?? '0',
        lockWait: 60_000,
        logger: ctx.logger,
      })
      const head = await readSchemaHead(ctx.migrationUrl)
      if (head === from.schemaHead)
        return {method: 'down-migrations', detail: `reverted ${result.applied.map((a) => a.file).join(', ')}`}
      reason = `after the down migrations the head is ${head}, not ${from.schemaHead}`
    } catch (error) {
      reason = `a down migration failed: ${(error as Error).message}`
    }
  }
  ctx.logger.warn(`${reason}: restoring the step-1 backup ${ctx.journal.backupId ?? '(none)'} instead`)
  if (!ctx.journal.backupId)
    throw new CliError(
      'UPGRADE_ROLLBACK_FAILED',
      ExitCode.findings,
      `${reason}, and there is no step-1 backup to restore`,
      {hint: 'Restore the newest backup by hand (charge-ops backup list).'},
    )
  const {openBackupContext} = await import('../backup/context.js')
  const backupCtx = await openBackupContext({settings: ctx.settings, logger: ctx.logger, progress: ctx.progress})
  const {resolveBackup} = await import('../repository/manifest.js')
  const manifest = await resolveBackup(backupCtx.storage, backupCtx.stack, ctx.journal.backupId)
  const {resetSchemasForRestore, isSuperuser} = await import('./database.js')
  const {checkPart, restoreDatabaseDump} = await import('../restore/logical.js')
  const {findPart} = await import('../repository/manifest.js')
  const part = findPart(manifest, 'db')
  // Checksums before touching anything: a damaged backup must not replace a merely-failed upgrade.
  const check = part ? await checkPart(backupCtx.storage, manifest, part) : undefined
  if (!check?.ok)
    throw new CliError(
      'UPGRADE_ROLLBACK_FAILED',
      ExitCode.findings,
      `${reason}, and the step-1 backup ${manifest.id} is unusable (${check?.error ?? 'checksum mismatch'})`,
      {hint: 'Restore an older backup by hand (charge-ops backup list).'},
    )
  await resetSchemasForRestore(ctx.migrationUrl, ctx.schemasBefore ?? ['public'], ctx.logger)
  const superuser = await isSuperuser(ctx.migrationUrl).catch(() => false)
  const result = await restoreDatabaseDump({
    storage: backupCtx.storage,
    manifest,
    targetUrl: ctx.migrationUrl,
    logger: ctx.logger,
    progress: ctx.progress,
    encryption: backupCtx.encryption,
    noOwner: !superuser,
    skipChecksums: true,
  })
  if (result.mismatches.length > 0)
    throw new CliError(
      'UPGRADE_ROLLBACK_FAILED',
      ExitCode.findings,
      `restored ${manifest.id} but row counts differ: ${result.mismatches.join('; ')}`,
    )
  return {method: 'restore', detail: `${reason}; restored ${manifest.id} in ${result.durationMs} ms`}
}

export const undoLocalStep: Partial<Record<StepName, Undo>> = {
  async start(ctx) {
    const {stopService} = await import('../service/process.js')
    const {switchCurrent} = await import('./release.js')
    const {stopped} = await stopService(ctx.settings, {timeoutMs: ctx.stopTimeoutMs, logger: ctx.logger})
    switchCurrent(ctx.settings, ctx.journal.from.release)
    return `stopped ${stopped.length} process(es); releases/current → ${ctx.journal.from.release ? ctx.journal.from.version : '(bundled service)'}`
  },

  async migrate(ctx) {
    const reverted = await revertSchema(ctx)
    ctx.journal.rollback = {...ctx.journal.rollback!, method: reverted.method}
    return reverted.detail
  },

  async stop(ctx) {
    const {switchCurrent} = await import('./release.js')
    const {startService, stopService} = await import('../service/process.js')
    const {setMaintenance} = await import('../service/maintenance.js')
    const from = ctx.journal.from
    // Whatever ran of the new version (a crash between switching and verifying) stops first.
    await stopService(ctx.settings, {timeoutMs: ctx.stopTimeoutMs, logger: ctx.logger})
    switchCurrent(ctx.settings, from.release)
    let note = 'the service was not running before: left stopped'
    if (from.serviceRunning) {
      await startService(ctx.settings, {
        releaseRoot: from.release ?? undefined,
        timeoutMs: ctx.startTimeoutMs,
        logger: ctx.logger,
      })
      const check = await verifyService(ctx, {version: from.version, migrationsDir: from.migrationsDir})
      ctx.journal.rollback = {...ctx.journal.rollback!, verified: true}
      note = `${from.version ?? 'previous version'} started and verified (${check.smoke})`
    }
    if (!from.maintenanceWasOn) await setMaintenance(ctx.settings, false)
    return `${note}; maintenance ${from.maintenanceWasOn ? 'left on (it was on before)' : 'off'}`
  },
}
