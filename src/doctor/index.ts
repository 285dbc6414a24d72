/**
 * `charge-ops doctor`: the guide's troubleshooting table (section 11), automated, plus cross-store
 * integrity. Every finding carries the guide's remedy. Built on the capacity check model, so the
 * same renderers apply.
 */
import {existsSync} from 'node:fs'

import {measure, unknown, yesNo} from '../capacity/check-kit.js'
import {openCheckContext, runChecks} from '../capacity/index.js'
import {diskResult, serverFacts} from '../capacity/pg-checks.js'
import {buildReport, type Report} from '../capacity/render.js'
import {MEMORY_CHECK, getChromaFacts} from '../capacity/store-checks.js'
import {diskUsage} from '../core/fs/system.js'
import type {Check, CheckResult} from '../capacity/types.js'
import type {Settings} from '../config/settings.js'
import type {Logger} from '../output/logger.js'
import {CONTAINERS_CHECK} from '../capacity/containers.js'
import {knowledgeIntegrity, uploadsIntegrity} from './integrity.js'
import {leftoversCheck} from './leftovers.js'

const GUIDE_DB =
  'Guide 11 (database connection fails): check security groups, firewalls, pg_hba.conf, and that DNS points at the right instance.'

const configCheck: Check = {
  id: 'config.validation',
  component: 'config',
  title: 'Configuration validation',
  async run(ctx) {
    try {
      const {validateConfig} = await import('../config/validate/runner.js')
      const files: Record<string, string> = {}
      if (ctx.settings.configPath) files['charge-ops-yaml'] = ctx.settings.configPath
      if (ctx.settings.envFilePath) files['backend-env'] = ctx.settings.envFilePath
      const report = validateConfig({cwd: ctx.settings.baseDir, files})
      const {errors, warnings} = report.summary
      const top = report.findings.filter((f) => f.severity === 'error').slice(0, 3)
      return [
        measure(ctx, {
          id: 'config.validation',
          component: 'config',
          title: 'Configuration validation',
          value: errors,
          unit: 'count',
          status: errors > 0 ? 'critical' : warnings > 0 ? 'warning' : 'ok',
          message: `${report.files.length} files checked: ${errors} errors, ${warnings} warnings${top.length ? ` — ${top.map((f) => `${f.file}${f.line ? `:${f.line}` : ''} ${f.message}`).join('; ')}` : ''}`,
          remedy:
            'Run `charge-ops config validate` for every finding with its fix (guide 11: containers restarting often → check the environment variables).',
        }),
      ]
    } catch (error) {
      return [
        unknown(
          'config',
          'config.validation',
          'Configuration validation',
          `validation did not run: ${(error as Error).message}`,
        ),
      ]
    }
  },
}

const postgresCheck: Check = {
  id: 'postgres.connect',
  component: 'postgresql',
  title: 'Database connectivity',
  async run(ctx) {
    if (!ctx.settings.databaseUrl)
      return [
        measure(ctx, {
          id: 'postgres.connect',
          component: 'postgresql',
          title: 'Database connectivity',
          value: 0,
          unit: 'bool',
          status: 'critical',
          message: 'DATABASE_URL is not set',
          remedy: 'Set DATABASE_URL in the backend .env (postgresql://USER:PASSWORD@HOST:5432/charge_analysis).',
        }),
      ]
    if (!ctx.pg) {
      const e = ctx.memo.get('pg.error')
        ? ((await ctx.memo.get('pg.error')) as {code?: string; message: string; hint?: string})
        : {message: ctx.pgError ?? 'not connected'}
      return [
        measure(ctx, {
          id: 'postgres.connect',
          component: 'postgresql',
          title: 'Database connectivity',
          value: 0,
          unit: 'bool',
          status: 'critical',
          labels: e.code ? {cause: e.code} : undefined,
          message: e.message,
          remedy: `${e.hint ?? ''} ${GUIDE_DB}`.trim(),
        }),
      ]
    }
    const f = await serverFacts(ctx)
    return [
      measure(ctx, {
        id: 'postgres.connect',
        component: 'postgresql',
        title: 'Database connectivity',
        value: 1,
        unit: 'bool',
        status: 'ok',
        message: `connected (PostgreSQL ${Math.floor(f.version_num / 10_000)}, ${f.connections}/${f.max_connections} connections)`,
      }),
    ]
  },
}

