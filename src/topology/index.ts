/**
 * One description of the stack: its services, the image each runs, their commands, ports, volumes,
 * health checks and which of them hold state. `init` renders the compose file and the Kubernetes
 * manifests from it, the upgrade plans name the services it names, `schedule` and `doctor` use it
 * to reach the stack; a name that init writes and a plan uses can therefore no longer differ
 * (test/unit/topology.test.ts holds the generated files against the plans).
 *
 * Pure data and pure functions: no file system, no processes.
 */

/** The images `charge-ops images build` makes (images/<name>/Dockerfile). */
export const IMAGE_NAMES = ['service', 'postgres', 'chroma', 'redis', 'nginx'] as const
export type ImageName = (typeof IMAGE_NAMES)[number]

/** Default repository prefix of the project's images (`charge-ops/service:0.1.0` …). */
export const DEFAULT_IMAGE_PREFIX = 'charge-ops'

export function imageRef(image: ImageName, version: string, prefix = DEFAULT_IMAGE_PREFIX): string {
  return `${prefix.replace(/\/+$/, '')}/${image}:${version}`
}

/**
 * The compose file's image references: the version comes from CHARGE_OPS_VERSION (written into the
 * compose project's .env by init, changed by `upgrade`), so one file serves every version.
 */
export function composeImageRef(image: ImageName, prefix = DEFAULT_IMAGE_PREFIX): string {
  return `${prefix.replace(/\/+$/, '')}/${image}:\${${VERSION_VARIABLE}:?set ${VERSION_VARIABLE} in .env}`
}

/** The variable holding the running images' version (compose .env). */
export const VERSION_VARIABLE = 'CHARGE_OPS_VERSION'

export type ServiceName = 'postgres' | 'redis' | 'chroma' | 'migrate' | 'backend' | 'worker' | 'nginx' | 'ops'

export interface Health {
  /** an HTTP GET that must answer 2xx, from inside the container */
  http?: {port: number; path: string}
  /** a command run inside the container */
  command?: string[]
}

export interface TopologyService {
  name: ServiceName
  image: ImageName
  /** argv run in the container (undefined: the image's CMD) */
  command?: string[]
  /** the port it listens on inside the network */
  port?: number
  /** published on the host's loopback (compose) so that charge-ops on the host reaches it */
  publishOnLoopback?: boolean
  health?: Health
  /** holds data that a backup must cover; never replaced by `upgrade` */
  stateful: boolean
  /** runs the project's service image and is replaced by `upgrade` */
  upgradable: boolean
  /** a one-off job container (compose profile `ops`, k8s CronJob), never started by `up` */
  job?: boolean
  /** named volumes: name → mount path in the container */
  volumes: Array<{volume: VolumeName; mount: string; readOnly?: boolean}>
  /** the Kubernetes workload that runs it (undefined: not in the cluster, e.g. nginx → Ingress) */
  k8s?: {kind: 'Deployment' | 'StatefulSet'; name: string; container: string}
}

export type VolumeName = 'postgres_data' | 'redis_data' | 'chroma_data' | 'uploads_data'

/** Where the service image keeps uploads; the same path in the API, the worker and the ops jobs. */
export const UPLOADS_MOUNT = '/app/uploads'
/** The repository folder inside the containers when the repository is a local directory. */
export const NODE_BIN = 'node'
export const SERVICE_ENTRY = {
  api: '/opt/charge-ops/dist/service/src/server.js',
  worker: '/opt/charge-ops/dist/service/src/worker.js',
} as const

/**
 * The worker has no port: its check is that its process lives and is not a zombie (it exits on a
 * fatal error, and the restart policy brings it back; Redis / PostgreSQL trouble shows in the API's /health).
 */
export const WORKER_PROBE = [
  'node',
  '-e',
  `const fs=require('fs');process.exit(fs.readdirSync('/proc').some((p)=>{try{return /worker\\.js/.test(fs.readFileSync('/proc/'+p+'/cmdline','utf8'))&&!/\\) Z /.test(fs.readFileSync('/proc/'+p+'/stat','utf8'))}catch{return false}})?0:1)`,
]

const nodeHttpCheck = (port: number, path: string) => [
  'node',
  '-e',
  `fetch('http://127.0.0.1:${port}${path}').then((r)=>process.exit(r.ok?0:1),()=>process.exit(1))`,
]

export interface TopologyOptions {
  /** PostgreSQL and Redis are managed services outside the stack */
  managed?: boolean
}

