import type {ParsedEnvFile} from '../env-file.js'
import type {Finding} from '../findings.js'
import {chargeOpsYamlSchema, type ChargeOpsYaml} from '../schema.js'
import type {ComposeModel} from './compose.js'
import {isBackend} from './compose.js'
import {usableConnections, type ParsedPostgresqlConf} from './postgresql-conf.js'
import {requirePass, type ParsedRedisConf} from './redis-conf.js'
import {isInterpolated} from './secrets.js'
import {findingsFor} from './types.js'
import {isLoopback, tryParseUrl, urlPassword} from './urls.js'

/** Everything the single-file validators parsed, for rules that need two files at once. */
export interface ParsedSet {
  yaml?: {file: string; value?: ChargeOpsYaml; serviceLine?: number}
  backendEnv?: ParsedEnvFile
  compose?: ComposeModel
  postgresql?: ParsedPostgresqlConf
  redis?: ParsedRedisConf
}

/**
 * Rules no single-file validator can make: REDIS_URL's password is redis.conf's requirepass;
 * the application's pools fit max_connections minus the reserved slots; the data directories the
 * backend is told about are the ones compose mounts; the hosts in the URLs are compose services.
 */
export function crossFileFindings(set: ParsedSet): Finding[] {
  return [...redisPassword(set), ...connectionBudget(set), ...mountedPaths(set), ...serviceHosts(set)]
}

function redisPassword(set: ParsedSet): Finding[] {
  if (!set.backendEnv || !set.redis) return []
  const entry = set.backendEnv.entries.get('REDIS_URL')
  if (!entry || entry.value.trim() === '') return []
  const {findings, add} = findingsFor(set.backendEnv.file)
  const url = tryParseUrl(entry.value.trim())
  if (!url) return []
  const urlPass = urlPassword(url)
  const conf = requirePass(set.redis)
  const confAt = conf ? `${set.redis.file}:${conf.line}` : set.redis.file
  if (urlPass !== undefined && isInterpolated(urlPass)) {
    add(
      'info',
      'cross/redis-password',
      'REDIS_URL takes its password from a ${…} reference; it is not compared with requirepass',
      undefined,
      entry.line,
      'REDIS_URL',
    )
  } else if (conf && urlPass === undefined) {
    add(
      'error',
      'cross/redis-password',
      `REDIS_URL has no password but ${confAt} sets requirepass: every command will fail with NOAUTH`,
      'Put the password in the URL: redis://:PASSWORD@host:6379/0',
      entry.line,
      'REDIS_URL',
    )
  } else if (conf && urlPass !== conf.password) {
    add(
      'error',
      'cross/redis-password',
      `the password in REDIS_URL differs from requirepass in ${confAt}: the service will fail with WRONGPASS`,
      'Copy the requirepass value into REDIS_URL (percent-encode special characters).',
      entry.line,
      'REDIS_URL',
    )
  } else if (!conf && urlPass !== undefined) {
    add(
      'warning',
      'cross/redis-password',
      `REDIS_URL carries a password but ${set.redis.file} sets no requirepass`,
      'Set the same value as requirepass in redis.conf.',
      entry.line,
      'REDIS_URL',
    )
  }
  return findings
}

function connectionBudget(set: ParsedSet): Finding[] {
  if (!set.postgresql) return []
  const budget = usableConnections(set.postgresql)
  if (!budget) return []
  const yaml = set.yaml?.value ?? chargeOpsYamlSchema.parse({})
  const {workers, poolSize, pgbouncer} = yaml.service
  const demand = pgbouncer ? pgbouncer.defaultPoolSize : workers * poolSize
  const how = pgbouncer
    ? `PgBouncer's default_pool_size ${pgbouncer.defaultPoolSize}`
    : `${workers} workers × pool size ${poolSize} = ${demand} connections`
  const file = set.yaml?.file ?? set.postgresql.file
  const line = set.yaml ? set.yaml.serviceLine : budget.line
  const {findings, add} = findingsFor(file)
  const limit = `max_connections ${budget.maxConnections} − ${budget.reserved} reserved = ${budget.usable} (${set.postgresql.file}${budget.line ? `:${budget.line}` : ''})`
  if (demand > budget.usable) {
    add(
      'error',
      'cross/connection-budget',
      `${how} exceed ${limit}: under load the service gets "too many clients"`,
      pgbouncer
        ? 'Lower service.pgbouncer.defaultPoolSize or raise max_connections.'
        : 'Lower service.poolSize / service.workers, put PgBouncer in front (service.pgbouncer), or raise max_connections.',
      line,
      'service',
    )
  } else if (budget.usable - demand < 3) {
    add(
      'warning',
      'cross/connection-budget',
      `${how} leave ${budget.usable - demand} of ${limit} free: backups, migrations and psql sessions have no room`,
      'Keep at least 3 connections free for charge-ops and administrators.',
      line,
      'service',
    )
  }
  return findings
}

const norm = (p: string) => p.replace(/\/+$/, '') || '/'

function mountedPaths(set: ParsedSet): Finding[] {
  if (!set.backendEnv || !set.compose) return []
  const backends = set.compose.services.filter(isBackend)
  if (backends.length === 0) return []
  const {findings, add} = findingsFor(set.backendEnv.file)
  const targets = backends.flatMap((b) =>
    b.mounts.filter((m) => m.type !== 'tmpfs').map((m) => ({service: b.name, target: norm(m.target)})),
  )
  for (const key of ['CHROMA_PERSIST_DIRECTORY', 'UPLOADS_DIR']) {
    const entry = set.backendEnv.entries.get(key)
    if (!entry || entry.value.trim() === '' || isInterpolated(entry.value)) continue
    const path = norm(entry.value.trim())
    const covered = targets.some((t) => path === t.target || path.startsWith(`${t.target}/`))
    if (!covered) {
      const candidates = targets
        .filter((t) => (key === 'UPLOADS_DIR' ? /upload/i : /chroma/i).test(t.target))
        .map((t) => t.target)
      add(
        'error',
        'cross/mounted-path',
        `${key} is ${path} but no volume of ${backends.map((b) => `services.${b.name}`).join(', ')} in ${set.compose.file} is mounted there: the data is written inside the container and lost on recreate`,
        candidates.length > 0
          ? `Set ${key}=${candidates[0]} (the mounted path), or mount the volume at ${path}.`
          : `Mount a named volume at ${path} in the compose file.`,
        entry.line,
        key,
      )
    }
  }
  return findings
}

function serviceHosts(set: ParsedSet): Finding[] {
  if (!set.backendEnv || !set.compose) return []
  const names = new Set(set.compose.services.map((s) => s.name))
  const {findings, add} = findingsFor(set.backendEnv.file)
  for (const key of ['DATABASE_URL', 'REDIS_URL']) {
    const entry = set.backendEnv.entries.get(key)
    const url = entry ? tryParseUrl(entry.value.trim()) : undefined
    if (!entry || !url) continue
    const host = url.hostname
    // a single-label host inside compose can only be a service name
    if (host && !host.includes('.') && !host.includes(':') && !isLoopback(host) && !names.has(host)) {
      add(
        'error',
        'cross/service-host',
        `${key} points at host "${host}", which is not a service in ${set.compose.file}`,
        `Use one of the service names: ${[...names].join(', ')}.`,
        entry.line,
        key,
      )
    }
  }
  return findings
}