const migrationsCheck: Check = {
  id: 'migrations',
  component: 'postgresql',
  title: 'Migrations pending or drifted',
  async run(ctx) {
    if (!ctx.pg || !ctx.settings.databaseUrl)
      return [unknown('postgresql', 'migrations', 'Migrations', 'skipped: PostgreSQL is not reachable')]
    try {
      const {migrationStatus, resolveMigrationsDir} = await import('../migrate/index.js')
      const status = await migrationStatus({
        databaseUrl: ctx.settings.databaseUrl,
        migrationsDir: resolveMigrationsDir(undefined, ctx.settings),
      })
      const problems = status.problems.filter((p) => p.kind !== 'out-of-order')
      return [
        measure(ctx, {
          id: 'migrations',
          component: 'postgresql',
          title: 'Migrations pending or drifted',
          value: status.pending + status.drift,
          unit: 'count',
          status: status.drift > 0 ? 'critical' : status.pending > 0 ? 'warning' : 'ok',
          message:
            status.drift > 0
              ? `schema drift: ${problems
                  .slice(0, 3)
                  .map((p) => `${p.version} ${p.message}`)
                  .join('; ')}`
              : status.pending > 0
                ? `${status.pending} migration(s) pending (current ${status.current ?? 'none'})`
                : `up to date at ${status.current ?? '(no migrations)'}`,
          remedy:
            status.drift > 0
              ? `${problems[0]?.hint ?? 'See `charge-ops migrate status`.'} (guide 11, migration stuck: roll back to the previous version, fix the script, rerun)`
              : 'Run `charge-ops migrate up` (after `charge-ops backup db`).',
        }),
      ]
    } catch (error) {
      return [
        unknown(
          'postgresql',
          'migrations',
          'Migrations',
          `cannot read the migration state: ${(error as Error).message}`,
          'Run `charge-ops migrate status` to see why.',
        ),
      ]
    }
  },
}

const redisCheck: Check = {
  id: 'redis.writable',
  component: 'redis',
  title: 'Redis writable',
  async run(ctx) {
    const url = ctx.settings.redisUrl
    const guide =
      'Guide 11 (Redis cannot write): check disk space and the AOF state (redis-cli info persistence); if needed restart and restore the RDB.'
    if (!url)
      return [
        unknown(
          'redis',
          'redis.writable',
          'Redis writable',
          'REDIS_URL is not set',
          'Set REDIS_URL in the backend .env.',
        ),
      ]
    const {connectRedis, redisInfo} = await import('../redis/client.js')
    let client
    try {
      client = await connectRedis(url, {timeoutMs: 5000})
    } catch (error) {
      const e = error as {code?: string; message: string; hint?: string}
      // Redis answers even PING with MISCONF while writes are denied: that is the diagnosis, not unreachability
      if (/MISCONF/.test(e.message)) {
        return [
          measure(ctx, {
            id: 'redis.writable',
            component: 'redis',
            title: 'Redis reachable and writable',
            value: 0,
            unit: 'bool',
            status: 'critical',
            labels: {cause: 'MISCONF'},
            message: 'MISCONF: Redis refuses writes (and even PING) because it cannot save its RDB snapshot',
            remedy: `${guide} Then run \`redis-cli BGSAVE\`: writes resume after a successful save.`,
          }),
        ]
      }
      return [
        measure(ctx, {
          id: 'redis.writable',
          component: 'redis',
          title: 'Redis reachable and writable',
          value: 0,
          unit: 'bool',
          status: 'critical',
          labels: e.code ? {cause: e.code} : undefined,
          message: e.message,
          remedy: e.hint ?? 'Check REDIS_URL and that Redis is running.',
        }),
      ]
    }
    try {
      const out: CheckResult[] = []
      let writeError: string | undefined
      try {
        await client.set('charge-ops:doctor:probe', String(Date.now()), 'PX', 5000)
      } catch (error) {
        writeError = (error as Error).message
      }
      const info = await redisInfo(client, 'persistence')
      const misconf = writeError !== undefined && /^MISCONF/.test(writeError)
      const oom = writeError !== undefined && /^OOM/.test(writeError)
      const readonly = writeError !== undefined && /^READONLY/.test(writeError)
      out.push(
        yesNo(ctx, {
          id: 'redis.writable',
          component: 'redis',
          title: 'Redis reachable and writable',
          value: !writeError,
          bad: Boolean(writeError),
          labels: misconf ? {cause: 'MISCONF'} : oom ? {cause: 'OOM'} : readonly ? {cause: 'READONLY'} : undefined,
          message: writeError
            ? misconf
              ? `MISCONF: Redis refuses writes because it cannot save its RDB snapshot (rdb_last_bgsave_status ${info.rdb_last_bgsave_status ?? '?'})`
              : oom
                ? 'Redis refuses writes: used_memory is over maxmemory and the policy is noeviction'
                : readonly
                  ? 'Redis is a read-only replica: REDIS_URL points at a replica, not the primary'
                  : `write failed: ${writeError.split('\n')[0]}`
            : 'a probe key was written',
          remedy: misconf
            ? `${guide} Then run \`redis-cli BGSAVE\`: writes resume after a successful save.`
            : oom
              ? 'Raise maxmemory or free memory (sessions need a TTL); see `charge-ops capacity --only redis`.'
              : readonly
                ? 'Point REDIS_URL at the primary.'
                : guide,
        }),
      )
      const aofErr =
        info.aof_enabled === '1' && (info.aof_last_write_status === 'err' || info.aof_last_bgrewrite_status === 'err')
      const rdbErr = info.rdb_last_bgsave_status === 'err'
      if (!misconf && (aofErr || rdbErr)) {
        out.push(
          measure(ctx, {
            id: 'redis.persistence',
            component: 'redis',
            title: 'Redis persistence errors',
            value: 1,
            unit: 'bool',
            status: 'critical',
            message: `persistence is failing: ${[rdbErr ? 'last RDB bgsave err' : '', aofErr ? `AOF write ${info.aof_last_write_status}, rewrite ${info.aof_last_bgrewrite_status}` : ''].filter(Boolean).join(', ')}`,
            remedy: guide,
          }),
        )
      }
      return out
    } finally {
      client.disconnect()
    }
  },
}

