/**
 * `charge-ops recover` on a compose deployment: the cluster being recovered is the postgres
 * service's named volume, not a new data directory on this host, and nothing is repointed — the
 * stack starts again on the recovered cluster. Six resumable steps over the same journal as the
 * local runbook (`<stateDir>/recover.json`, recover.ts):
 *  1 maintenance on            2 stop nginx, worker, backend, then PostgreSQL
 *  3 restore in the volume     (a one-off container of the postgres image: the old cluster moved
 *                               aside inside the volume, `charge-ops restore pitr` into an empty
 *                               folder there, moved into place)
 *  4 start PostgreSQL alone, wait until it replayed to the target and promoted
 *  5 `docker compose up -d --wait` (the migrate job needs a writable primary: hence after 4)
 *  6 verify (migration version, /health, row counts), maintenance off
 * A failure puts the old cluster back into place and starts the stack on it (exit 6). The old
 * cluster stays in `.pre-recover-<start>` inside the volume after a success, for the operator to
 * remove once the data is checked (a base backup would otherwise copy it).
 */
import type {Settings} from '../config/settings.js'
import {ChecksFailedError, CliError, ExitCode, RolledBackError, UsageError} from '../errors.js'
import type {Logger} from '../output/logger.js'
import {composeInvocation, parseComposePs} from '../topology/host.js'
import {service, stackTopology} from '../topology/index.js'
import {CONTAINER_CONFIG} from '../wal/command-lines.js'
import {formatLsn} from '../wal/names.js'
import {describeTarget, type RecoveryTarget} from './pitr-target.js'
import type {PitrResult} from './pitr.js'
import {
  checkRecovered,
  describeVerified,
  journalledStep,
  markDone,
  migrationVersion,
  openRecoverState,
  saveState,
  stateFile,
  type RecoverState,
  type RecoverStep,
  type StepId,
} from './recover.js'

export interface ComposeRecoverOptions {
  settings: Settings
  target: RecoveryTarget
  /** the API's /health as this host reaches it (default: the backend's published port) */
  healthUrl?: string
  logger: Logger
  /** how long PostgreSQL may replay before step 4 gives up (default 3600 s) */
  replaySeconds?: number
}

const TITLES: Record<Exclude<StepId, 'repoint'>, string> = {
  maintenance: '1/6 maintenance mode on (writes stop)',
  stop: '2/6 stop nginx, the worker, the API, then PostgreSQL',
  restore: '3/6 restore the base backup into the postgres volume (the old cluster kept aside in it)',
  replay: '4/6 start PostgreSQL: replay WAL to the target and promote',
  start: '5/6 start the stack (docker compose up -d --wait)',
  verify: '6/6 verify: migration version, health, row counts; maintenance off',
}

/** `restore pitr`'s flags for a target (the in-container run gets the operator's own target back). */
export function targetArgs(target: RecoveryTarget): string[] {
  switch (target.kind) {
    case 'time':
      return ['--target-time', target.text]
    case 'lsn':
      return ['--target-lsn', formatLsn(target.lsn)]
    case 'name':
      return ['--target-name', target.name]
    default:
      return ['--latest']
  }
}

/**
 * Runs in the postgres image as root, in the data directory, with $1 = the folder that keeps the old
 * cluster and the rest = restore pitr's target flags. Rerunnable at any point: a killed move goes on
 * from `<keep>.partial`; once the old cluster is complete in <keep>, whatever else is there is a
 * killed run's partial restore and is removed before restoring again. Older `.pre-recover-*`
 * folders (earlier recoveries) are left alone.
 */
export const RESTORE_SCRIPT = `set -eu
keep="$1"; shift
if [ ! -d "$keep" ]; then
  mkdir -p "$keep.partial"
  find . -mindepth 1 -maxdepth 1 ! -name '.pre-recover-*' -exec mv -t "$keep.partial" {} +
  mv "$keep.partial" "$keep"
else
  find . -mindepth 1 -maxdepth 1 ! -name '.pre-recover-*' -exec rm -rf {} +
fi
install -d -o postgres -g postgres -m 700 .restored
charge-ops restore pitr "$@" --data-dir "$PWD/.restored" --yes --json --config ${CONTAINER_CONFIG}
find .restored -mindepth 1 -maxdepth 1 -exec mv -t . {} +
rmdir .restored
`

