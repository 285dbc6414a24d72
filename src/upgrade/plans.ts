/**
 * The `compose` and `k8s` targets as exact command plans: pure functions of the options, printed by
 * `upgrade --dry-run` and executed in order otherwise (each needs its binary: exit 5 with the install
 * hint when it is missing). Every step lists its rollback commands, run in reverse on failure.
 */
import {stackTopology, upgradableServices, upgradableWorkloads, VERSION_VARIABLE} from '../topology/index.js'
import {parseComposePs} from '../topology/host.js'
import type {StepName} from './journal.js'

export interface PlannedCommand {
  /** argv[0] */
  file: string
  args: string[]
  /** why it runs */
  purpose: string
  /** a check whose output is inspected (health, rollout), not just its exit code */
  check?: 'compose-health' | 'http-health'
  /** environment for this command (compose: CHARGE_OPS_VERSION picks the images' tag) */
  env?: Record<string, string>
  /** an undo that runs only when the schema head is no longer the one read before the upgrade */
  when?: 'schema-moved'
}

export interface PlanStep {
  step: StepName
  title: string
  commands: PlannedCommand[]
  /** run (in reverse step order) when this or a later step fails */
  undo: PlannedCommand[]
}

export interface CommandPlan {
  target: 'compose' | 'k8s'
  version: string
  steps: PlanStep[]
}

export interface ComposePlanOptions {
  version: string
  /** docker-compose.yml (default ./docker-compose.yml) */
  composeFile: string
  project?: string
  /** the backend service (API) and worker service names in the compose file (default: the topology's) */
  backendService?: string
  workerService?: string
  /**
   * a registry prefix to pull `<prefix>/service:<version>` from; without it the images are built
   * here from the installed charge-ops (`charge-ops images build --version`)
   */
  image?: string
  previousVersion?: string | null
  /** how charge-ops is invoked for its own steps (default ['charge-ops']) */
  chargeOps?: string[]
  waitTimeoutSeconds?: number
  /** extra arguments of `images build` (e.g. --base) */
  buildArgs?: string[]
  /** the web UI's public URL: verify runs the guide's `curl -f` on it (§12 step 7) */
  appUrl?: string
}

const cmd = (
  file: string,
  args: string[],
  purpose: string,
  check?: PlannedCommand['check'],
  env?: Record<string, string>,
): PlannedCommand => ({file, args, purpose, ...(check ? {check} : {}), ...(env ? {env} : {})})

/** Filled in at run time with the id of step 1's `backup all` (the pre-upgrade database). */
export const STEP1_BACKUP = '<step-1 backup>'

/**
 * The migrate step's undo on compose and k8s: the pre-upgrade database back from step 1's backup,
 * when the migrations moved the schema head. Not `migrate down`: the down sections of the new
 * version's migrations are in the new image, not in the charge-ops that runs the plan, and a down
 * migration need not give back every row; the backup is exactly the state before the upgrade
 * (nothing writes in between: maintenance mode is on and the service is stopped).
 */
const restoreStep1 = (co: string[]): PlannedCommand => ({
  ...cmd(
    co[0]!,
    [...co.slice(1), 'restore', 'db', STEP1_BACKUP, '--clean', '--yes'],
    'the pre-upgrade database from the step-1 backup, when the migrations moved the schema head',
  ),
  when: 'schema-moved',
})

/** The last command of a verified upgrade: step 2 switched maintenance mode on. */
const maintenanceOff = (co: string[]): PlannedCommand =>
  cmd(co[0]!, [...co.slice(1), 'service', 'maintenance', 'off'], 'writes accepted again (the new version is verified)')

/** Guide §12 step 7: `curl -f https://app…` — the web UI answers after the upgrade. */
const uiCheck = (appUrl: string | undefined): PlannedCommand[] =>
  appUrl
    ? [cmd('curl', ['-fsS', '-o', '/dev/null', '--max-time', '15', appUrl], 'the web UI answers (guide §12 step 7)')]
    : []