export interface Topology {
  services: TopologyService[]
  volumes: VolumeName[]
}

/** The stack's services in start order. */
export function stackTopology(options: TopologyOptions = {}): Topology {
  const services: TopologyService[] = []
  if (!options.managed) {
    services.push(
      {
        name: 'postgres',
        image: 'postgres',
        command: ['postgres', '-c', 'config_file=/etc/postgresql/postgresql.conf'],
        port: 5432,
        publishOnLoopback: true,
        health: {command: ['pg_isready', '-U', 'postgres', '-h', '127.0.0.1', '-d', 'postgres']},
        stateful: true,
        upgradable: false,
        volumes: [{volume: 'postgres_data', mount: '/var/lib/postgresql/data'}],
        k8s: {kind: 'StatefulSet', name: 'postgres', container: 'postgres'},
      },
      {
        name: 'redis',
        image: 'redis',
        command: ['redis-server', '/usr/local/etc/redis/redis.conf'],
        port: 6379,
        publishOnLoopback: true,
        health: {command: ['sh', '-c', 'redis-cli ping | grep -q PONG']},
        stateful: true,
        upgradable: false,
        volumes: [{volume: 'redis_data', mount: '/data'}],
        k8s: {kind: 'StatefulSet', name: 'redis', container: 'redis'},
      },
    )
  }
  services.push(
    {
      name: 'chroma',
      image: 'chroma',
      port: 8000,
      publishOnLoopback: true,
      health: {http: {port: 8000, path: '/api/v2/heartbeat'}, command: nodeHttpCheck(8000, '/api/v2/heartbeat')},
      stateful: true,
      upgradable: false,
      volumes: [{volume: 'chroma_data', mount: '/data'}],
      k8s: {kind: 'StatefulSet', name: 'chroma', container: 'chroma'},
    },
    {
      name: 'backend',
      image: 'service',
      command: [NODE_BIN, SERVICE_ENTRY.api],
      port: 8000,
      publishOnLoopback: true,
      health: {http: {port: 8000, path: '/health'}, command: nodeHttpCheck(8000, '/health')},
      stateful: false,
      upgradable: true,
      volumes: [{volume: 'uploads_data', mount: UPLOADS_MOUNT}],
      k8s: {kind: 'Deployment', name: 'backend', container: 'backend'},
    },
    {
      name: 'worker',
      image: 'service',
      command: [NODE_BIN, SERVICE_ENTRY.worker],
      health: {command: WORKER_PROBE},
      stateful: false,
      upgradable: true,
      volumes: [{volume: 'uploads_data', mount: UPLOADS_MOUNT}],
      k8s: {kind: 'Deployment', name: 'worker', container: 'worker'},
    },
    {
      name: 'nginx',
      image: 'nginx',
      port: 443,
      health: {command: ['bash', '-c', 'exec 3<>/dev/tcp/127.0.0.1/80']},
      stateful: false,
      upgradable: false,
      volumes: [],
    },
    {
      // one-off: applies the version's migrations before the API starts (and in `upgrade`)
      name: 'migrate',
      image: 'service',
      command: ['charge-ops', 'migrate', 'up', '--lock-wait', '60s'],
      stateful: false,
      upgradable: true,
      job: true,
      volumes: [],
    },
    {
      name: 'ops',
      image: 'service',
      stateful: false,
      upgradable: true,
      job: true,
      volumes: [
        {volume: 'uploads_data', mount: UPLOADS_MOUNT},
        {volume: 'chroma_data', mount: '/chroma', readOnly: true},
      ],
    },
  )
  const volumes = [...new Set(services.flatMap((s) => s.volumes.map((v) => v.volume)))]
  return {services, volumes}
}

export function service(topology: Topology, name: ServiceName): TopologyService {
  const found = topology.services.find((s) => s.name === name)
  if (!found) throw new Error(`topology: no service ${name}`)
  return found
}

/** The long-running services that run the project's service image (what an upgrade replaces). */
export function upgradableServices(topology: Topology): TopologyService[] {
  return topology.services.filter((s) => s.upgradable && !s.job)
}

/** The Kubernetes Deployments an upgrade rolls (name + container), in the topology's order. */
export function upgradableWorkloads(topology: Topology): Array<{name: string; container: string}> {
  return upgradableServices(topology).flatMap((s) =>
    s.k8s?.kind === 'Deployment' ? [{name: s.k8s.name, container: s.k8s.container}] : [],
  )
}