/** The rollback's half: the old cluster back into place (whatever was restored is removed). */
export const PUT_BACK_SCRIPT = `set -eu
keep="$1"
if [ -d "$keep.partial" ] && [ ! -d "$keep" ]; then mv "$keep.partial" "$keep"; fi
[ -d "$keep" ] || exit 0
find . -mindepth 1 -maxdepth 1 ! -name '.pre-recover-*' -exec rm -rf {} +
find "$keep" -mindepth 1 -maxdepth 1 -exec mv -t . {} +
rmdir "$keep"
`

/** What the six steps and the rollback share. */
interface ComposeRun {
  options: ComposeRecoverOptions
  settings: Settings
  s: RecoverState
  target: string
  postgres: string
  writers: string[]
  /** the folder in the volume (relative to the data directory) that keeps the old cluster */
  keep: string
  checkUrl: string
  healthUrl?: string
  migrationsDir: string
  display: string
  mark: (id: StepId) => Promise<void>
  compose: (purpose: string, args: string[], timeoutMs?: number) => Promise<{stdout: string}>
  /** a one-off container of the postgres image, as root in the data directory, running `script` */
  inVolume: (purpose: string, script: string, args: string[]) => Promise<{stdout: string}>
  maintenance: (on: boolean) => Promise<{file: string; redis: string}>
}

export async function planComposeRecover(
  options: ComposeRecoverOptions,
): Promise<{steps: RecoverStep[]; state: RecoverState; rollback: (error: unknown) => Promise<Error>}> {
  const run = await composeRun(options)
  const step = (
    id: Exclude<StepId, 'repoint'>,
    fn: (run: ComposeRun, note: (text: string) => void) => Promise<void>,
  ): RecoverStep => journalledStep(run.s, run, id, TITLES[id], fn)
  const steps = [
    step('maintenance', maintenanceOn),
    step('stop', stopWriters),
    step('restore', restoreInVolume),
    step('replay', replayUntilPromoted),
    step('start', startStack),
    step('verify', verifyStack),
  ]
  return {steps, state: run.s, rollback: (error) => rollbackCompose(run, error)}
}

async function composeRun(options: ComposeRecoverOptions): Promise<ComposeRun> {
  const {settings} = options
  const topology = stackTopology()
  const postgres = service(topology, 'postgres')
  const dataMount = postgres.volumes[0]!.mount
  const dc = composeInvocation(settings)
  const port = settings.yaml.compose?.hostPorts.postgres
  const oldUrl = settings.databaseUrl
  if (!oldUrl || port === undefined) {
    throw new UsageError(
      `charge-ops.yaml's compose section names no PostgreSQL port, or DATABASE_URL is not set: this is not a deployment that init --target compose wrote`,
      {code: 'RECOVER_NO_ENV', hint: 'Run it in the folder of the compose deployment (charge-ops.yaml, .env).'},
    )
  }
  // the schema owner's URL, as the host reaches it: it may read every table (row counts)
  const ownerUrl = (settings.backendEnv as Record<string, unknown>).MIGRATION_DATABASE_URL
  const backendPort = settings.yaml.compose?.hostPorts.backend
  const {bundledMigrationsDir} = await import('../migrate/index.js')
  const target = describeTarget(options.target)
  const s = await openRecoverState(
    settings,
    {target, dataDir: `${dataMount} (compose volume ${postgres.volumes[0]!.volume})`, port, deployment: 'compose'},
    oldUrl,
  )
  s.oldCluster ??= `${dataMount}/.pre-recover-${s.startedAt.replace(/[-:.]/g, '')}`
  s.removeOldCluster ??= `${dc.display} run --rm --no-deps -T --entrypoint rm ${postgres.name} -rf ${s.oldCluster}`
  await saveState(settings, s)
  const {run} = await import('../core/proc/exec.js')
  const compose = (purpose: string, args: string[], timeoutMs = 10 * 60_000) =>
    run('docker', dc.args(...args), {purpose, timeout: timeoutMs})
  return {
    options,
    settings,
    s,
    target,
    postgres: postgres.name,
    writers: (['nginx', 'worker', 'backend'] as const).map((name) => service(topology, name).name),
    keep: s.oldCluster.slice(dataMount.length + 1),
    checkUrl: typeof ownerUrl === 'string' && ownerUrl ? ownerUrl : oldUrl,
    healthUrl: options.healthUrl ?? (backendPort ? `http://127.0.0.1:${backendPort}/health` : undefined),
    migrationsDir: bundledMigrationsDir(),
    display: dc.display,
    mark: (id) => markDone(settings, s, id),
    compose,
    inVolume: async (purpose, script, args) => {
      // The container outlives a killed charge-ops (the daemon runs it, and --rm is the client's
      // job): it has a name of its own, so that the rerun removes a killed run's one — still moving
      // files in the volume, or exited — before it starts another.
      const name = `${dc.project}-recover-in-volume`
      await run('docker', ['rm', '--force', name], {purpose: "remove a killed recover's container"}).catch(() => {})
      return compose(
        purpose,
        [
          'run',
          '--rm',
          '--no-deps',
          '-T',
          '--name',
          name,
          '--workdir',
          dataMount,
          '--entrypoint',
          'bash',
          postgres.name,
          '-c',
          script,
          'bash',
          ...args,
        ],
        2 * 3600_000,
      )
    },
    maintenance: async (on) => {
      const {setMaintenance} = await import('../service/maintenance.js')
      return setMaintenance(settings, on, on ? `charge-ops recover to ${target}` : undefined)
    },
  }
}

