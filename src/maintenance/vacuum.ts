/**
 * `db vacuum`: VACUUM (ANALYZE) on tables whose dead-tuple ratio or estimated bloat passes a
 * threshold (one set-based query picks them), or VACUUM (FULL, ANALYZE) with lock_timeout set.
 * Progress comes from pg_stat_progress_vacuum / pg_stat_progress_cluster on a second connection.
 */
import type {Client} from 'pg'

import {TABLE_BLOAT_SQL} from '../postgres/catalog-sql.js'
import {connect} from '../postgres/connection.js'
import {pgDuration, qualified, resolveRelation} from './common.js'

export interface VacuumOptions {
  databaseUrl: string
  table?: string
  full?: boolean
  dryRun?: boolean
  /** dead / (live + dead) at or above which a table is vacuumed (default 0.2) */
  deadRatio?: number
  /** ignore tables with fewer dead tuples (default 1000) */
  minDeadTuples?: number
  /** estimated bloat % at or above which a table is vacuumed (default 40) */
  bloatPct?: number
  /** lock_timeout for VACUUM (default 5s) */
  lockTimeout?: string
  onProgress?: (table: string, text: string) => void
}

export interface VacuumCandidate {
  table: string
  schema: string
  name: string
  liveTuples: number
  deadTuples: number
  deadRatio: number
  bloatPct: number | null
  bytes: number
  reason: string
}

export interface VacuumTableResult extends VacuumCandidate {
  ok: boolean
  error?: string
  bytesAfter?: number
  reclaimedBytes?: number
  deadTuplesAfter?: number
  durationMs?: number
}

export interface VacuumResult {
  mode: 'analyze' | 'full'
  dryRun: boolean
  tables: VacuumTableResult[]
  reclaimedBytes: number
  deadTuplesRemoved: number
}

const CANDIDATES_SQL = `
SELECT s.schemaname AS schema, s.relname AS name, s.relid::bigint AS oid, s.n_live_tup::bigint AS live, s.n_dead_tup::bigint AS dead,
       pg_total_relation_size(s.relid)::bigint AS bytes
FROM pg_stat_user_tables s`

export async function findVacuumCandidates(
  client: Client,
  options: Omit<VacuumOptions, 'databaseUrl'>,
): Promise<VacuumCandidate[]> {
  const deadRatio = options.deadRatio ?? 0.2
  const minDead = options.minDeadTuples ?? 1000
  const bloatLimit = options.bloatPct ?? 40
  const only = options.table ? await resolveRelation(client, options.table, ['r', 'm', 'p'], 'table') : undefined
  const stats = (
    await client.query<{schema: string; name: string; oid: string; live: string; dead: string; bytes: string}>(
      CANDIDATES_SQL,
    )
  ).rows
  const bloat = new Map(
    (await client.query<{oid: string; bloat_pct: number; is_na: boolean}>(TABLE_BLOAT_SQL, [1024 * 1024])).rows
      .filter((r) => !r.is_na)
      .map((r) => [r.oid, r.bloat_pct]),
  )
  const out: VacuumCandidate[] = []
  for (const s of stats) {
    if (only && !(s.schema === only.schema && s.name === only.name)) continue
    const live = Number(s.live)
    const dead = Number(s.dead)
    const ratio = live + dead > 0 ? dead / (live + dead) : 0
    const b = bloat.get(s.oid) ?? null
    const reasons: string[] = []
    if (dead >= minDead && ratio >= deadRatio) reasons.push(`${Math.round(ratio * 100)}% dead tuples (${dead})`)
    if (b !== null && b >= bloatLimit) reasons.push(`~${Math.round(b)}% estimated bloat`)
    if (only && reasons.length === 0) reasons.push('requested with --table')
    if (reasons.length === 0) continue
    out.push({
      table: `${s.schema}.${s.name}`,
      schema: s.schema,
      name: s.name,
      liveTuples: live,
      deadTuples: dead,
      deadRatio: Math.round(ratio * 1000) / 1000,
      bloatPct: b === null ? null : Math.round(b * 10) / 10,
      bytes: Number(s.bytes),
      reason: reasons.join(', '),
    })
  }
  if (only && out.length === 0) {
    // a table without statistics yet (never analysed) is still vacuumed when asked for by name
    out.push({
      table: `${only.schema}.${only.name}`,
      schema: only.schema,
      name: only.name,
      liveTuples: 0,
      deadTuples: 0,
      deadRatio: 0,
      bloatPct: null,
      bytes: 0,
      reason: 'requested with --table',
    })
  }
  return out.sort((a, b) => b.deadTuples - a.deadTuples)
}

