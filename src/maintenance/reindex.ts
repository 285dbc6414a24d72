/**
 * `db reindex`: REINDEX INDEX CONCURRENTLY (PostgreSQL ≥ 12) for bloated or invalid indexes, and
 * DROP INDEX CONCURRENTLY of the invalid `_ccnew` / `_ccold` leftovers an interrupted concurrent
 * reindex leaves behind. Writers are never blocked unless `blocking` is set (plain REINDEX).
 */
import type {Client} from 'pg'

import {INDEX_BLOAT_SQL} from '../postgres/catalog-sql.js'
import {UsageError} from '../errors.js'
import {connect, serverMajorVersion} from '../postgres/connection.js'
import {pgDuration, qualified, resolveRelation} from './common.js'

export interface ReindexOptions {
  databaseUrl: string
  table?: string
  index?: string
  dryRun?: boolean
  /** plain REINDEX (takes locks that block writes); the command requires --yes for it */
  blocking?: boolean
  /** estimated bloat % at or above which an index is rebuilt (default 50) */
  bloatPct?: number
  /** ignore bloat of indexes smaller than this (default 8 MB) */
  minBytes?: number
  lockTimeout?: string
  onProgress?: (index: string, text: string) => void
}

export type ReindexAction = 'drop-leftover' | 'reindex'

export interface ReindexItem {
  index: string
  schema: string
  name: string
  table: string
  action: ReindexAction
  reason: string
  bytes: number
  ok?: boolean
  skipped?: string
  error?: string
  bytesAfter?: number
  durationMs?: number
}

export interface ReindexResult {
  serverMajor: number
  concurrently: boolean
  dryRun: boolean
  items: ReindexItem[]
  reclaimedBytes: number
}

/** Leftovers of REINDEX CONCURRENTLY: the new copy (_ccnew) or the old one (_ccold), optionally numbered. */
export const LEFTOVER_PATTERN = /_cc(new|old)\d*$/

const INDEXES_SQL = `
SELECT n.nspname AS schema, ci.relname AS name, ct.relname AS table, i.indexrelid::bigint AS oid, i.indrelid::bigint AS table_oid,
       i.indisvalid AS valid, pg_relation_size(i.indexrelid)::bigint AS bytes,
       EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = i.indexrelid) AS constraint_backed,
       EXISTS (SELECT 1 FROM pg_stat_progress_create_index p WHERE p.relid = i.indrelid) AS build_in_progress
FROM pg_index i
JOIN pg_class ci ON ci.oid = i.indexrelid
JOIN pg_class ct ON ct.oid = i.indrelid
JOIN pg_namespace n ON n.oid = ci.relnamespace
WHERE n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg_toast%'`

interface IndexRow {
  schema: string
  name: string
  table: string
  oid: string
  table_oid: string
  valid: boolean
  bytes: string
  constraint_backed: boolean
  build_in_progress: boolean
}

export async function findReindexTargets(
  client: Client,
  options: Omit<ReindexOptions, 'databaseUrl'>,
): Promise<ReindexItem[]> {
  const bloatLimit = options.bloatPct ?? 50
  const minBytes = options.minBytes ?? 8 * 1024 * 1024
  const onlyTable = options.table ? await resolveRelation(client, options.table, ['r', 'm', 'p'], 'table') : undefined
  const onlyIndex = options.index ? await resolveRelation(client, options.index, ['i', 'I'], 'index') : undefined
  const rows = (await client.query<IndexRow>(INDEXES_SQL)).rows.filter(
    (r) => (!onlyTable || Number(r.table_oid) === onlyTable.oid) && (!onlyIndex || Number(r.oid) === onlyIndex.oid),
  )
  const bloat = new Map(
    (await client.query<{oid: string; bloat_pct: number; is_na: boolean}>(INDEX_BLOAT_SQL, [minBytes])).rows
      .filter((r) => !r.is_na)
      .map((r) => [r.oid, r.bloat_pct]),
  )
  const items: ReindexItem[] = []
  for (const r of rows) {
    const base = {
      index: `${r.schema}.${r.name}`,
      schema: r.schema,
      name: r.name,
      table: `${r.schema}.${r.table}`,
      bytes: Number(r.bytes),
    }
    if (!r.valid) {
      const skipped = r.build_in_progress
        ? 'an index build / concurrent reindex is running on this table right now; not touching its invalid indexes'
        : undefined
      if (LEFTOVER_PATTERN.test(r.name))
        items.push({
          ...base,
          action: 'drop-leftover',
          reason: 'invalid leftover of an interrupted REINDEX CONCURRENTLY',
          ...(skipped ? {skipped} : {}),
        })
      else
        items.push({
          ...base,
          action: 'reindex',
          reason: 'invalid (a failed or cancelled CREATE INDEX CONCURRENTLY)',
          ...(skipped ? {skipped} : {}),
        })
      continue
    }
    const b = bloat.get(r.oid)
    if (b !== undefined && b >= bloatLimit)
      items.push({...base, action: 'reindex', reason: `~${Math.round(b)}% estimated bloat`})
    else if (onlyIndex) items.push({...base, action: 'reindex', reason: 'requested with --index'})
  }
  // leftovers first: they must go before their index is rebuilt again
  return items.sort((a, b) =>
    a.action === b.action ? a.index.localeCompare(b.index) : a.action === 'drop-leftover' ? -1 : 1,
  )
}

