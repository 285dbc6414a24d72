/**
 * `db slow-queries`: the guide's daily review from pg_stat_statements, with PostgreSQL 13+ column
 * names (mean_exec_time; the guide's mean_time is gone since 13). When the extension is missing,
 * the error says exactly how to enable it.
 */
import type {Client} from 'pg'

import {ConfigError} from '../errors.js'
import {connect, serverMajorVersion} from '../postgres/connection.js'

export type SlowQueryOrder = 'mean' | 'total' | 'calls'

export interface SlowQueriesOptions {
  databaseUrl: string
  limit?: number
  order?: SlowQueryOrder
  reset?: boolean
  /** include every database's statements (default: only the service database) */
  allDatabases?: boolean
}

export interface SlowQuery {
  queryid: string
  database: string
  user: string
  query: string
  calls: number
  totalMs: number
  meanMs: number
  stddevMs: number
  rows: number
  cacheHitPct: number | null
}

export interface SlowQueriesResult {
  order: SlowQueryOrder
  database: string
  statsSince: string | null
  queries: SlowQuery[]
  reset: boolean
}

export const ENABLE_PG_STAT_STATEMENTS = [
  "1. in postgresql.conf: shared_preload_libraries = 'pg_stat_statements' (keep any libraries already listed, comma-separated)",
  '2. restart PostgreSQL (a reload is not enough for shared_preload_libraries)',
  '3. in the service database, as a superuser: CREATE EXTENSION IF NOT EXISTS pg_stat_statements;',
].join('\n')

/** Masks literals that are secrets even after pg_stat_statements' normalisation (utility statements keep them). */
export function maskQueryText(query: string): string {
  return query
    .replace(/(\bPASSWORD\s+)('(?:[^']|'')*'|\$\d+)/gi, (_m, k: string, v: string) =>
      v.startsWith('$') ? `${k}${v}` : `${k}'******'`,
    )
    .replace(/(\b(?:ENCRYPTED\s+)?PASSWORD\s*=\s*)('(?:[^']|'')*')/gi, "$1'******'")
}

/**
 * Whether pg_stat_statements is created here and loaded. Works for an unprivileged role (the
 * service's own): shared_preload_libraries is hidden from it (pg_settings shows no row without
 * pg_read_all_settings), so "loaded" is told by reading the view, which fails with 55000 when the
 * library is not preloaded.
 */
async function ensureExtension(client: Client): Promise<void> {
  const {rows} = await client.query<{installed: boolean; preload: string | null}>(
    `SELECT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'pg_stat_statements') AS installed,
            (SELECT setting FROM pg_settings WHERE name = 'shared_preload_libraries') AS preload`,
  )
  const {installed, preload} = rows[0]
  const missing = (what: string, steps: string) =>
    new ConfigError(`pg_stat_statements ${what}: slow queries cannot be read`, {
      code: 'PG_STAT_STATEMENTS_MISSING',
      hint: `Enable it:\n${steps}`,
    })
  if (installed) {
    const loaded = await client.query('SELECT 1 FROM pg_stat_statements LIMIT 1').then(
      () => true,
      (error: {code?: string}) => {
        if (error?.code === '55000') return false
        throw error
      },
    )
    if (loaded) return
    throw missing('is created but not loaded (shared_preload_libraries)', ENABLE_PG_STAT_STATEMENTS)
  }
  if (preload === null)
    throw missing(
      'is not created in this database (whether it is loaded cannot be read by this role)',
      ENABLE_PG_STAT_STATEMENTS,
    )
  if (
    !preload
      .split(',')
      .map((s) => s.trim().replace(/^"|"$/g, ''))
      .includes('pg_stat_statements')
  )
    throw missing('is not loaded and not created', ENABLE_PG_STAT_STATEMENTS)
  throw missing(
    'is loaded but CREATE EXTENSION was not run in this database',
    '   CREATE EXTENSION IF NOT EXISTS pg_stat_statements;   (in the service database, as a superuser)',
  )
}

export async function slowQueries(options: SlowQueriesOptions): Promise<SlowQueriesResult> {
  const order = options.order ?? 'mean'
  const limit = Math.max(1, Math.min(options.limit ?? 10, 1000))
  const client = await connect(options.databaseUrl, {applicationName: 'charge-ops db slow-queries'})
  try {
    await ensureExtension(client)
    const major = await serverMajorVersion(client)
    // PostgreSQL 13 renamed total_time / mean_time to *_exec_time
    const total = major >= 13 ? 'total_exec_time' : 'total_time'
    const mean = major >= 13 ? 'mean_exec_time' : 'mean_time'
    const stddev = major >= 13 ? 'stddev_exec_time' : 'stddev_time'
    const orderBy = order === 'total' ? total : order === 'calls' ? 'calls' : mean
    const {rows} = await client.query<{
      queryid: string
      database: string
      user: string
      query: string
      calls: string
      total: number
      mean: number
      stddev: number
      rows: string
      hit: number | null
    }>(
      `SELECT s.queryid::text AS queryid, d.datname AS database, r.rolname AS user, s.query, s.calls::bigint AS calls,
              s.${total}::float8 AS total, s.${mean}::float8 AS mean, s.${stddev}::float8 AS stddev, s.rows::bigint AS rows,
              CASE WHEN s.shared_blks_hit + s.shared_blks_read > 0 THEN 100.0 * s.shared_blks_hit / (s.shared_blks_hit + s.shared_blks_read) END::float8 AS hit
       FROM pg_stat_statements s
       LEFT JOIN pg_database d ON d.oid = s.dbid
       LEFT JOIN pg_roles r ON r.oid = s.userid
       WHERE ($2 OR s.dbid = (SELECT oid FROM pg_database WHERE datname = current_database()))
         AND s.query NOT ILIKE '%pg_stat_statements%'
       ORDER BY s.${orderBy} DESC NULLS LAST
       LIMIT $1`,
      [limit, Boolean(options.allDatabases)],
    )
    let statsSince: string | null = null
    if (major >= 14) {
      const info = await client
        .query<{since: Date | null}>('SELECT stats_reset AS since FROM pg_stat_statements_info')
        .catch(() => ({rows: [] as {since: Date | null}[]}))
      statsSince = info.rows[0]?.since ? new Date(info.rows[0].since).toISOString() : null
    }
    const database = (await client.query<{db: string}>('SELECT current_database() AS db')).rows[0].db
    if (options.reset) await client.query('SELECT pg_stat_statements_reset()')
    return {
      order,
      database,
      statsSince,
      reset: Boolean(options.reset),
      queries: rows.map((r) => ({
        queryid: r.queryid,
        database: r.database,
        user: r.user,
        query: maskQueryText(r.query),
        calls: Number(r.calls),
        totalMs: Math.round(r.total * 1000) / 1000,
        meanMs: Math.round(r.mean * 1000) / 1000,
        stddevMs: Math.round(r.stddev * 1000) / 1000,
        rows: Number(r.rows),
        cacheHitPct: r.hit === null ? null : Math.round(r.hit * 10) / 10,
      })),
    }
  } finally {
    await client.end().catch(() => {})
  }
}
