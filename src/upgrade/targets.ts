/**
 * The compose and k8s targets: build the command plan (plans.ts), print it for --dry-run, else run
 * it in order — each command through src/core/proc/exec.ts (a missing docker / kubectl is exit 5 with the
 * install hint) — and on failure run the completed steps' rollback commands in reverse (exit 6).
 */
import {existsSync, readFileSync} from 'node:fs'

import {CliError, ExitCode, RolledBackError, UnreachableError, UsageError} from '../errors.js'
import {writeFileAtomicSync} from '../core/fs/atomic.js'
import type {UpgradeOptions, UpgradeResult} from './types.js'
import type {JournalStore, UpgradeJournal} from './journal.js'
import type {CommandPlan, PlannedCommand, PlanStep} from './plans.js'

export async function buildPlan(options: UpgradeOptions & {target: 'compose' | 'k8s'}): Promise<CommandPlan> {
  const {composePlan, k8sPlan} = await import('./plans.js')
  if (!options.to)
    throw new UsageError('--to is required: the image tag to upgrade to', {
      hint: 'e.g. `charge-ops upgrade --target compose --to 1.4.0`.',
    })
  const chargeOps = ['charge-ops']
  const appUrl = options.appUrl ?? defaultAppUrl(options.settings.backendEnv.ALLOWED_ORIGINS)
  if (options.target === 'compose') {
    const {resolve} = await import('node:path')
    const file = options.compose?.file ?? options.settings.yaml.paths.composeFile ?? 'docker-compose.yml'
    return composePlan({
      version: options.to,
      composeFile: resolve(options.settings.baseDir, file),
      project: options.compose?.project ?? options.settings.yaml.compose?.project,
      previousVersion: composeVersion(options.settings.envFilePath),
      image: options.compose?.image,
      backendService: options.compose?.backendService,
      workerService: options.compose?.workerService,
      chargeOps,
      appUrl,
    })
  }
  // default: the service image init's manifests run (src/topology), in the namespace init names after the stack
  const {DEFAULT_IMAGE_PREFIX} = await import('../topology/index.js')
  const image = options.k8s?.image ?? `${DEFAULT_IMAGE_PREFIX}/service`
  return k8sPlan({
    version: options.to,
    namespace: options.k8s?.namespace ?? options.settings.stack,
    image,
    deployment: options.k8s?.deployment,
    container: options.k8s?.container,
    workerDeployment: options.k8s?.workerDeployment,
    manifests: options.k8s?.manifests,
    rolloutTimeout: options.k8s?.rolloutTimeout,
    chargeOps,
    appUrl,
  })
}

/** The images' version the compose project runs: CHARGE_OPS_VERSION in its .env (init writes it). */
export function composeVersion(envFile: string | undefined): string | null {
  if (!envFile || !existsSync(envFile)) return null
  const match = /^CHARGE_OPS_VERSION=(.+)$/m.exec(readFileSync(envFile, 'utf8'))
  return match ? match[1]!.trim() : null
}

/** Records the version now serving in the compose project's .env (atomic and fsynced, mode and owner kept). */
function recordComposeVersion(envFile: string | undefined, version: string): void {
  if (!envFile || !existsSync(envFile)) return
  const text = readFileSync(envFile, 'utf8')
  const next = /^CHARGE_OPS_VERSION=.*$/m.test(text)
    ? text.replace(/^CHARGE_OPS_VERSION=.*$/m, `CHARGE_OPS_VERSION=${version}`)
    : `${text.replace(/\n?$/, '\n')}CHARGE_OPS_VERSION=${version}\n`
  // the .env holds secrets: its mode and owner stay as they were (0600 if it vanished meanwhile)
  writeFileAtomicSync(envFile, next, {mode: 0o600, keepExisting: true})
}