/**
 * `docker compose` plan (the guide's seven steps): backup, maintenance + stop, images of the new
 * version (pulled, or built from this charge-ops), the version's migrations (the compose file's
 * one-off `migrate` service), up -d --wait on the new images, verify. The images' tag is the
 * compose project's CHARGE_OPS_VERSION: each command that must run a version gets it in its
 * environment (which wins over .env); the upgrade writes it into .env once the new version serves.
 */
export function composePlan(o: ComposePlanOptions): CommandPlan {
  // the services init's compose file runs the service image as (src/topology)
  const topology = stackTopology()
  const [defaultApi, defaultWorker] = upgradableServices(topology).map((s) => s.name)
  const backend = o.backendService ?? defaultApi!
  const worker = o.workerService ?? defaultWorker!
  const migrate = topology.services.find((s) => s.name === 'migrate')!.name
  const co = o.chargeOps ?? ['charge-ops']
  const dc = (...args: string[]) => ['compose', '-f', o.composeFile, ...(o.project ? ['-p', o.project] : []), ...args]
  const at = (version: string) => ({[VERSION_VARIABLE]: version})
  const wait = String(o.waitTimeoutSeconds ?? 120)
  // nginx resolves its upstream's name when its configuration loads: a recreated backend container
  // has a new address, so nginx reloads after each `up` of the backend (else 502 until a restart)
  const proxy = topology.services.find((s) => s.name === 'nginx')?.name
  const reloadProxy = (why: string): PlannedCommand[] =>
    proxy ? [cmd('docker', dc('exec', '-T', proxy, 'nginx', '-s', 'reload'), why)] : []
  // `up --no-deps`: PostgreSQL, Redis and Chroma keep running. Their image references name
  // CHARGE_OPS_VERSION too, so without it compose would recreate them on the new tag mid-upgrade;
  // they move to it at the next `docker compose up`.
  const fetch: PlannedCommand[] = o.image
    ? [cmd('docker', dc('pull', backend, worker), `pull ${o.image}/service:${o.version}`, undefined, at(o.version))]
    : [
        cmd(
          co[0]!,
          [...co.slice(1), 'images', 'build', '--version', o.version, ...(o.buildArgs ?? [])],
          `build the ${o.version} images from this charge-ops`,
        ),
      ]
  const previous = o.previousVersion ?? 'previous'
  const previousEnv = o.previousVersion ? at(o.previousVersion) : undefined
  return {
    target: 'compose',
    version: o.version,
    // Execution order differs from the guide's numbering on purpose: the images are built before
    // anything stops (no downtime for the build), and the backup is taken once writes are refused
    // and the worker is drained, so that restoring it on rollback loses nothing.
    steps: [
      {step: 'fetch', title: '3 fetch the new version (before anything stops)', commands: fetch, undo: []},
      {
        step: 'stop',
        title: '2 maintenance mode, drain the worker',
        commands: [
          cmd(
            co[0]!,
            [...co.slice(1), 'service', 'maintenance', 'on', '--reason', `upgrade to ${o.version}`],
            'writes answer 503',
          ),
          cmd('docker', dc('stop', '--timeout', '60', worker), 'the worker finishes its job and takes no other'),
        ],
        undo: [
          cmd(
            'docker',
            dc('up', '-d', '--no-deps', '--wait', '--wait-timeout', wait, backend, worker),
            `start ${previous} again`,
            undefined,
            previousEnv,
          ),
          ...reloadProxy(`nginx proxies to the ${previous} containers`),
          cmd(co[0]!, [...co.slice(1), 'service', 'maintenance', 'off'], 'writes accepted again'),
        ],
      },
      {
        step: 'backup',
        title: '1 verified backup (nothing writes any more)',
        commands: [
          cmd(co[0]!, [...co.slice(1), 'backup', 'all', '--json'], 'database + uploads + Chroma'),
          cmd(co[0]!, [...co.slice(1), 'backup', 'verify', 'latest'], 'checksums of every part'),
        ],
        undo: [],
      },
      {
        step: 'stop',
        title: '2 stop the API',
        commands: [cmd('docker', dc('stop', '--timeout', '60', backend), 'finish in-flight requests')],
        undo: [],
      },
      {step: 'install', title: '4 install its dependencies', commands: [], undo: []},
      {
        step: 'migrate',
        title: '5 migrate up',
        commands: [
          cmd(
            'docker',
            dc('run', '--rm', '--no-deps', migrate),
            `the ${o.version} image applies its migrations`,
            undefined,
            at(o.version),
          ),
        ],
        undo: [restoreStep1(co)],
      },
      {
        step: 'start',
        title: '6 start the new version',
        commands: [
          cmd(
            'docker',
            dc('up', '-d', '--no-deps', '--wait', '--wait-timeout', wait, backend, worker),
            `recreate ${backend} and ${worker} on ${o.version}`,
            undefined,
            at(o.version),
          ),
          ...reloadProxy(`nginx proxies to the ${o.version} containers`),
        ],
        undo: [cmd('docker', dc('stop', '--timeout', '60', worker, backend), `stop ${o.version}`)],
      },
      {
        step: 'verify',
        title: '7 verify',
        commands: [
          cmd(
            'docker',
            dc('ps', '--format', 'json', backend, worker),
            'every container running and healthy',
            'compose-health',
            at(o.version),
          ),
          cmd(co[0]!, [...co.slice(1), 'migrate', 'status', '--exit-code'], 'no pending migration, no drift'),
          ...uiCheck(o.appUrl),
          maintenanceOff(co),
        ],
        undo: [],
      },
    ],
  }
}

