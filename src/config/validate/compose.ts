import type {Finding} from '../findings.js'
import {lineOf, parseYamlText, type ParsedYaml} from '../yaml-file.js'
import {findingsFor} from './types.js'

export interface ComposeMount {
  type: 'volume' | 'bind' | 'anonymous' | 'tmpfs'
  source?: string
  target: string
  line?: number
}

export interface ComposePort {
  hostIp?: string
  published?: string
  target: string
  line?: number
}

export interface ComposeService {
  name: string
  line?: number
  image?: string
  build?: string
  mounts: ComposeMount[]
  ports: ComposePort[]
  healthcheck: boolean
  /** service → condition (service_started when the short list form is used) */
  dependsOn: Record<string, string>
  dependsOnLine?: number
  /** the entrypoint's program when the service overrides it (an exporter run from the postgres image) */
  entrypoint?: string
}

export interface ComposeModel {
  file: string
  services: ComposeService[]
  declaredVolumes: Set<string>
}

export interface ValidatedCompose {
  model?: ComposeModel
  findings: Finding[]
  unparsable: boolean
}

const POSTGRES_IMAGE = /(^|\/)(postgres|postgis|postgresql|timescaledb)(:|@|$)/i
const DATABASE_IMAGE =
  /(^|\/)(postgres|postgis|postgresql|timescaledb|redis|valkey|keydb|chroma|chromadb|pgbouncer)(:|@|$)/i

// a service that runs the postgres image with another program as its entrypoint (the stack's
// postgres-exporter does) is not a database server: no data volume, no healthcheck rules for it
const runsOtherProgram = (s: ComposeService) =>
  s.entrypoint !== undefined && !/(^|\/)(postgres|docker-entrypoint(\.sh)?)$/.test(s.entrypoint)
export const isPostgres = (s: ComposeService) =>
  !runsOtherProgram(s) &&
  (POSTGRES_IMAGE.test(s.image ?? '') || (!s.image && /^postgres/.test(s.name)) || s.name === 'postgres')
const isDatabase = (s: ComposeService) =>
  DATABASE_IMAGE.test(s.image ?? '') || /^(postgres|redis|chroma|chromadb|pgbouncer)$/.test(s.name)
export const isBackend = (s: ComposeService) => /backend/i.test(s.name) || /backend/i.test(s.build ?? '')

function parseMount(raw: unknown, line: number | undefined): ComposeMount | undefined {
  if (typeof raw === 'string') {
    const parts = raw.split(':')
    if (parts.length === 1) return {type: 'anonymous', target: parts[0], line}
    const source = parts[0]
    const type = /^[./~$]/.test(source) || source.includes('/') ? 'bind' : 'volume'
    return {type, source, target: parts[1], line}
  }
  if (raw && typeof raw === 'object') {
    const r = raw as {type?: string; source?: string; target?: string}
    if (!r.target) return undefined
    const type = r.type === 'bind' ? 'bind' : r.type === 'tmpfs' ? 'tmpfs' : r.source ? 'volume' : 'anonymous'
    return {type, source: r.source, target: r.target, line}
  }
  return undefined
}

function parsePort(raw: unknown, line: number | undefined): ComposePort | undefined {
  if (typeof raw === 'number') return {target: String(raw), line}
  if (typeof raw === 'string') {
    const spec = raw.replace(/\/(tcp|udp)$/, '')
    const ipv6 = /^\[([^\]]+)\]:(.*)$/.exec(spec)
    if (ipv6) {
      const [published, target] = ipv6[2].split(':')
      return {hostIp: ipv6[1], published, target: target ?? published, line}
    }
    const parts = spec.split(':')
    if (parts.length === 1) return {target: parts[0], line}
    if (parts.length === 2) return {published: parts[0], target: parts[1], line}
    return {hostIp: parts.slice(0, -2).join(':'), published: parts.at(-2), target: parts.at(-1)!, line}
  }
  if (raw && typeof raw === 'object') {
    const r = raw as {target?: unknown; published?: unknown; host_ip?: unknown}
    return {
      hostIp: r.host_ip === undefined ? undefined : String(r.host_ip),
      published: r.published === undefined ? undefined : String(r.published),
      target: String(r.target),
      line,
    }
  }
  return undefined
}

