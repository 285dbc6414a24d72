import type {UnreachableError} from '../../errors.js'
import type {Finding} from '../findings.js'
import type {ChargeOpsYaml} from '../schema.js'
import type {ParsedSet} from './cross.js'

export type ServiceName = 'postgresql' | 'redis' | 'chroma' | 's3'

export interface ConnectCheck {
  service: ServiceName
  status: 'ok' | 'failed' | 'skipped'
  /** what was checked or why it was skipped; never contains a password */
  detail: string
  /** stable cause code when failed (PG_REFUSED, REDIS_AUTH, CHROMA_DNS, S3_NO_BUCKET …) */
  code?: string
  durationMs?: number
}

export interface ConnectResult {
  checks: ConnectCheck[]
  findings: Finding[]
}

export interface ConnectOptions {
  timeoutMs?: number
  env?: NodeJS.ProcessEnv
}

/** ${VAR} / ${VAR:-default} expansion from the environment; undefined if a variable is unset. */
function expand(value: string, env: NodeJS.ProcessEnv): string | undefined {
  let missing = false
  const out = value.replace(
    /\$\{([A-Za-z_][A-Za-z0-9_]*)(?::?-([^}]*))?\}/g,
    (_m, name: string, fallback: string | undefined) => {
      const v = env[name]
      if (v !== undefined && v !== '') return v
      if (fallback !== undefined) return fallback
      missing = true
      return ''
    },
  )
  return missing ? undefined : out
}

/** What every check needs: where a setting comes from, the timeout, the findings to add to. */
interface CheckContext {
  env: NodeJS.ProcessEnv
  timeoutMs: number
  findings: Finding[]
  source(key: string): {value?: string; file: string; line?: number; skipped?: string}
  fail(
    service: ServiceName,
    where: {file: string; line?: number},
    key: string,
    error: unknown,
    started: number,
  ): ConnectCheck
}

function checkContext(parsed: ParsedSet, options: ConnectOptions): CheckContext {
  const env = options.env ?? process.env
  const envFile = parsed.backendEnv
  const findings: Finding[] = []
  return {
    env,
    timeoutMs: options.timeoutMs ?? 5000,
    findings,
    source(key) {
      const fromEnv = env[key]
      const entry = envFile?.entries.get(key)
      const file = fromEnv ? `environment ${key}` : (envFile?.file ?? `environment ${key}`)
      const raw = fromEnv || entry?.value
      if (!raw) return {file, skipped: `${key} is not set`}
      const value = expand(raw.trim(), env)
      if (value === undefined)
        return {file, line: entry?.line, skipped: `${key} refers to a \${…} variable that is not set here`}
      return {value, file, line: fromEnv ? undefined : entry?.line}
    },
    fail(service, where, key, error, started) {
      const e = error as UnreachableError & {hint?: string; code?: string}
      findings.push({
        file: where.file,
        line: where.line,
        key,
        severity: 'error',
        rule: `connect/${service}`,
        message: e.message ?? String(error),
        fix: e.hint,
      })
      return {
        service,
        status: 'failed',
        detail: e.message ?? String(error),
        code: e.code,
        durationMs: Date.now() - started,
      }
    },
  }
}

/** PostgreSQL: SELECT 1 and version ≥ 15. */
async function checkPostgres({source, timeoutMs, findings, fail}: CheckContext): Promise<ConnectCheck> {
  const src = source('DATABASE_URL')
  if (!src.value) return {service: 'postgresql', status: 'skipped', detail: src.skipped!}
  const started = Date.now()
  try {
    const {withClient} = await import('../../postgres/connection.js')
    const version = await withClient(
      src.value,
      async (client) => {
        const {rows} = await client.query<{one: number; version: string}>(
          "SELECT 1 AS one, current_setting('server_version_num') AS version",
        )
        if (rows[0]?.one !== 1) throw new Error('SELECT 1 did not return 1')
        return Math.floor(Number(rows[0].version) / 10_000)
      },
      {connectTimeoutMs: timeoutMs, applicationName: 'charge-ops config validate'},
    )
    if (version < 15) {
      findings.push({
        file: src.file,
        line: src.line,
        key: 'DATABASE_URL',
        severity: 'error',
        rule: 'connect/postgresql-version',
        message: `PostgreSQL ${version} is older than the supported 15`,
        fix: 'Upgrade the server to PostgreSQL 15 or later (pg_upgrade, or dump and restore).',
      })
      return {
        service: 'postgresql',
        status: 'failed',
        detail: `PostgreSQL ${version} < 15`,
        code: 'PG_VERSION',
        durationMs: Date.now() - started,
      }
    }
    return {
      service: 'postgresql',
      status: 'ok',
      detail: `SELECT 1 ok, PostgreSQL ${version}`,
      durationMs: Date.now() - started,
    }
  } catch (error) {
    return fail('postgresql', src, 'DATABASE_URL', error, started)
  }
}