/** Step 1: the old migration version noted, maintenance mode on. */
async function maintenanceOn(
  {s, checkUrl, migrationsDir, maintenance, mark}: ComposeRun,
  note: (text: string) => void,
): Promise<void> {
  s.oldMigration = await migrationVersion(checkUrl, migrationsDir).catch(() => undefined)
  const status = await maintenance(true)
  note(`flag ${status.file}, redis ${status.redis}`)
  await mark('maintenance')
}

/** Step 2: nothing writes any more, then PostgreSQL stops (a clean shutdown before its files move). */
async function stopWriters(
  {compose, writers, postgres, mark}: ComposeRun,
  note: (text: string) => void,
): Promise<void> {
  await compose('stop the services that write', ['stop', '--timeout', '60', ...writers])
  await compose('stop PostgreSQL', ['stop', '--timeout', '120', postgres])
  note(`stopped ${[...writers, postgres].join(', ')}`)
  await mark('stop')
}

/** Step 3: restore pitr by the postgres image's charge-ops, into the volume (RESTORE_SCRIPT). */
async function restoreInVolume(
  {options, s, inVolume, keep, mark}: ComposeRun,
  note: (text: string) => void,
): Promise<void> {
  const {stdout} = await inVolume('restore pitr in the postgres image', RESTORE_SCRIPT, [
    keep,
    ...targetArgs(options.target),
  ])
  try {
    s.restore = JSON.parse(stdout) as PitrResult
  } catch {
    options.logger.debug(`restore pitr printed no JSON result: ${stdout.slice(-200)}`)
  }
  note(
    `${s.restore ? `base backup ${s.restore.backupId}; WAL ${s.restore.archive.firstSegment} … ${s.restore.archive.lastSegment}; ` : ''}the old cluster is in ${s.oldCluster}`,
  )
  await mark('restore')
}

/**
 * Step 4: PostgreSQL alone on the restored cluster, until it says it promoted. Not `up --wait`: a
 * long replay is "rejecting connections" and would fail the health check; a container that stops
 * (a target past the archived WAL) fails the step with its log.
 */