function buildModel(parsed: ParsedYaml, data: Record<string, unknown>): ComposeModel {
  const services: ComposeService[] = []
  for (const [name, def] of Object.entries((data.services ?? {}) as Record<string, Record<string, unknown> | null>)) {
    const d = def ?? {}
    const at = (...path: (string | number)[]) => lineOf(parsed, ['services', name, ...path])
    const volumes = Array.isArray(d.volumes) ? d.volumes : []
    const ports = Array.isArray(d.ports) ? d.ports : []
    const dependsOn: Record<string, string> = {}
    if (Array.isArray(d.depends_on)) for (const s of d.depends_on) dependsOn[String(s)] = 'service_started'
    else if (d.depends_on && typeof d.depends_on === 'object') {
      for (const [s, v] of Object.entries(d.depends_on as Record<string, {condition?: string} | null>))
        dependsOn[s] = v?.condition ?? 'service_started'
    }
    const build = typeof d.build === 'string' ? d.build : (d.build as {context?: string} | undefined)?.context
    const healthcheck = Boolean(d.healthcheck) && !(d.healthcheck as {disable?: boolean}).disable
    services.push({
      name,
      line: at(),
      image: typeof d.image === 'string' ? d.image : undefined,
      build,
      mounts: volumes.map((v, i) => parseMount(v, at('volumes', i))).filter((m): m is ComposeMount => m !== undefined),
      ports: ports.map((p, i) => parsePort(p, at('ports', i))).filter((p): p is ComposePort => p !== undefined),
      healthcheck,
      dependsOn,
      dependsOnLine: d.depends_on ? at('depends_on') : undefined,
      entrypoint: Array.isArray(d.entrypoint)
        ? String(d.entrypoint[0] ?? '')
        : typeof d.entrypoint === 'string'
          ? d.entrypoint.trim().split(/\s+/)[0]
          : undefined,
    })
  }
  return {file: parsed.file, services, declaredVolumes: new Set(Object.keys((data.volumes ?? {}) as object))}
}

const BACKEND_VOLUMES: Array<{what: string; pattern: RegExp; example: string}> = [
  {what: 'uploads', pattern: /upload/i, example: 'uploads_data:/app/uploads'},
  {what: 'chromadb', pattern: /chroma/i, example: 'chromadb_data:/app/chromadb_data'},
  {what: 'models', pattern: /model/i, example: 'models_data:/app/models'},
]

type Add = ReturnType<typeof findingsFor>['add']

/** Every service: volumes it uses are declared; a database publishes no port on all interfaces. */
function checkVolumesAndPorts(model: ComposeModel, add: Add): void {
  for (const service of model.services) {
    for (const mount of service.mounts) {
      if (
        mount.type === 'volume' &&
        mount.source &&
        !/^\$/.test(mount.source) &&
        !model.declaredVolumes.has(mount.source)
      ) {
        add(
          'error',
          'compose/undeclared-volume',
          `services.${service.name} uses volume "${mount.source}", which the top-level volumes: does not declare`,
          `Add "${mount.source}:" under the top-level volumes:.`,
          mount.line,
          `services.${service.name}.volumes`,
        )
      }
    }
    if (isDatabase(service)) {
      for (const port of service.ports) {
        const ip = port.hostIp
        if (ip === undefined || ip === '' || ip === '0.0.0.0' || ip === '::' || ip === '[::]') {
          add(
            'error',
            'compose/published-database',
            `services.${service.name} publishes port ${port.target} on all interfaces (0.0.0.0): the database is reachable from the network`,
            `Remove the ports: entry (other services reach it by name), or bind it to loopback: "127.0.0.1:${port.published ?? port.target}:${port.target}".`,
            port.line,
            `services.${service.name}.ports`,
          )
        }
      }
    }
  }
}

/** PostgreSQL services: a healthcheck, and their data in a named volume. */
function checkPostgresServices(postgres: ComposeService[], add: Add): void {
  for (const pg of postgres) {
    if (!pg.healthcheck) {
      add(
        'error',
        'compose/postgres-healthcheck',
        `services.${pg.name} has no healthcheck, so dependants start before PostgreSQL accepts connections`,
        'Add healthcheck: {test: ["CMD-SHELL", "pg_isready -U postgres"], interval: 10s, timeout: 5s, retries: 5}',
        pg.line,
        `services.${pg.name}.healthcheck`,
      )
    }
    const data = pg.mounts.find(
      (m) =>
        m.target.replace(/\/$/, '').startsWith('/var/lib/postgresql/data') ||
        m.target.replace(/\/$/, '') === '/var/lib/postgresql',
    )
    if (!data) {
      add(
        'error',
        'compose/postgres-volume',
        `services.${pg.name} keeps its data inside the container: it is lost when the container is removed`,
        'Mount a named volume: postgres_data:/var/lib/postgresql/data (and declare it under volumes:).',
        pg.line,
        `services.${pg.name}.volumes`,
      )
    } else if (data.type !== 'volume') {
      add(
        'warning',
        'compose/named-volume',
        `services.${pg.name} stores its data in a ${data.type} mount, not a named volume`,
        'Use a named volume: postgres_data:/var/lib/postgresql/data.',
        data.line,
        `services.${pg.name}.volumes`,
      )
    }
  }
}

