/**
 * `charge-ops upgrade`: the guide's seven manual upgrade steps as one journalled pipeline that stops
 * at the first failure and puts the stack back as it was (docs/upgrade.md).
 *
 * local target: lock → finish any interrupted run (roll back, or finish forward when it had passed
 * verify) → stage the new version → preflight → 1 backup … 7 verify → maintenance off. A failure
 * undoes the completed steps in reverse and exits 6.
 */
import {hostname} from 'node:os'

import type {Settings} from '../config/settings.js'
import {requireSetting} from '../config/settings.js'
import {CliError, ExitCode, RolledBackError, UsageError} from '../errors.js'
import {passwordOf} from '../config/settings.js'
import {registerSecret} from '../output/redact.js'
import type {StepName, UpgradeJournal} from './journal.js'

export type {UpgradeJournal, UpgradeTarget} from './journal.js'

export type {UpgradeOptions, UpgradeResult} from './types.js'
import type {UpgradeOptions, UpgradeResult} from './types.js'

const STEP_ACTIONS = (j: {
  toVersion: string
  from: string | null
  pending: string[]
  release: string
}): Record<StepName, string> => ({
  backup: 'backup all (pg_dump + uploads/Chroma) to the repository, then verify every part',
  stop: 'maintenance on (writes answer 503), stop the API and drain the worker',
  fetch: `move the staged release to ${j.release}`,
  install: "npm ci --omit=dev when the release ships dependencies, else link charge-ops' node_modules",
  migrate: j.pending.length ? `migrate up: ${j.pending.join(', ')}` : 'migrate up: nothing pending',
  start: `switch releases/current to ${j.toVersion} and start API + workers`,
  verify: `/health ok, version ${j.toVersion}, GET /api/v1/sessions 200, the web UI answers, migrate status clean; then maintenance off`,
})

function migrationUrlOf(settings: Settings): {databaseUrl: string; migrationUrl: string} {
  const databaseUrl = requireSetting(
    settings.databaseUrl,
    'DATABASE_URL',
    'Set DATABASE_URL in the backend .env (or the environment).',
  )
  const migrationUrl = process.env.MIGRATION_DATABASE_URL || databaseUrl
  registerSecret(passwordOf(migrationUrl))
  return {databaseUrl, migrationUrl}
}

export async function runUpgrade(options: UpgradeOptions): Promise<UpgradeResult> {
  // an interrupted compose / k8s upgrade is resumed by its own target, whatever the flags say
  const {readJournal, isUnfinished} = await import('./journal.js')
  const interrupted = readJournal(options.settings)
  const target =
    isUnfinished(interrupted) && interrupted.target !== 'local'
      ? interrupted.target
      : (options.target ?? options.settings.target)
  if (target === 'compose' || target === 'k8s') {
    const {runPlanTarget} = await import('./targets.js')
    return runPlanTarget({...options, target})
  }
  return runLocalUpgrade(options)
}

async function runLocalUpgrade(options: UpgradeOptions): Promise<UpgradeResult> {
  const {settings, logger} = options
  const now = options.now ?? (() => new Date())
  const {databaseUrl, migrationUrl} = migrationUrlOf(settings)
  const {openConfiguredRepository} = await import('../repository/open.js')
  const storage = await openConfiguredRepository(settings)
  const {acquireLock} = await import('../repository/lock.js')
  const {JournalStore, readJournal, isUnfinished} = await import('./journal.js')
  const release = await acquireLock(storage, settings.stack, {
    command: `upgrade${options.to ? ` --to ${options.to}` : ''}`,
    name: 'upgrade',
  })
  const releases: Array<() => Promise<void>> = [release]
  const holdBackupLock = async (command: string) => {
    releases.push(await acquireLock(storage, settings.stack, {command, name: 'backup'}))
  }
  try {
    const store = new JournalStore(settings, databaseUrl, logger)
    const rel = await import('./release.js')
    for (const name of rel.cleanStaleStaging(settings)) logger.info(`removed ${name} left by a killed run`)

    const previous = readJournal(settings)
    if (isUnfinished(previous)) {
      if (options.dryRun) {
        return {
          outcome: 'dry-run',
          target: 'local',
          journal: previous,
          message: `an interrupted upgrade ${previous.id} (${previous.from.version} → ${previous.to.version}) would be ${allDoneThroughVerify(previous) ? 'finished' : 'rolled back'} first`,
        }
      }
      return await resolveInterrupted(previous, {
        ...options,
        store,
        databaseUrl,
        migrationUrl,
        acquireBackupLock: () => holdBackupLock('upgrade (rollback)'),
      })
    }
    if (!options.to) {
      throw new UsageError('--to is required: the version to upgrade to', {
        hint: 'Pass a release directory, a charge-ops checkout, a .tar.gz, or a git ref: `charge-ops upgrade --to v1.2.0`.',
      })
    }

    const staged = await rel.stageRelease(settings, options.to, {logger, cwd: options.cwd, now: now()})
    try {
      return await upgradeToStaged(options, {
        store,
        databaseUrl,
        migrationUrl,
        staged,
        now,
        to: options.to,
        holdBackupLock,
      })
    } finally {
      rel.discardStaging(staged)
    }
  } finally {
    for (const r of releases.reverse()) await r().catch(() => {})
  }
}