const chromaCheck: Check = {
  id: 'chroma.heartbeat',
  component: 'chroma',
  title: 'Chroma heartbeat',
  async run(ctx) {
    if (!ctx.settings.chromaUrl)
      return [
        unknown(
          'chroma',
          'chroma.heartbeat',
          'Chroma heartbeat',
          'CHROMA_URL is not set',
          'Set CHROMA_URL in the backend .env.',
        ),
      ]
    const facts = await getChromaFacts(ctx)
    if ('error' in facts)
      return [
        measure(ctx, {
          id: 'chroma.heartbeat',
          component: 'chroma',
          title: 'Chroma heartbeat',
          value: 0,
          unit: 'bool',
          status: 'critical',
          message: facts.error,
          remedy: `${facts.hint ? `${facts.hint} ` : ''}Start Chroma (docker compose up -d chroma) and check its persist volume; see \`docker compose logs chroma\` (guide 11: containers restarting).`,
        }),
      ]
    return [
      measure(ctx, {
        id: 'chroma.heartbeat',
        component: 'chroma',
        title: 'Chroma heartbeat',
        value: 1,
        unit: 'bool',
        status: 'ok',
        message: `answers; ${facts.collections.map((c) => `${c.name} ${c.count}`).join(', ') || 'no collections'}`,
      }),
    ]
  },
}

const diskCheck: Check = {
  id: 'disk.free_pct',
  component: 'disk',
  title: 'Disk pressure',
  async run(ctx) {
    const paths: [string, string][] = []
    if (ctx.pg && ctx.pgLocal) {
      const f = await serverFacts(ctx).catch(() => undefined)
      if (f?.data_directory && existsSync(f.data_directory)) paths.push(['postgres-data', f.data_directory])
    }
    if (ctx.settings.uploadsDir) paths.push(['uploads', ctx.settings.uploadsDir])
    if (ctx.settings.chromaDir) paths.push(['chroma', ctx.settings.chromaDir])
    if (ctx.settings.repository && !ctx.settings.repository.startsWith('s3://'))
      paths.push(['backup-repository', ctx.settings.repository])
    paths.push(['state', ctx.settings.stateDir])
    const seen = new Set<string>()
    const out: CheckResult[] = []
    for (const [role, p] of paths) {
      const d = await diskUsage(p).catch(() => undefined)
      if (!d || seen.has(`${role}:${d.measuredAt}`)) continue
      seen.add(`${role}:${d.measuredAt}`)
      out.push(diskResult(ctx, d, role))
    }
    return out
  },
}