/** Backend services: wait for PostgreSQL to be healthy; uploads (and, without a Chroma service, chromadb and models) in named volumes. */
function checkBackendServices(model: ComposeModel, postgres: ComposeService[], add: Add): void {
  // Chroma as its own service (charge-ops init's layout): the backend keeps no Chroma folder and no model files.
  const chromaService = model.services.some((s) => /^chroma(db)?$/.test(s.name) || /chroma/i.test(s.image ?? ''))
  const waitsHealthy = (service: ComposeService, pg: ComposeService, depth = 0): boolean => {
    const condition = service.dependsOn[pg.name]
    if (condition === 'service_healthy') return true
    // through a one-off service that itself waits for PostgreSQL (the migrate service): backend → migrate (completed) → postgres (healthy)
    return (
      depth < 3 &&
      Object.entries(service.dependsOn).some(
        ([name, c]) =>
          c === 'service_completed_successfully' &&
          model.services.some((s) => s.name === name && waitsHealthy(s, pg, depth + 1)),
      )
    )
  }
  for (const backend of model.services.filter(isBackend)) {
    for (const pg of postgres) {
      const condition = backend.dependsOn[pg.name]
      if (!waitsHealthy(backend, pg)) {
        add(
          'error',
          'compose/depends-on-healthy',
          `services.${backend.name} ${condition ? `waits only for ${pg.name} to start (${condition})` : `does not depend on ${pg.name}`}, not for it to be healthy`,
          `Under depends_on write ${pg.name}: {condition: service_healthy} (the guide §7.1).`,
          backend.dependsOnLine ?? backend.line,
          `services.${backend.name}.depends_on`,
        )
      }
    }
    for (const want of BACKEND_VOLUMES) {
      if (chromaService && want.what !== 'uploads') continue
      const mount = backend.mounts.find((m) => want.pattern.test(m.target))
      if (!mount) {
        add(
          'error',
          'compose/backend-volume',
          `services.${backend.name} has no volume for ${want.what}: it is lost when the container is recreated`,
          `Add a named volume, e.g. ${want.example}.`,
          backend.line,
          `services.${backend.name}.volumes`,
        )
      } else if (mount.type !== 'volume' && !(mount.type === 'bind' && /^\.\//.test(mount.source ?? ''))) {
        // a bind mount of a folder next to the compose file persists as well (init's layout: the host reaches the files there)
        add(
          'warning',
          'compose/named-volume',
          `services.${backend.name} keeps ${want.what} in a ${mount.type} mount, not a named volume`,
          `Use a named volume, e.g. ${want.example}.`,
          mount.line,
          `services.${backend.name}.volumes`,
        )
      }
    }
  }
}

/**
 * docker-compose.yml: the guide's production rules — postgres healthcheck, backend waiting for
 * `service_healthy`, named volumes for PostgreSQL data, uploads, chromadb and models, and no
 * database port published on every interface.
 */
export function validateCompose(text: string, file: string): ValidatedCompose {
  const parsed = parseYamlText(text, file)
  if (parsed.findings.length > 0) return {findings: parsed.findings, unparsable: true}
  const {findings, add} = findingsFor(file)
  const data = parsed.document.toJS() as Record<string, unknown> | null
  if (!data || typeof data !== 'object' || !data.services || typeof data.services !== 'object') {
    add(
      'error',
      'compose/services',
      'no services: mapping: this is not a compose file',
      'Compose files define their containers under services:.',
      1,
    )
    return {findings, unparsable: false}
  }
  const model = buildModel(parsed, data)
  if (data.version !== undefined)
    add(
      'info',
      'compose/version',
      'the top-level version: key is obsolete and ignored by docker compose v2',
      'Remove the version: line.',
      lineOf(parsed, ['version']),
      'version',
    )
  checkVolumesAndPorts(model, add)
  const postgres = model.services.filter(isPostgres)
  checkPostgresServices(postgres, add)
  checkBackendServices(model, postgres, add)
  return {model, findings, unparsable: false}
}