async function replayUntilPromoted(
  {options, compose, postgres, target, mark}: ComposeRun,
  note: (text: string) => void,
): Promise<void> {
  const logsTail = async () =>
    (await compose('the postgres logs', ['logs', '--no-color', '--tail', '30', postgres]).catch(() => ({stdout: ''})))
      .stdout
  await compose('start PostgreSQL on the restored cluster', ['up', '-d', '--no-deps', postgres])
  const seconds = options.replaySeconds ?? 3600
  const deadline = Date.now() + seconds * 1000
  for (;;) {
    const ps = await compose('the state of the postgres container', ['ps', '--all', '--format', 'json', postgres])
    const row = parseComposePs(ps.stdout)[0]
    if (row?.state !== 'running')
      throw new ChecksFailedError(
        `PostgreSQL stopped during recovery (${row?.state ?? 'no container'}):\n${await logsTail()}`,
        {code: 'PITR_RECOVERY_FAILED'},
      )
    const probe = await compose(
      'ask PostgreSQL whether it still recovers',
      ['exec', '-T', '-u', 'postgres', postgres, 'psql', '-XtAc', 'SELECT pg_is_in_recovery()'],
      20_000,
    ).catch(() => undefined)
    if (probe?.stdout.trim() === 'f') break
    if (Date.now() > deadline)
      throw new ChecksFailedError(`PostgreSQL still recovering after ${seconds} s:\n${await logsTail()}`, {
        code: 'PITR_RECOVERY_FAILED',
      })
    await new Promise((r) => setTimeout(r, 1000))
  }
  note(`promoted: PostgreSQL accepts writes (recovered to ${target})`)
  await mark('replay')
}

/** Step 5: the whole stack (the migrate job needs a writable primary: hence after step 4). */
async function startStack({compose, mark}: ComposeRun, note: (text: string) => void): Promise<void> {
  await compose('start the stack', ['up', '-d', '--wait', '--wait-timeout', '300'])
  note('every service up and healthy')
  await mark('start')
}

/** Step 6: migration version, /health, row counts; maintenance off when they pass. */
async function verifyStack(
  {s, checkUrl, migrationsDir, healthUrl, maintenance, mark}: ComposeRun,
  note: (text: string) => void,
): Promise<void> {
  s.verify = await checkRecovered({url: checkUrl, migrationsDir, oldMigration: s.oldMigration, healthUrl})
  // off and finished before step 6 is recorded (as recover.ts verifyStep): a rerun skips recorded steps
  await maintenance(false)
  s.finishedAt = new Date().toISOString()
  await mark('verify')
  note(`${describeVerified(s.verify)}; maintenance off; the old cluster is kept in ${s.oldCluster}`)
}

/** After a failed step: the old cluster back in place (once the restore may have moved it), the stack started on it, maintenance off. */
async function rollbackCompose(
  {settings, s, compose, inVolume, postgres, keep, maintenance, display}: ComposeRun,
  error: unknown,
): Promise<Error> {
  const undone: string[] = []
  const failures: string[] = []
  const attempt = async (what: string, fn: () => Promise<unknown>) => {
    try {
      await fn()
      undone.push(what)
    } catch (undoError) {
      failures.push(`${what}: ${(undoError as Error).message.split('\n')[0]}`)
    }
  }
  if (s.done.stop || s.done.restore) {
    // the restore step may have moved the old cluster before it failed: put it back in any case
    await attempt('PostgreSQL stopped', () => compose('stop PostgreSQL', ['stop', '--timeout', '120', postgres]))
    await attempt('the old cluster is back in place', () =>
      inVolume('the old cluster back into place', PUT_BACK_SCRIPT, [keep]),
    )
    for (const id of ['stop', 'restore', 'replay', 'start', 'verify'] as const) delete s.done[id]
  }
  await attempt('the stack runs on it', () =>
    compose('start the stack', ['up', '-d', '--wait', '--wait-timeout', '300']),
  )
  if (s.done.maintenance) {
    await attempt('maintenance mode is off', () => maintenance(false))
    delete s.done.maintenance
  }
  await saveState(settings, s).catch(() => {})
  const message = error instanceof Error ? error.message : String(error)
  if (failures.length > 0) {
    return new CliError(
      'RECOVER_ROLLBACK_FAILED',
      ExitCode.findings,
      `recover failed: ${message}; putting the old database back did not complete: ${failures.join('; ')}`,
      {
        hint: `The old cluster is in ${s.oldCluster} inside the postgres volume when the restore had started; \`${display} up -d --wait\` once it is in place (${stateFile(settings)}).`,
        cause: error,
      },
    )
  }
  return new RolledBackError(`recover failed: ${message}; the old database keeps serving (${undone.join(', ')})`, {
    hint: `Fix the cause and rerun the same command (${stateFile(settings)}).`,
    cause: error,
  })
}
