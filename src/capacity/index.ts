/**
 * `charge-ops capacity`: runs every check definition and returns one report that the renderers
 * turn into a table, JSON, Prometheus text or Nagios output.
 */
import type {Settings} from '../config/settings.js'
import type {Logger} from '../output/logger.js'
import {BACKUP_CHECK} from './backup-checks.js'
import {countingClient, unknown} from './check-kit.js'
import {appendSample} from './history.js'
import {POSTGRES_CHECKS} from './pg-checks.js'
import {REDIS_CHECK} from './redis-checks.js'
import {buildReport, type Report} from './render.js'
import {CHROMA_CHECK, MEMORY_CHECK, UPLOADS_CHECK} from './store-checks.js'
import {thresholdsFor} from './thresholds.js'
import type {Check, CheckContext, CheckResult} from './types.js'
import {CONTAINERS_CHECK} from './containers.js'

export const CAPACITY_CHECKS: Check[] = [
  CONTAINERS_CHECK,
  ...POSTGRES_CHECKS,
  REDIS_CHECK,
  CHROMA_CHECK,
  UPLOADS_CHECK,
  BACKUP_CHECK,
  MEMORY_CHECK,
]

export const COMPONENTS = ['postgresql', 'sizing', 'redis', 'chroma', 'uploads', 'backup', 'host'] as const

export interface CapacityOptions {
  settings: Settings
  logger: Logger
  now?: Date
  /** only run checks of these components */
  components?: string[]
  /** keep a sample in <stateDir>/capacity-history.json (default true) */
  recordHistory?: boolean
  checks?: Check[]
}

export function isLocalHost(host: string): boolean {
  return host === 'localhost' || host === '127.0.0.1' || host === '::1' || host === '[::1]' || host.startsWith('/')
}

export interface OpenedContext {
  ctx: CheckContext
  /** closes the PostgreSQL connection, if one was opened */
  close: () => Promise<void>
}

/**
 * The context both `capacity` and `doctor` run their checks in: thresholds from charge-ops.yaml, a
 * per-run memo, and one counted PostgreSQL connection with a statement timeout (a stuck catalog
 * query must not hang cron). When the connection fails, `pgError` holds the diagnosed message and
 * the memo key `pg.error` its {code, message, hint} (doctor names the cause from it).
 */
export async function openCheckContext(options: {
  settings: Settings
  logger: Logger
  now: Date
  connectPg: boolean
  applicationName: string
  statementTimeout: string
}): Promise<OpenedContext> {
  const {settings} = options
  const ctx: CheckContext = {
    settings,
    logger: options.logger,
    now: options.now,
    thresholds: (id) => thresholdsFor(id, settings.yaml.thresholds),
    queryCount: () => 0,
    memo: new Map(),
  }
  if (!options.connectPg || !settings.databaseUrl) return {ctx, close: async () => {}}
  const {connect, parseDatabaseUrl} = await import('../postgres/connection.js')
  try {
    const target = parseDatabaseUrl(settings.databaseUrl)
    const client = await connect(target, {connectTimeoutMs: 10_000, applicationName: options.applicationName})
    try {
      await client.query(
        `SET statement_timeout = '${options.statementTimeout.replace(/[^0-9a-z]/gi, '')}'; SET lock_timeout = '5s'`,
      )
    } catch (error) {
      await client.end().catch(() => {})
      throw error
    }
    const counted = countingClient(client)
    ctx.pg = counted
    ctx.queryCount = counted.count
    ctx.pgLocal = isLocalHost(target.host)
    return {ctx, close: () => client.end().catch(() => {})}
  } catch (error) {
    const e = error as {code?: string; message: string; hint?: string}
    ctx.pgError = `${e.message}${e.hint ? ` (${e.hint})` : ''}`
    ctx.memo.set('pg.error', Promise.resolve({code: e.code, message: e.message, hint: e.hint}))
    return {ctx, close: async () => {}}
  }
}

export async function runChecks(checks: Check[], ctx: CheckContext): Promise<CheckResult[]> {
  const settled = await Promise.all(
    checks.map(async (check) => {
      try {
        return await check.run(ctx)
      } catch (error) {
        return [unknown(check.component, check.id, check.title, `check failed: ${(error as Error).message}`)]
      }
    }),
  )
  return settled.flat()
}

export async function runCapacity(options: CapacityOptions): Promise<Report> {
  const started = Date.now()
  const now = options.now ?? new Date()
  const {settings, logger} = options
  let checks = options.checks ?? CAPACITY_CHECKS
  if (options.components?.length)
    checks = checks.filter(
      (c) =>
        options.components!.includes(c.component) ||
        (c.id === 'sizing.connections_pct' && options.components!.includes('postgresql')),
    )

  const needsPg = checks.some((c) => c.component === 'postgresql' || c.component === 'sizing')
  const {ctx, close} = await openCheckContext({
    settings,
    logger,
    now,
    connectPg: needsPg,
    applicationName: 'charge-ops capacity',
    statementTimeout: '30s',
  })
  let results: CheckResult[]
  try {
    results = await runChecks(checks, ctx)
  } finally {
    await close()
  }
  if (options.recordHistory !== false && ctx.memo.has('pg.databaseBytes')) {
    try {
      await appendSample(settings.stateDir, {
        at: now.toISOString(),
        databaseBytes: (await ctx.memo.get('pg.databaseBytes')) as number,
        uploadsBytes: ctx.memo.has('uploads.bytes') ? ((await ctx.memo.get('uploads.bytes')) as number) : undefined,
      })
    } catch (error) {
      logger.warn(`capacity history not saved in ${settings.stateDir}: ${(error as Error).message}`)
    }
  }
  return buildReport(results, now, {queries: ctx.queryCount(), durationMs: Date.now() - started})
}