/** A new upgrade with its release staged and the upgrade lock held. */
interface StagedUpgrade {
  store: import('./journal.js').JournalStore
  databaseUrl: string
  migrationUrl: string
  staged: import('./release.js').StagedRelease
  now: () => Date
  /** --to as given */
  to: string
  /** takes the stack's backup lock until the upgrade is over */
  holdBackupLock(command: string): Promise<void>
}

/** Preflight of the staged release, and where the upgrade comes from (version, release, migrations). */
async function preflightStaged(options: UpgradeOptions, run: StagedUpgrade) {
  const {settings, logger} = options
  const {staged} = run
  const rel = await import('./release.js')
  const {readSchemaHead} = await import('./database.js')
  const head = await readSchemaHead(run.migrationUrl).catch(() => null)
  const {runPreflight, parseWithin} = await import('./preflight.js')
  const facts = await runPreflight({
    settings,
    databaseUrl: run.migrationUrl,
    staged,
    head,
    force: options.force,
    requireVerifiedWithinMs: options.requireVerifiedWithin ? parseWithin(options.requireVerifiedWithin) : undefined,
    checkService: true,
    logger,
    now: run.now,
  })
  const fromRelease = rel.currentRelease(settings)
  const fromVersion =
    facts.serviceVersion ??
    (fromRelease ? rel.readReleaseInfo(fromRelease)?.version : undefined) ??
    rel.declaredVersion(`${await rel.projectRoot()}/dist/service/src`) ??
    null
  const {bundledMigrationsDir} = await import('../migrate/index.js')
  const fromMigrations = fromRelease ? rel.releaseMigrationsDir(fromRelease) : bundledMigrationsDir()
  const sameRelease = Boolean(fromRelease) && fromRelease === staged.finalDir
  const sameContent = sameRelease && rel.readReleaseInfo(fromRelease!)?.sha256 === staged.info.sha256
  if (sameRelease && !sameContent) {
    facts.checks.push({
      name: 'release',
      status: 'failed',
      detail: `releases/${staged.info.version} is the running release but ${run.to} has other content under the same version`,
      exitCode: ExitCode.usage,
      hint: 'Give the new build its own version.',
    })
  }
  return {head, facts, fromRelease, fromVersion, fromMigrations, upToDate: sameContent && facts.pending.length === 0}
}

