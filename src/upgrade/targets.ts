/**
 * The compose and k8s targets: build the command plan (plans.ts), print it for --dry-run, else run
 * it in order — each command through src/core/proc/exec.ts (a missing docker / kubectl is exit 5 with the
 * install hint) — and on failure run the completed steps' rollback commands in reverse (exit 6).
 */
import {existsSync, readFileSync} from 'node:fs'

import {CliError, ExitCode, RolledBackError, UnreachableError, UsageError} from '../errors.js'
import {writeFileAtomicSync} from '../core/fs/atomic.js'
import type {UpgradeOptions, UpgradeResult} from './types.js'
import type {CommandPlan, PlannedCommand} from './plans.js'

export async function buildPlan(options: UpgradeOptions & {target: 'compose' | 'k8s'}): Promise<CommandPlan> {
  const {composePlan, k8sPlan} = await import('./plans.js')
  if (!options.to) throw new UsageError('--to is required: the image tag to upgrade to', {hint: 'e.g. `charge-ops upgrade --target compose --to 1.4.0`.'})
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
  const next = /^CHARGE_OPS_VERSION=.*$/m.test(text) ? text.replace(/^CHARGE_OPS_VERSION=.*$/m, `CHARGE_OPS_VERSION=${version}`) : `${text.replace(/\n?$/, '\n')}CHARGE_OPS_VERSION=${version}\n`
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
  const result = await run(c.file, c.args, {purpose: c.purpose, ...(c.env ? {env: c.env} : {})}).catch((error: unknown) => {
    // charge-ops … --json reports its error on stdout: name it, not just "exited with code 1"
    const stdout = (error as {cause?: {stdout?: unknown}}).cause?.stdout
    const reported = typeof stdout === 'string' ? /"message":\s*"((?:[^"\\]|\\.)*)"/.exec(stdout)?.[1] : undefined
    if (reported && error instanceof Error) error.message = `${error.message}: ${JSON.parse(`"${reported}"`) as string}`
    throw error
  })
  if (c.check === 'compose-health') {
    const health = composeHealth(result.stdout)
    if (!health.ok) throw new CliError('UPGRADE_VERIFY_FAILED', ExitCode.findings, `containers not healthy: ${health.problems.join(', ')}`)
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
async function withPreviousHead(plan: CommandPlan, options: UpgradeOptions): Promise<{plan: CommandPlan; head?: string | null}> {
  const url = schemaUrl(options)
  if (!url) return {plan}
  const {readSchemaHead} = await import('./database.js')
  const head = await readSchemaHead(url).catch(() => undefined)
  if (head === undefined) return {plan}
  const fill = (c: PlannedCommand): PlannedCommand => ({...c, args: c.args.map((a) => (a === '<previous head>' ? (head ?? '0') : a))})
  return {plan: {...plan, steps: plan.steps.map((s) => ({...s, commands: s.commands.map(fill), undo: s.undo.map(fill)}))}, head}
}

function schemaUrl(options: UpgradeOptions): string | undefined {
  // the .env's MIGRATION_DATABASE_URL (on a compose host mapped to the published port, like DATABASE_URL)
  const fromEnvFile = (options.settings.backendEnv as Record<string, unknown>).MIGRATION_DATABASE_URL
  return process.env.MIGRATION_DATABASE_URL || (typeof fromEnvFile === 'string' ? fromEnvFile : undefined) || options.settings.databaseUrl
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
    throw new UnreachableError('docker is installed but its compose plugin is not (`docker compose version` failed)', {code: 'TOOL_MISSING', hint: 'Install it: apt-get install -y docker-compose-plugin (Docker\'s apt repository), then rerun.', cause: error})
  }
}

export async function runPlanTarget(options: UpgradeOptions & {target: 'compose' | 'k8s'}): Promise<UpgradeResult> {
  const {plan, head: headBefore} = await withPreviousHead(await buildPlan(options), options)
  if (options.dryRun) {
    return {outcome: 'dry-run', target: options.target, commandPlan: plan, message: `dry run: ${plan.steps.reduce((n, s) => n + s.commands.length, 0)} commands for the ${plan.target} target; nothing was run`}
  }
  // The binary must exist before anything changes (exit 5 with the install hint otherwise).
  await requireBinary(options.target)
  await options.confirm?.(`upgrade stack "${options.settings.stack}" (${options.target}) to ${plan.version}?`)
  const done: typeof plan.steps = []
  const {runSteps} = await import('../core/steps.js')
  const {STEP1_BACKUP} = await import('./plans.js')
  let backupId: string | undefined
  try {
    await runSteps(
      plan.steps.filter((s) => s.commands.length > 0).map((step) => ({
        title: step.title,
        run: async () => {
          done.push(step)
          for (const c of step.commands) {
            const stdout = await execute(c, options.logger)
            if (step.step === 'backup' && c.args.includes('all')) backupId = backupIdOf(stdout)
          }
        },
      })),
      {tty: Boolean(options.tty), logger: options.logger},
    )
  } catch (error) {
    const failed = done.at(-1)
    const rollbackFailures: string[] = []
    for (const step of done.reverse()) {
      for (const undo of step.undo) {
        if (undo.args.includes('<previous head>')) continue // the database was unreachable before the upgrade: nothing known to revert to
        if (undo.when === 'schema-moved') {
          const url = schemaUrl(options)
          const {readSchemaHead} = await import('./database.js')
          const now = url ? await readSchemaHead(url).catch(() => undefined) : undefined
          if (headBefore !== undefined && now === headBefore) {
            options.logger.info(`schema head still ${headBefore ?? 'none'}: no restore needed`)
            continue
          }
          if (!backupId) {
            rollbackFailures.push(`the schema head moved (${headBefore ?? 'none'} → ${now ?? '?'}) and step 1's backup id is unknown`)
            continue
          }
        }
        const c = {...undo, args: undo.args.map((a) => (a === STEP1_BACKUP ? backupId! : a))}
        await execute(c, options.logger).catch((e) => {
          options.logger.warn(`rollback command failed: ${(e as Error).message}`)
          rollbackFailures.push(`${c.purpose}: ${(e as Error).message}`)
        })
      }
    }
    const what = `the ${options.target} upgrade to ${plan.version} failed at ${failed?.title ?? '?'}: ${(error as Error).message}`
    // An undo that failed leaves the stack between versions: say so (exit 1), never "rolled back".
    if (rollbackFailures.length > 0) {
      throw new CliError('UPGRADE_ROLLBACK_FAILED', ExitCode.findings, `${what}; the rollback did not complete: ${rollbackFailures.join('; ')}`, {hint: `The pre-upgrade backup is ${backupId ?? 'the newest `backup all`'} (charge-ops restore db <id> --clean --yes); start the previous images with CHARGE_OPS_VERSION=<previous> docker compose up -d --wait.`, data: {commandPlan: plan, backupId}})
    }
    throw new RolledBackError(`${what} — rolled back${backupId ? ` (pre-upgrade backup ${backupId})` : ''}`, {data: {commandPlan: plan, backupId}})
  }
  if (options.target === 'compose') recordComposeVersion(options.settings.envFilePath, plan.version)
  return {outcome: 'succeeded', target: options.target, commandPlan: plan, message: `upgraded (${options.target}) to ${plan.version}`}
}