export interface K8sPlanOptions {
  version: string
  namespace: string
  /** deployment/container pairs (default backend/backend and worker/worker of the guide's manifests) */
  deployment?: string
  container?: string
  workerDeployment?: string
  image: string
  /** apply these manifests instead of `set image` */
  manifests?: string
  rolloutTimeout?: string
  chargeOps?: string[]
  /** the web UI's public URL: verify runs the guide's `curl -f` on it (§12 step 7) */
  appUrl?: string
}

/** `kubectl` plan: maintenance + worker drained, backup, migration pod, set image (or apply), rollout status; rollout undo on failure. */
export function k8sPlan(o: K8sPlanOptions): CommandPlan {
  const ns = ['-n', o.namespace]
  // the Deployments init's manifests write (src/topology)
  const [api, workerWorkload] = upgradableWorkloads(stackTopology())
  const deployment = o.deployment ?? api!.name
  const container = o.container ?? api!.container
  const worker = o.workerDeployment ?? workerWorkload!.name
  const workerContainer = workerWorkload!.container
  const timeout = `--timeout=${o.rolloutTimeout ?? '300s'}`
  const co = o.chargeOps ?? ['charge-ops']
  const image = `${o.image}:${o.version}`
  const job = `charge-ops-migrate-${o.version.replace(/[^a-z0-9-]/gi, '-').toLowerCase()}`
  const roll = o.manifests
    ? [cmd('kubectl', ['apply', '-f', o.manifests, ...ns], `apply the ${o.version} manifests`)]
    : [
        cmd(
          'kubectl',
          ['set', 'image', `deployment/${deployment}`, `${container}=${image}`, ...ns],
          `${deployment} → ${image}`,
        ),
        cmd(
          'kubectl',
          ['set', 'image', `deployment/${worker}`, `${workerContainer}=${image}`, ...ns],
          `${worker} → ${image}`,
        ),
      ]
  return {
    target: 'k8s',
    version: o.version,
    steps: [
      // the same order as compose's: the backup is taken once writes are refused and the worker is
      // drained, so that restoring it on rollback loses nothing (the pods pull the image themselves)
      {step: 'fetch', title: '3 fetch the new version (pulled by the pods)', commands: [], undo: []},
      {
        step: 'stop',
        title: '2 maintenance mode, scale the worker down',
        commands: [
          cmd(
            co[0]!,
            [...co.slice(1), 'service', 'maintenance', 'on', '--reason', `upgrade to ${o.version}`],
            'writes answer 503 (Redis flag)',
          ),
          cmd('kubectl', ['scale', `deployment/${worker}`, '--replicas=0', ...ns], 'drain the worker'),
          cmd('kubectl', ['rollout', 'status', `deployment/${worker}`, ...ns, timeout], 'worker drained'),
        ],
        undo: [
          cmd('kubectl', ['scale', `deployment/${worker}`, '--replicas=1', ...ns], 'worker back'),
          cmd(co[0]!, [...co.slice(1), 'service', 'maintenance', 'off'], 'writes accepted again'),
        ],
      },
      {
        step: 'backup',
        title: '1 verified backup (nothing writes any more)',
        commands: [
          cmd(co[0]!, [...co.slice(1), 'backup', 'all', '--json'], 'database + uploads + Chroma'),
          cmd(co[0]!, [...co.slice(1), 'backup', 'verify', 'latest'], 'checksums of every part'),
        ],
        undo: [],
      },
      {step: 'install', title: '4 install its dependencies', commands: [], undo: []},
      {
        step: 'migrate',
        title: '5 migrate up (one-off pod of the new image)',
        commands: [
          cmd(
            'kubectl',
            [
              'run',
              job,
              `--image=${image}`,
              '--restart=Never',
              '--rm',
              '--attach',
              ...ns,
              '--',
              ...co,
              'migrate',
              'up',
              '--lock-wait',
              '60s',
            ],
            'the new image applies its migrations',
          ),
        ],
        undo: [restoreStep1(co)],
      },
      {
        step: 'start',
        title: '6 roll out the new image',
        commands: [
          ...roll,
          cmd('kubectl', ['rollout', 'status', `deployment/${deployment}`, ...ns, timeout], 'new pods ready'),
          cmd('kubectl', ['rollout', 'status', `deployment/${worker}`, ...ns, timeout], 'worker ready'),
        ],
        undo: [
          cmd('kubectl', ['rollout', 'undo', `deployment/${deployment}`, ...ns], 'previous ReplicaSet'),
          cmd('kubectl', ['rollout', 'undo', `deployment/${worker}`, ...ns], 'previous worker'),
          cmd('kubectl', ['rollout', 'status', `deployment/${deployment}`, ...ns, timeout], 'previous pods ready'),
        ],
      },
      {
        step: 'verify',
        title: '7 verify',
        commands: [
          cmd(co[0]!, [...co.slice(1), 'migrate', 'status', '--exit-code'], 'no pending migration, no drift'),
          cmd(
            'kubectl',
            ['get', `deployment/${deployment}`, ...ns, '-o', 'jsonpath={.status.readyReplicas}/{.status.replicas}'],
            'every replica ready',
          ),
          ...uiCheck(o.appUrl),
          maintenanceOff(co),
        ],
        undo: [],
      },
    ],
  }
}