/** Redis: PING and persistence. */
async function checkRedis({source, timeoutMs, findings, fail}: CheckContext): Promise<ConnectCheck> {
  const src = source('REDIS_URL')
  if (!src.value) return {service: 'redis', status: 'skipped', detail: src.skipped!}
  const started = Date.now()
  try {
    const {withRedis, redisInfo, redisPersistence} = await import('../../redis/client.js')
    const {version, persistence} = await withRedis(
      src.value,
      async (client) => ({
        version: (await redisInfo(client, 'server')).redis_version,
        persistence: await redisPersistence(client),
      }),
      {timeoutMs},
    )
    const persists = persistence.aof || persistence.rdb !== false
    if (!persists) {
      findings.push({
        file: src.file,
        line: src.line,
        key: 'REDIS_URL',
        severity: 'warning',
        rule: 'connect/redis-persistence',
        message: 'the Redis server persists nothing (no AOF, no save rules): queued jobs are lost on restart',
        fix: 'CONFIG SET appendonly yes, and set appendonly yes in redis.conf.',
      })
    }
    const how = persistence.aof
      ? 'AOF on'
      : persistence.rdb
        ? 'RDB snapshots'
        : persistence.rdb === undefined
          ? 'persistence unknown (CONFIG disabled)'
          : 'no persistence'
    return {
      service: 'redis',
      status: 'ok',
      detail: `PING ok, Redis ${version ?? '?'}, ${how}`,
      durationMs: Date.now() - started,
    }
  } catch (error) {
    return fail('redis', src, 'REDIS_URL', error, started)
  }
}

/** Chroma: heartbeat (skipped for an embedded Chroma). */
async function checkChroma({source, timeoutMs, fail}: CheckContext): Promise<ConnectCheck> {
  const src = source('CHROMA_URL')
  if (!src.value)
    return {
      service: 'chroma',
      status: 'skipped',
      detail: `${src.skipped} (embedded Chroma: CHROMA_PERSIST_DIRECTORY only)`,
    }
  const started = Date.now()
  try {
    const {chromaHeartbeat} = await import('../../chroma/client.js')
    await chromaHeartbeat(src.value, {timeoutMs})
    return {service: 'chroma', status: 'ok', detail: 'heartbeat ok', durationMs: Date.now() - started}
  } catch (error) {
    return fail('chroma', src, 'CHROMA_URL', error, started)
  }
}

/** S3: the backup bucket (skipped for a local repository). */
async function checkS3(
  {env, timeoutMs, fail}: CheckContext,
  parsed: ParsedSet & {yamlValue?: ChargeOpsYaml},
): Promise<ConnectCheck> {
  const repo = env.CHARGE_OPS_REPO || parsed.yamlValue?.backup.repository
  const where = {file: env.CHARGE_OPS_REPO ? 'environment CHARGE_OPS_REPO' : (parsed.yaml?.file ?? 'charge-ops.yaml')}
  if (!repo || !repo.startsWith('s3://'))
    return {
      service: 's3',
      status: 'skipped',
      detail: repo ? 'the backup repository is a local directory' : 'no backup repository configured',
    }
  const started = Date.now()
  try {
    const {createS3Client, parseS3Url, checkBucket} = await import('../../s3/client.js')
    const {bucket} = parseS3Url(repo)
    const s3Options = parsed.yamlValue?.backup.s3
    const client = await createS3Client({
      endpoint: s3Options?.endpoint,
      region: s3Options?.region,
      forcePathStyle: s3Options?.forcePathStyle,
      timeoutMs,
      maxAttempts: 1,
    })
    try {
      await checkBucket(client, bucket)
    } finally {
      client.destroy()
    }
    return {service: 's3', status: 'ok', detail: `bucket ${bucket} reachable`, durationMs: Date.now() - started}
  } catch (error) {
    return fail('s3', where, 'backup.repository', error, started)
  }
}

/**
 * `config validate --connect`: reaches each configured dependency with a timeout and reports
 * failures as findings carrying the likely cause. PostgreSQL: SELECT 1 and version ≥ 15; Redis:
 * PING and persistence; Chroma: heartbeat; S3: the backup bucket. Runs the checks in parallel.
 */
export async function checkConnectivity(
  parsed: ParsedSet & {yamlValue?: ChargeOpsYaml},
  options: ConnectOptions = {},
): Promise<ConnectResult> {
  const context = checkContext(parsed, options)
  const checks = await Promise.all([
    checkPostgres(context),
    checkRedis(context),
    checkChroma(context),
    checkS3(context, parsed),
  ])
  return {checks, findings: context.findings}
}