async function pollProgress(
  monitor: Client,
  pid: number,
  full: boolean,
  report: (text: string) => void,
): Promise<void> {
  const sql = full
    ? `SELECT phase, heap_blks_total::bigint AS total, heap_blks_scanned::bigint AS done FROM pg_stat_progress_cluster WHERE pid = $1`
    : `SELECT phase, heap_blks_total::bigint AS total, heap_blks_scanned::bigint AS done FROM pg_stat_progress_vacuum WHERE pid = $1`
  const row = (await monitor.query<{phase: string; total: string; done: string}>(sql, [pid])).rows[0]
  if (!row) return
  const total = Number(row.total)
  const done = Number(row.done)
  report(`${row.phase}${total > 0 ? ` ${Math.round((done / total) * 100)}% (${done}/${total} blocks)` : ''}`)
}

export async function vacuum(options: VacuumOptions): Promise<VacuumResult> {
  const full = Boolean(options.full)
  const lockTimeout = pgDuration(options.lockTimeout ?? '5s')
  const client = await connect(options.databaseUrl, {applicationName: 'charge-ops db vacuum'})
  let monitor: Client | undefined
  try {
    const candidates = await findVacuumCandidates(client, options)
    const result: VacuumResult = {
      mode: full ? 'full' : 'analyze',
      dryRun: Boolean(options.dryRun),
      tables: [],
      reclaimedBytes: 0,
      deadTuplesRemoved: 0,
    }
    if (options.dryRun || candidates.length === 0) {
      result.tables = candidates.map((c) => ({...c, ok: true}))
      return result
    }
    await client.query(`SET lock_timeout = '${lockTimeout}'`)
    const pid = (await client.query<{pid: number}>('SELECT pg_backend_pid() AS pid')).rows[0].pid
    monitor = await connect(options.databaseUrl, {applicationName: 'charge-ops db vacuum (progress)'})
    for (const c of candidates) {
      const started = Date.now()
      const target = qualified(c.schema, c.name)
      const timer = options.onProgress
        ? setInterval(
            () => pollProgress(monitor!, pid, full, (t) => options.onProgress!(c.table, t)).catch(() => {}),
            500,
          )
        : undefined
      const entry: VacuumTableResult = {...c, ok: true}
      try {
        const before = Number(
          (await client.query<{b: string}>('SELECT pg_total_relation_size($1::regclass)::bigint AS b', [target]))
            .rows[0].b,
        )
        entry.bytes = before
        await client.query(full ? `VACUUM (FULL, ANALYZE) ${target}` : `VACUUM (ANALYZE) ${target}`)
        const after = (
          await client.query<{b: string; dead: string | null}>(
            `SELECT pg_total_relation_size($1::regclass)::bigint AS b, (SELECT n_dead_tup FROM pg_stat_user_tables WHERE relid = $1::regclass)::bigint AS dead`,
            [target],
          )
        ).rows[0]
        entry.bytesAfter = Number(after.b)
        entry.reclaimedBytes = Math.max(0, before - entry.bytesAfter)
        entry.deadTuplesAfter = after.dead === null ? undefined : Number(after.dead)
        result.reclaimedBytes += entry.reclaimedBytes
        result.deadTuplesRemoved += Math.max(0, c.deadTuples - (entry.deadTuplesAfter ?? 0))
      } catch (error) {
        const e = error as {code?: string; message?: string}
        entry.ok = false
        entry.error =
          e.code === '55P03'
            ? `could not take the lock within lock_timeout ${lockTimeout} (another session holds it); retry later or raise --lock-timeout`
            : (e.message ?? String(error))
      } finally {
        if (timer) clearInterval(timer)
        entry.durationMs = Date.now() - started
      }
      result.tables.push(entry)
    }
    return result
  } finally {
    await monitor?.end().catch(() => {})
    await client.end().catch(() => {})
  }
}