/** The UI's origin as the backend knows it: the first https origin of ALLOWED_ORIGINS (the guide's .env). */
export function defaultAppUrl(allowedOrigins: string | undefined): string | undefined {
  if (!allowedOrigins) return undefined
  const text = allowedOrigins.trim()
  let origins: string[] = []
  try {
    origins = text.startsWith('[') ? (JSON.parse(text) as unknown[]).map(String) : text.split(',')
  } catch {
    origins = []
  }
  return origins.map((o) => o.trim()).find((o) => /^https:\/\/[^/]+$/.test(o.replace(/\/$/, '')))
}

async function execute(c: PlannedCommand, logger: UpgradeOptions['logger']): Promise<string> {
  const {run} = await import('../core/proc/exec.js')
  const {shellQuote, composeHealth} = await import('./plans.js')
  logger.info(`$ ${shellQuote([c.file, ...c.args])}`)
  const result = await run(c.file, c.args, {purpose: c.purpose, ...(c.env ? {env: c.env} : {})}).catch(
    (error: unknown) => {
      // charge-ops … --json reports its error on stdout: name it, not just "exited with code 1"
      const stdout = (error as {cause?: {stdout?: unknown}}).cause?.stdout
      const reported = typeof stdout === 'string' ? /"message":\s*"((?:[^"\\]|\\.)*)"/.exec(stdout)?.[1] : undefined
      if (reported && error instanceof Error)
        error.message = `${error.message}: ${JSON.parse(`"${reported}"`) as string}`
      throw error
    },
  )
  if (c.check === 'compose-health') {
    const health = composeHealth(result.stdout)
    if (!health.ok)
      throw new CliError(
        'UPGRADE_VERIFY_FAILED',
        ExitCode.findings,
        `containers not healthy: ${health.problems.join(', ')}`,
      )
  }
  return result.stdout
}

/** The id in `charge-ops backup all --json` output (the manifest, bare or in a {data} envelope). */
export function backupIdOf(stdout: string): string | undefined {
  try {
    const parsed = JSON.parse(stdout) as {id?: unknown; data?: {id?: unknown}}
    const id = parsed.id ?? parsed.data?.id
    return typeof id === 'string' ? id : undefined
  } catch {
    return undefined
  }
}

/** The schema head before the upgrade replaces the `<previous head>` placeholder when the database is reachable. */
async function withPreviousHead(
  plan: CommandPlan,
  options: UpgradeOptions,
): Promise<{plan: CommandPlan; head?: string | null}> {
  const url = schemaUrl(options)
  if (!url) return {plan}
  const {readSchemaHead} = await import('./database.js')
  const head = await readSchemaHead(url).catch(() => undefined)
  if (head === undefined) return {plan}
  const fill = (c: PlannedCommand): PlannedCommand => ({
    ...c,
    args: c.args.map((a) => (a === '<previous head>' ? (head ?? '0') : a)),
  })
  return {
    plan: {...plan, steps: plan.steps.map((s) => ({...s, commands: s.commands.map(fill), undo: s.undo.map(fill)}))},
    head,
  }
}

function schemaUrl(options: UpgradeOptions): string | undefined {
  // the .env's MIGRATION_DATABASE_URL (on a compose host mapped to the published port, like DATABASE_URL)
  const fromEnvFile = (options.settings.backendEnv as Record<string, unknown>).MIGRATION_DATABASE_URL
  return (
    process.env.MIGRATION_DATABASE_URL ||
    (typeof fromEnvFile === 'string' ? fromEnvFile : undefined) ||
    options.settings.databaseUrl
  )
}

async function requireBinary(target: 'compose' | 'k8s'): Promise<void> {
  const {run} = await import('../core/proc/exec.js')
  if (target === 'k8s') {
    await run('kubectl', ['version', '--client'])
    return
  }
  await run('docker', ['--version'])
  try {
    await run('docker', ['compose', 'version'])
  } catch (error) {
    throw new UnreachableError('docker is installed but its compose plugin is not (`docker compose version` failed)', {
      code: 'TOOL_MISSING',
      hint: "Install it: apt-get install -y docker-compose-plugin (Docker's apt repository), then rerun.",
      cause: error,
    })
  }
}