/** Preflight, then (unless up to date or a dry run) the journalled steps; a failure rolls back and throws. */
async function upgradeToStaged(options: UpgradeOptions, run: StagedUpgrade): Promise<UpgradeResult> {
  const {settings, logger} = options
  const {staged, store} = run
  const {head, facts, fromRelease, fromVersion, fromMigrations, upToDate} = await preflightStaged(options, run)
  if (upToDate) {
    return {
      outcome: 'up-to-date',
      target: 'local',
      checks: facts.checks,
      from: {version: fromVersion, schemaHead: head},
      to: {version: staged.info.version, schemaHead: head, source: run.to},
      message: `already at ${staged.info.version} (schema ${head ?? 'none'}): nothing to do`,
    }
  }
  const pendingNote = facts.pending.length ? `${facts.pending.length} migration(s)` : 'no migration'
  if (options.dryRun) {
    const actions = STEP_ACTIONS({
      toVersion: staged.info.version,
      from: fromVersion,
      pending: facts.pending,
      release: staged.finalDir,
    })
    const {STEP_ORDER, STEP_TITLES} = await import('./journal.js')
    const failed = facts.checks.filter((c) => c.status === 'failed')
    return {
      outcome: 'dry-run',
      target: 'local',
      checks: facts.checks,
      from: {version: fromVersion, schemaHead: head},
      to: {version: staged.info.version, schemaHead: staged.info.migrationsHead, source: run.to},
      plan: STEP_ORDER.map((step) => ({step, title: STEP_TITLES[step], action: actions[step]})),
      message: `dry run: ${fromVersion ?? '?'} → ${staged.info.version}, ${pendingNote}; ${failed.length === 0 ? 'preflight passed' : `preflight FAILED (${failed.map((c) => c.name).join(', ')})`}; nothing was changed`,
    }
  }
  const {assertPreflight, configHash} = await import('./preflight.js')
  assertPreflight(facts.checks)
  await options.confirm?.(
    `upgrade stack "${settings.stack}" from ${fromVersion ?? '?'} to ${staged.info.version} (${pendingNote})?`,
  )

  const {isMaintenance} = await import('../service/maintenance.js')
  const {withClient} = await import('../postgres/connection.js')
  const {userSchemas} = await import('./database.js')
  const rel = await import('./release.js')
  const {newJournal} = await import('./journal.js')
  const journal = newJournal({
    stack: settings.stack,
    target: 'local',
    now: run.now(),
    from: {
      version: fromVersion,
      release: fromRelease,
      schemaHead: head,
      migrationsDir: fromMigrations,
      serviceRunning: facts.serviceRunning,
      maintenanceWasOn: (await isMaintenance(settings)).on,
      schemasBefore: await withClient(run.migrationUrl, userSchemas),
    },
    to: {
      source: run.to,
      version: staged.info.version,
      release: staged.finalDir,
      schemaHead: null,
      migrationsDir: rel.releaseMigrationsDir(staged.finalDir),
    },
    configHash: configHash(settings),
    preflight: facts.checks,
  })
  await store.save(journal)
  const ctx = await localContext(options, {
    journal,
    store,
    databaseUrl: run.databaseUrl,
    migrationUrl: run.migrationUrl,
    staged,
  })
  const {runSteps} = await import('../core/steps.js')
  const {runLocalStep} = await import('./local.js')
  try {
    await runSteps(
      journal.steps.map((record) => ({
        title: record.title,
        run: async () => {
          const note = await journalled(ctx, record.name, () => runLocalStep[record.name](ctx, record))
          // Backups of the stack wait until the upgrade is over (the step-1 backup took and released the lock).
          if (record.name === 'backup') await run.holdBackupLock(`upgrade to ${journal.to.version}`)
          // the step is recorded done (journal fsynced): a kill here leaves the stack between two steps
          const {faultPoint} = await import('../core/faults.js')
          await faultPoint(`upgrade.local.after-${record.name}`)
          return note
        },
      })),
      {
        tty: Boolean(options.tty),
        logger,
        heading: `upgrading ${settings.stack}: ${fromVersion ?? '?'} → ${staged.info.version} (journal ${journal.id})`,
      },
    )
  } catch (error) {
    await rollbackAndThrow(ctx, error, {resumed: false})
  }
  return await finishSucceeded(ctx, 'succeeded')
}

interface Internal {
  store: import('./journal.js').JournalStore
  databaseUrl: string
  migrationUrl: string
  staged?: import('./release.js').StagedRelease
}

async function localContext(
  options: UpgradeOptions,
  internal: Internal & {journal: UpgradeJournal},
): Promise<import('./local.js').LocalContext> {
  return {
    settings: options.settings,
    logger: options.logger,
    databaseUrl: internal.databaseUrl,
    migrationUrl: internal.migrationUrl,
    journal: internal.journal,
    store: internal.store,
    staged: internal.staged,
    progress: options.progress,
    stopTimeoutMs: options.stopTimeoutMs ?? 30_000,
    startTimeoutMs: options.startTimeoutMs ?? 30_000,
    schemasBefore: internal.journal.from.schemasBefore,
  }
}