const serviceCheck: Check = {
  id: 'service',
  component: 'service',
  title: "The service's processes and /health",
  async run(ctx) {
    let status
    try {
      const {serviceStatus} = await import('../service/process.js')
      status = await serviceStatus(ctx.settings)
    } catch (error) {
      return [
        unknown('service', 'service.health', 'Service', `cannot read the service state: ${(error as Error).message}`),
      ]
    }
    if (status.processes.length === 0) {
      // not started by `charge-ops service start` here: ask HOST:PORT/health directly (compose, systemd)
      const {HOST, PORT} = ctx.settings.backendEnv
      const url = `http://${HOST === '0.0.0.0' ? '127.0.0.1' : HOST}:${PORT}/health`
      try {
        const res = await fetch(url, {signal: AbortSignal.timeout(3000)})
        const body = (await res.json().catch(() => ({}))) as {status?: string; checks?: Record<string, unknown>}
        return [
          yesNo(ctx, {
            id: 'service.health',
            component: 'service',
            title: 'Service /health',
            value: res.ok,
            bad: !res.ok,
            message: `${url} answered HTTP ${res.status}${body.status ? ` (${body.status})` : ''}`,
            remedy: 'See which dependency /health reports as failing; `docker compose logs backend` (guide 11).',
          }),
        ]
      } catch {
        return [
          unknown(
            'service',
            'service.health',
            'Service /health',
            `the service is not running here (no pid files in ${status.stateDir}/run, nothing answers ${url})`,
            'Start it: `charge-ops service start` (or docker compose up -d).',
          ),
        ]
      }
    }
    const dead = status.processes.filter((p) => !p.running)
    const out: CheckResult[] = [
      measure(ctx, {
        id: 'service.processes',
        component: 'service',
        title: 'Service processes',
        value: dead.length,
        unit: 'count',
        status: dead.length > 0 ? 'critical' : 'ok',
        message:
          dead.length > 0
            ? `${dead.map((p) => p.name).join(', ')} not running (stale pid file)`
            : `${status.processes.length} processes running (${status.processes.map((p) => p.name).join(', ')})`,
        remedy:
          'Read `charge-ops service logs --error`, then `charge-ops service restart` (guide 11: check environment variables, dependency readiness, volume permissions).',
      }),
    ]
    if (status.health) {
      const h = status.health
      out.push(
        yesNo(ctx, {
          id: 'service.health',
          component: 'service',
          title: 'Service /health',
          value: h.status === 'ok',
          bad: h.status !== 'ok',
          message:
            h.status === 'ok'
              ? `${h.url}: ok${h.version ? ` (version ${h.version})` : ''}`
              : `${h.url}: ${h.status}${h.failing.length ? `, failing: ${h.failing.join(', ')}` : ''}${h.error ? ` (${h.error})` : ''}`,
          remedy: 'Fix the failing dependency named above; `charge-ops service logs --error`.',
        }),
      )
    }
    return out
  },
}

const integrityCheck: Check = {
  id: 'integrity',
  component: 'integrity',
  title: 'Cross-store integrity',
  async run(ctx) {
    return [...(await uploadsIntegrity(ctx)), ...(await knowledgeIntegrity(ctx))]
  },
}

export const DOCTOR_CHECKS: Check[] = [
  configCheck,
  CONTAINERS_CHECK,
  postgresCheck,
  migrationsCheck,
  redisCheck,
  chromaCheck,
  MEMORY_CHECK,
  diskCheck,
  serviceCheck,
  integrityCheck,
  leftoversCheck,
]

export async function runDoctor(options: {
  settings: Settings
  logger: Logger
  now?: Date
  checks?: Check[]
}): Promise<Report> {
  const started = Date.now()
  const now = options.now ?? new Date()
  const {ctx, close} = await openCheckContext({
    settings: options.settings,
    logger: options.logger,
    now,
    connectPg: true,
    applicationName: 'charge-ops doctor',
    statementTimeout: '60s',
  })
  try {
    const results = await runChecks(options.checks ?? DOCTOR_CHECKS, ctx)
    return buildReport(results, now, {queries: ctx.queryCount(), durationMs: Date.now() - started})
  } finally {
    await close()
  }
}

/** Doctor fails (exit 1) on any warning or critical finding; skipped checks (unknown) do not fail it. */
export function doctorFailed(report: Report): boolean {
  return report.summary.critical > 0 || report.summary.warning > 0
}