/**
 * compose / k8s: the plan's steps run under the same journal as the local target
 * (`<stateDir>/upgrade/journal.json`, written before and after each step; journal.ts). Each step's
 * record keeps its plan step (commands and undo, `<previous head>` filled in) and step 1's backup id
 * is recorded as soon as `backup all` printed it, so that a later run rolls a killed one back from
 * the journal alone. The journal is not written into the database's `charge_ops_upgrades` here: the
 * commands act on the stack from outside, and the migrate step's undo restores the application
 * database from step 1's backup, which would rewrite that table under the journal.
 */
export async function runPlanTarget(options: UpgradeOptions & {target: 'compose' | 'k8s'}): Promise<UpgradeResult> {
  const {readJournal, isUnfinished, JournalStore} = await import('./journal.js')
  const previous = readJournal(options.settings)
  const store = new JournalStore(options.settings, undefined, options.logger)
  if (isUnfinished(previous)) {
    if (previous.target === 'local')
      throw new UsageError(
        `an interrupted local upgrade ${previous.id} (${previous.from.version ?? '?'} → ${previous.to.version}) is recorded`,
        {hint: 'Finish or roll it back first: charge-ops upgrade --target local --yes'},
      )
    if (options.dryRun)
      return {
        outcome: 'dry-run',
        target: previous.target,
        journal: previous,
        message: `an interrupted upgrade ${previous.id} (${previous.from.version ?? '?'} → ${previous.to.version}) would be ${previous.steps.every((r) => r.status === 'done') ? 'finished' : 'rolled back'} first`,
      }
    await requireBinary(previous.target)
    const release = await lockUpgrade(options, `upgrade (resume ${previous.id})`)
    try {
      return await resumePlan(previous, store, options)
    } finally {
      await release()
    }
  }
  const {plan, head: headBefore} = await withPreviousHead(await buildPlan(options), options)
  if (options.dryRun) {
    return {
      outcome: 'dry-run',
      target: options.target,
      commandPlan: plan,
      message: `dry run: ${plan.steps.reduce((n, s) => n + s.commands.length, 0)} commands for the ${plan.target} target; nothing was run`,
    }
  }
  // The binary must exist before anything changes (exit 5 with the install hint otherwise).
  await requireBinary(options.target)
  await options.confirm?.(`upgrade stack "${options.settings.stack}" (${options.target}) to ${plan.version}?`)
  const release = await lockUpgrade(options, `upgrade --target ${options.target} --to ${plan.version}`)
  try {
    const {newJournal} = await import('./journal.js')
    const {configHash} = await import('./preflight.js')
    const journal = newJournal({
      stack: options.settings.stack,
      target: options.target,
      from: {
        version: options.target === 'compose' ? composeVersion(options.settings.envFilePath) : null,
        release: null,
        schemaHead: headBefore ?? null,
        schemaHeadUnknown: headBefore === undefined,
        migrationsDir: '',
        serviceRunning: true,
        maintenanceWasOn: false,
      },
      to: {source: options.to!, version: plan.version, release: '', schemaHead: null, migrationsDir: ''},
      configHash: configHash(options.settings),
      steps: plan.steps.map((s) => s.step),
    })
    plan.steps.forEach((step, i) => {
      const record = journal.steps[i]!
      record.title = step.title
      record.data.planStep = step
      // nothing to run: part of the image
      if (step.commands.length === 0) record.status = 'done'
    })
    await store.save(journal)
    const {runSteps} = await import('../core/steps.js')
    const {faultPoint} = await import('../core/faults.js')
    const {runJournalledStep} = await import('./journal.js')
    try {
      await runSteps(
        journal.steps
          .filter((r) => r.status === 'pending')
          .map((record) => ({
            title: record.title,
            run: async () => {
              const step = record.data.planStep as PlanStep
              await runJournalledStep(journal, record, store, async () => {
                for (const c of step.commands) {
                  const stdout = await execute(c, options.logger)
                  if (step.step === 'backup' && c.args.includes('all')) {
                    journal.backupId = backupIdOf(stdout)
                    await store.save(journal)
                  }
                }
              })
              await faultPoint(`upgrade.plan.after-${step.step}`)
            },
          })),
        {tty: Boolean(options.tty), logger: options.logger},
      )
    } catch (error) {
      return await rollbackPlan(journal, store, options, error, false)
    }
    return await finishPlan(journal, store, options, 'succeeded')
  } finally {
    await release()
  }
}