/** Marks the step running, runs it, records the outcome and the schema head (journal written before and after). */
async function journalled(
  ctx: import('./local.js').LocalContext,
  name: StepName,
  fn: () => Promise<string | void>,
): Promise<string | void> {
  const record = ctx.journal.steps.find((s) => s.name === name)!
  const {runJournalledStep} = await import('./journal.js')
  const {readSchemaHead} = await import('./database.js')
  return runJournalledStep(
    ctx.journal,
    record,
    ctx.store,
    async () => {
      const note = await fn()
      if (note) record.note = note
      return note
    },
    async () => {
      record.schemaHead = await readSchemaHead(ctx.migrationUrl).catch(() => undefined)
    },
  )
}

async function finishSucceeded(
  ctx: import('./local.js').LocalContext,
  outcome: 'succeeded' | 'finished-interrupted',
): Promise<UpgradeResult> {
  const {setMaintenance} = await import('../service/maintenance.js')
  if (!ctx.journal.from.maintenanceWasOn) await setMaintenance(ctx.settings, false)
  const j = ctx.journal
  j.status = 'succeeded'
  j.finishedAt = new Date().toISOString()
  j.durationMs = Date.parse(j.finishedAt) - Date.parse(j.startedAt)
  await ctx.store.save(j)
  return {
    outcome,
    target: 'local',
    from: {version: j.from.version, schemaHead: j.from.schemaHead},
    to: {version: j.to.version, schemaHead: j.to.schemaHead, source: j.to.source},
    journal: j,
    message: `${outcome === 'finished-interrupted' ? `finished the interrupted upgrade ${j.id}: ` : ''}upgraded ${j.stack} from ${j.from.version ?? '?'} to ${j.to.version} (schema ${j.from.schemaHead ?? 'none'} → ${j.to.schemaHead ?? 'none'}) in ${((j.durationMs ?? 0) / 1000).toFixed(1)} s`,
  }
}

const allDoneThroughVerify = (j: UpgradeJournal) => j.status === 'running' && j.steps.every((s) => s.status === 'done')

/**
 * Undoes every started step in reverse (journalled), then throws RolledBackError (exit 6) naming the
 * failing step — or, when an undo itself fails, an error saying exactly what state the stack is in.
 */