async function leftoversOf(client: Client, schema: string, name: string): Promise<string[]> {
  const {rows} = await client.query<{name: string}>(
    `SELECT ci.relname AS name FROM pg_index i JOIN pg_class ci ON ci.oid = i.indexrelid JOIN pg_namespace n ON n.oid = ci.relnamespace
     WHERE n.nspname = $1 AND NOT i.indisvalid AND left(ci.relname, length($2) + 3) = $2 || '_cc'`,
    [schema, name],
  )
  return rows
    .map((r) => r.name)
    .filter((n) => LEFTOVER_PATTERN.test(n) && /^_cc(new|old)\d*$/.test(n.slice(name.length)))
}

export async function reindex(options: ReindexOptions): Promise<ReindexResult> {
  const lockTimeout = pgDuration(options.lockTimeout ?? '60s')
  const client = await connect(options.databaseUrl, {applicationName: 'charge-ops db reindex'})
  try {
    const major = await serverMajorVersion(client)
    const concurrently = !options.blocking
    if (concurrently && major < 12) {
      throw new UsageError(`REINDEX CONCURRENTLY needs PostgreSQL 12 or newer (this server is ${major})`, {
        code: 'REINDEX_NEEDS_PG12',
        hint: 'Upgrade PostgreSQL, or accept blocked writes with --blocking --yes in a maintenance window.',
      })
    }
    const items = await findReindexTargets(client, options)
    const result: ReindexResult = {
      serverMajor: major,
      concurrently,
      dryRun: Boolean(options.dryRun),
      items,
      reclaimedBytes: 0,
    }
    if (options.dryRun) return result
    await client.query(`SET lock_timeout = '${lockTimeout}'`)
    for (const item of items) {
      if (item.skipped) continue
      const started = Date.now()
      const target = qualified(item.schema, item.name)
      try {
        if (item.action === 'drop-leftover') {
          options.onProgress?.(item.index, 'dropping leftover')
          await client.query(`DROP INDEX ${concurrently ? 'CONCURRENTLY ' : ''}IF EXISTS ${target}`)
          result.reclaimedBytes += item.bytes
          item.bytesAfter = 0
        } else {
          options.onProgress?.(item.index, concurrently ? 'REINDEX CONCURRENTLY' : 'REINDEX')
          await client.query(`REINDEX INDEX ${concurrently ? 'CONCURRENTLY ' : ''}${target}`)
          const after = (
            await client.query<{b: string; valid: boolean}>(
              'SELECT pg_relation_size(i.indexrelid)::bigint AS b, i.indisvalid AS valid FROM pg_index i WHERE i.indexrelid = $1::regclass',
              [target],
            )
          ).rows[0]
          item.bytesAfter = Number(after.b)
          result.reclaimedBytes += Math.max(0, item.bytes - item.bytesAfter)
          if (!after.valid) throw new Error('the index is still invalid after REINDEX')
        }
        item.ok = true
      } catch (error) {
        const e = error as {code?: string; message?: string; detail?: string}
        item.ok = false
        item.error =
          e.code === '55P03'
            ? `could not take a lock within lock_timeout ${lockTimeout}; retry when the table is quieter or raise --lock-timeout`
            : e.code === '23505'
              ? `${e.message}${e.detail ? ` (${e.detail})` : ''}: remove the duplicate rows, then rerun`
              : (e.message ?? String(error))
        // a failed REINDEX CONCURRENTLY leaves an invalid _ccnew copy: remove it so reruns start clean
        if (item.action === 'reindex' && concurrently) {
          for (const leftover of await leftoversOf(client, item.schema, item.name).catch(() => [] as string[])) {
            await client.query(`DROP INDEX CONCURRENTLY IF EXISTS ${qualified(item.schema, leftover)}`).catch(() => {})
          }
        }
      } finally {
        item.durationMs = Date.now() - started
      }
    }
    return result
  } finally {
    await client.end().catch(() => {})
  }
}