/** The repository lock `upgrade`: two upgrades of one stack never overlap (exit 4), as on the local target. */
async function lockUpgrade(options: UpgradeOptions, command: string): Promise<() => Promise<void>> {
  const {openConfiguredRepository} = await import('../repository/open.js')
  const {acquireLock} = await import('../repository/lock.js')
  return acquireLock(await openConfiguredRepository(options.settings), options.settings.stack, {
    command,
    name: 'upgrade',
  })
}

async function finishPlan(
  journal: UpgradeJournal,
  store: JournalStore,
  options: UpgradeOptions,
  outcome: 'succeeded' | 'finished-interrupted',
): Promise<UpgradeResult> {
  if (journal.target === 'compose') recordComposeVersion(options.settings.envFilePath, journal.to.version)
  journal.status = 'succeeded'
  journal.finishedAt = new Date().toISOString()
  journal.durationMs = Date.parse(journal.finishedAt) - Date.parse(journal.startedAt)
  await store.save(journal)
  const target = journal.target as 'compose' | 'k8s'
  return {
    outcome,
    target,
    commandPlan: planOf(journal),
    journal,
    message: `${outcome === 'finished-interrupted' ? `finished the interrupted upgrade ${journal.id}: ` : ''}upgraded (${target}) to ${journal.to.version}`,
  }
}

const planOf = (journal: UpgradeJournal): CommandPlan => ({
  target: journal.target as 'compose' | 'k8s',
  version: journal.to.version,
  steps: journal.steps.map((r) => r.data.planStep as PlanStep),
})

/** A killed compose / k8s upgrade: finished forward when every step had completed, else rolled back from its journal. */
async function resumePlan(
  journal: UpgradeJournal,
  store: JournalStore,
  options: UpgradeOptions,
): Promise<UpgradeResult> {
  const atStep = journal.steps.find((r) => r.status === 'running' || r.status === 'failed')?.name
  options.logger.warn(
    `found an interrupted upgrade ${journal.id} (${journal.target}, ${journal.from.version ?? '?'} → ${journal.to.version}, started ${journal.startedAt} by pid ${journal.pid} on ${journal.host}, ${journal.status}${atStep ? ` at step ${atStep}` : ''})`,
  )
  const {hostname} = await import('node:os')
  if (journal.host !== hostname())
    throw new CliError(
      'UPGRADE_OTHER_HOST',
      ExitCode.locked,
      `the interrupted upgrade ${journal.id} ran on ${journal.host}`,
      {hint: 'Resume it on that host, or remove the journal file after checking the stack by hand.'},
    )
  journal.interrupted = {detectedAt: new Date().toISOString(), byPid: process.pid, atStep}
  if (journal.status === 'running' && journal.steps.every((r) => r.status === 'done')) {
    options.logger.info('it had passed verify: finishing it (the version recorded, journal closed)')
    return finishPlan(journal, store, options, 'finished-interrupted')
  }
  journal.failure ??= {
    step: atStep ?? 'resume',
    error: `interrupted (the upgrade process ${journal.pid} stopped${atStep ? ` during step ${atStep}` : ''})`,
  }
  return rollbackPlan(journal, store, options, new Error(journal.failure.error), true)
}

/**
 * The undo commands of every started step, in reverse, each step's outcome journalled; then exit 6
 * (rolled back) or, when an undo failed, exit 1 UPGRADE_ROLLBACK_FAILED naming the backup.
 */