async function rollbackAndThrow(
  ctx: import('./local.js').LocalContext,
  error: unknown,
  options: {resumed: boolean},
): Promise<never> {
  const j = ctx.journal
  const {undoLocalStep} = await import('./local.js')
  const {runSteps} = await import('../core/steps.js')
  const failedStep = j.failure?.step ?? 'resume'
  const cause = error instanceof Error ? error.message : String(error)
  j.status = 'rolling-back'
  j.rollback = {...j.rollback, startedAt: j.rollback?.startedAt ?? new Date().toISOString(), resumed: options.resumed}
  await ctx.store.save(j)
  const todo = [...j.steps]
    .reverse()
    .filter((s) => s.status === 'running' || s.status === 'done' || s.status === 'failed' || s.status === 'undo-failed')
  try {
    await runSteps(
      todo
        .filter((s) => undoLocalStep[s.name])
        .map((s) => ({
          title: `undo ${s.title}`,
          run: async () => {
            try {
              const note = await undoLocalStep[s.name]!(ctx, s)
              s.status = 'undone'
              s.data.undo = note ?? ''
              return note
            } catch (undoError) {
              s.status = 'undo-failed'
              s.data.undoError = (undoError as Error).message
              throw undoError
            } finally {
              await ctx.store.save(j)
            }
          },
        })),
      {
        tty: false,
        logger: ctx.logger,
        heading: `rolling back: ${failedStep === 'resume' ? 'interrupted run' : `step ${failedStep}`} failed: ${cause}`,
      },
    )
  } catch (undoError) {
    j.status = 'rollback-failed'
    j.rollback = {...j.rollback!, finishedAt: new Date().toISOString(), error: (undoError as Error).message}
    j.finishedAt = j.rollback.finishedAt
    j.durationMs = Date.parse(j.finishedAt!) - Date.parse(j.startedAt)
    await ctx.store.save(j)
    throw new CliError(
      'UPGRADE_ROLLBACK_FAILED',
      ExitCode.findings,
      `the upgrade to ${j.to.version} failed at step ${failedStep} (${cause}) and the rollback failed too: ${(undoError as Error).message}. The stack is NOT back to ${j.from.version ?? 'the previous version'}: maintenance mode stays on.`,
      {
        hint: `Journal: ${(await import('./journal.js')).journalFile(ctx.settings)}. Step-1 backup: ${j.backupId ?? 'none'} (restore it with the restore commands), then \`charge-ops service start\`. Rerunning \`charge-ops upgrade\` retries the rollback.`,
        data: {journal: j},
      },
    )
  }
  // Steps without an undo (backup, fetch, install, verify) keep their status: nothing of them is reverted.
  j.status = 'rolled-back'
  j.rollback = {...j.rollback!, method: j.rollback?.method ?? 'none', finishedAt: new Date().toISOString()}
  j.finishedAt = j.rollback.finishedAt
  j.durationMs = Date.parse(j.finishedAt!) - Date.parse(j.startedAt)
  await ctx.store.save(j)
  throw new RolledBackError(
    `${options.resumed ? `the interrupted upgrade ${j.id}` : 'the upgrade'} to ${j.to.version} failed at step ${failedStep}: ${cause} — rolled back (${j.rollback.method === 'restore' ? `backup ${j.backupId} restored` : j.rollback.method === 'down-migrations' ? 'down migrations' : 'schema untouched'}); ${j.from.version ?? 'the previous version'} is ${j.from.serviceRunning ? 'serving again' : 'in place (it was not running)'}`,
    {
      hint: 'Fix the cause and rerun `charge-ops upgrade`; the journal is in `charge-ops upgrade history --json`.',
      data: {failedStep, journal: j},
    },
  )
}

async function resolveInterrupted(
  journal: UpgradeJournal,
  options: UpgradeOptions & Internal & {acquireBackupLock: () => Promise<unknown>},
): Promise<UpgradeResult> {
  const {logger} = options
  const {configHash} = await import('./preflight.js')
  const atStep = journal.steps.find((s) => s.status === 'running' || s.status === 'failed')?.name
  // killed between two steps (kill points upgrade.local.after-<step>): none is running, the last done one says where
  const afterStep = atStep ? undefined : journal.steps.findLast((s) => s.status === 'done')?.name
  const where = atStep ? ` during step ${atStep}` : afterStep ? ` after step ${afterStep}` : ''
  logger.warn(
    `found an interrupted upgrade ${journal.id} (${journal.from.version ?? '?'} → ${journal.to.version}, started ${journal.startedAt} by pid ${journal.pid} on ${journal.host}, ${journal.status}${where})`,
  )
  if (journal.host !== hostname()) {
    throw new CliError(
      'UPGRADE_OTHER_HOST',
      ExitCode.locked,
      `the interrupted upgrade ${journal.id} ran on ${journal.host}`,
      {hint: 'Resume it on that host, or remove the journal file after checking the stack by hand.'},
    )
  }
  if (configHash(options.settings) !== journal.configHash)
    logger.warn('the configuration changed since that upgrade started; rolling back with the current one')
  journal.interrupted = {
    detectedAt: new Date().toISOString(),
    byPid: process.pid,
    atStep,
    ...(afterStep ? {afterStep} : {}),
  }
  await options.acquireBackupLock()
  const ctx = await localContext(options, {...options, journal})
  if (allDoneThroughVerify(journal)) {
    logger.info('it had passed verify: finishing it (maintenance off, journal closed)')
    return finishSucceeded(ctx, 'finished-interrupted')
  }
  journal.failure ??= {
    step: atStep ?? 'resume',
    error: `interrupted (the upgrade process ${journal.pid} stopped${where})`,
  }
  return rollbackAndThrow(ctx, new Error(journal.failure.error), {resumed: true})
}