/** One line per command, numbered in execution order, with the rollback commands under each step. */
export function renderPlan(plan: CommandPlan): string {
  const lines = [`upgrade plan (${plan.target}) to ${plan.version}:`]
  let n = 0
  for (const step of plan.steps) {
    lines.push(`${step.title}`)
    if (step.commands.length === 0) lines.push('    (nothing: part of the image)')
    for (const c of step.commands)
      lines.push(`  ${String(++n).padStart(2)}. ${shellQuote([c.file, ...c.args])}    # ${c.purpose}`)
    for (const c of step.undo)
      lines.push(
        `      on failure${c.when === 'schema-moved' ? ', if the schema head moved' : ''}: ${shellQuote([c.file, ...c.args])}    # ${c.purpose}`,
      )
  }
  return lines.join('\n')
}

export function shellQuote(argv: string[]): string {
  return argv
    .map((a) => (/^[\w@%+=:,./<>-]+$/.test(a) && !/[<>]/.test(a) ? a : `'${a.replace(/'/g, `'\\''`)}'`))
    .join(' ')
}

/** The services `docker compose ps --format json` lists, each running and (when it has a check) healthy. */
export function composeHealth(output: string): {ok: boolean; problems: string[]} {
  const rows = parseComposePs(output)
  if (rows.length === 0) return {ok: false, problems: ['no containers']}
  const problems = rows
    .filter((r) => r.state !== 'running' || (r.health !== '' && r.health !== 'healthy'))
    .map((r) => `${r.service}: ${r.state}${r.health ? ` (${r.health})` : ''}`)
  return {ok: problems.length === 0, problems}
}