async function rollbackPlan(
  journal: UpgradeJournal,
  store: JournalStore,
  options: UpgradeOptions,
  error: unknown,
  resumed: boolean,
): Promise<never> {
  const {STEP1_BACKUP} = await import('./plans.js')
  const failed = [...journal.steps].reverse().find((r) => r.status === 'running' || r.status === 'failed')
  // a run killed between two steps: none was running; name where it stopped
  const lastDone = [...journal.steps]
    .reverse()
    .find((r) => r.status === 'done' && (r.data.planStep as PlanStep).commands.length > 0)
  const failedAt = failed?.title ?? (lastDone ? `the step after "${lastDone.title}"` : 'its start')
  journal.status = 'rolling-back'
  journal.rollback = {...journal.rollback, startedAt: journal.rollback?.startedAt ?? new Date().toISOString(), resumed}
  await store.save(journal)
  const backupId = journal.backupId
  const rollbackFailures: string[] = []
  for (const record of [...journal.steps].reverse()) {
    const step = record.data.planStep as PlanStep
    if (!['running', 'done', 'failed', 'undo-failed'].includes(record.status) || step.undo.length === 0) continue
    const before = rollbackFailures.length
    for (const undo of step.undo) {
      if (undo.args.includes('<previous head>')) continue // the database was unreachable before the upgrade: nothing known to revert to
      if (undo.when === 'schema-moved') {
        const url = schemaUrl(options)
        const {readSchemaHead} = await import('./database.js')
        const now = url ? await readSchemaHead(url).catch(() => undefined) : undefined
        if (!journal.from.schemaHeadUnknown && now === journal.from.schemaHead) {
          options.logger.info(`schema head still ${journal.from.schemaHead ?? 'none'}: no restore needed`)
          continue
        }
        if (!backupId) {
          rollbackFailures.push(
            `the schema head moved (${journal.from.schemaHead ?? 'none'} → ${now ?? '?'}) and step 1's backup id is unknown`,
          )
          continue
        }
        journal.rollback = {...journal.rollback!, method: 'restore'}
      }
      const c = {...undo, args: undo.args.map((a) => (a === STEP1_BACKUP ? backupId! : a))}
      await execute(c, options.logger).catch((e) => {
        options.logger.warn(`rollback command failed: ${(e as Error).message}`)
        rollbackFailures.push(`${c.purpose}: ${(e as Error).message}`)
      })
    }
    record.status = rollbackFailures.length > before ? 'undo-failed' : 'undone'
    await store.save(journal)
  }
  const plan = planOf(journal)
  const what = `${resumed ? `the interrupted ${journal.target} upgrade ${journal.id}` : `the ${journal.target} upgrade`} to ${journal.to.version} failed at ${failedAt}: ${(error as Error).message}`
  journal.finishedAt = new Date().toISOString()
  journal.durationMs = Date.parse(journal.finishedAt) - Date.parse(journal.startedAt)
  journal.rollback = {...journal.rollback!, method: journal.rollback?.method ?? 'none', finishedAt: journal.finishedAt}
  // An undo that failed leaves the stack between versions: say so (exit 1), never "rolled back".
  if (rollbackFailures.length > 0) {
    journal.status = 'rollback-failed'
    journal.rollback.error = rollbackFailures.join('; ')
    await store.save(journal)
    throw new CliError(
      'UPGRADE_ROLLBACK_FAILED',
      ExitCode.findings,
      `${what}; the rollback did not complete: ${rollbackFailures.join('; ')}`,
      {
        hint: `The pre-upgrade backup is ${backupId ?? 'the newest `backup all`'} (charge-ops restore db <id> --clean --yes); start the previous images with CHARGE_OPS_VERSION=<previous> docker compose up -d --wait.`,
        data: {commandPlan: plan, backupId, journal},
      },
    )
  }
  journal.status = 'rolled-back'
  await store.save(journal)
  throw new RolledBackError(`${what} — rolled back${backupId ? ` (pre-upgrade backup ${backupId})` : ''}`, {
    data: {commandPlan: plan, backupId, journal},
  })
}
