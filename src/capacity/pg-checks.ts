/**
 * PostgreSQL capacity checks. Every catalog query is set-based (one statement for all tables or
 * indexes); shared facts are fetched once per run through `once()`.
 */
import {existsSync} from 'node:fs'
import {readFile} from 'node:fs/promises'

import {estimateGrowth, readHistory} from './history.js'
import {measure, pct, unknown} from './check-kit.js'
import {formatBytes, formatSeconds} from './render.js'
import * as sql from '../postgres/catalog-sql.js'
import {diskUsage} from '../core/fs/system.js'
import {sizeFlagOf} from '../core/units/size.js'
import {evaluate} from './thresholds.js'
import {type Check, type CheckContext, type CheckResult, type CheckStatus, once} from './types.js'

const C = 'postgresql'
const MIN_BLOAT_BYTES = 8 * 1024 * 1024
const MIN_CACHE_READS = 10_000

export interface ServerFacts {
  max_connections: number
  reserved: number
  connections: number
  xid_age: string
  in_recovery: boolean
  database_bytes: string
  archive_mode: string
  version_num: number
  data_directory: string | null
  blks_hit: string
  blks_read: string
  deadlocks: string
  stats_reset: Date | null
  archived_count: string
  last_archived_wal: string | null
  last_archived_time: Date | null
  failed_count: string
  last_failed_wal: string | null
  last_failed_time: Date | null
}

export function serverFacts(ctx: CheckContext): Promise<ServerFacts> {
  return once(ctx, 'pg.facts', async () => (await ctx.pg!.query<ServerFacts>(sql.SERVER_FACTS_SQL)).rows[0])
}

/** Runs fn with the client, or returns one unknown result naming why PostgreSQL is not available. */
async function withPg(
  ctx: CheckContext,
  id: string,
  title: string,
  fn: () => Promise<CheckResult[]>,
): Promise<CheckResult[]> {
  if (!ctx.pg)
    return [
      unknown(
        C,
        id,
        title,
        `PostgreSQL not checked: ${ctx.pgError ?? 'DATABASE_URL is not set'}`,
        'Set DATABASE_URL (backend .env) and make PostgreSQL reachable; `charge-ops doctor` names the cause.',
      ),
    ]
  try {
    return await fn()
  } catch (error) {
    const e = error as {code?: string; message?: string}
    const hint =
      e.code === '42501'
        ? 'Grant the role pg_monitor (GRANT pg_monitor TO <user>) so it may read the statistics views.'
        : undefined
    return [unknown(C, id, title, `query failed: ${e.message ?? String(error)}`, hint)]
  }
}

const databaseSize: Check = {
  id: 'pg.database_size_bytes',
  component: C,
  title: 'Database size',
  run: (ctx) =>
    withPg(ctx, 'pg.database_size_bytes', 'Database size', async () => {
      const tables = (await ctx.pg!.query<{schema: string; table: string; bytes: string}>(sql.LARGEST_TABLES_SQL)).rows
      const facts = await serverFacts(ctx)
      const dbBytes = Number(facts.database_bytes)
      const history = await readHistory(ctx.settings.stateDir)
      const estimate = estimateGrowth(history.samples, 'databaseBytes', dbBytes, ctx.now)
      const growth = 'insufficient' in estimate ? undefined : estimate
      const windowText = growth
        ? `fitted over ${formatSeconds(growth.windowSeconds)} (${growth.points} points since ${growth.since})`
        : ''
      ctx.memo.set('pg.databaseBytes', Promise.resolve(dbBytes))
      const results: CheckResult[] = [
        measure(ctx, {
          id: 'pg.database_size_bytes',
          component: C,
          title: 'Database size',
          value: dbBytes,
          unit: 'bytes',
          info: true,
          message: `${formatBytes(dbBytes)}${tables[0] ? `; largest table ${tables[0].schema}.${tables[0].table} ${formatBytes(Number(tables[0].bytes))}` : ''}`,
          details: {largestTables: tables.map((t) => ({table: `${t.schema}.${t.table}`, bytes: Number(t.bytes)}))},
        }),
        measure(ctx, {
          id: 'pg.growth_bytes_per_day',
          component: C,
          title: 'Database growth per day',
          value: growth ? Math.round(growth.perDay) : null,
          unit: 'bytes',
          info: true,
          status: 'ok',
          message: growth
            ? `${formatBytes(growth.perDay)}/day, ${windowText}`
            : (estimate as {insufficient: string}).insufficient,
          details: growth
            ? {windowSeconds: growth.windowSeconds, points: growth.points, since: growth.since}
            : undefined,
        }),
        // the window the growth was fitted over, so a dashboard / alert can tell a week's trend from a few hours'
        measure(ctx, {
          id: 'pg.growth_window_seconds',
          component: C,
          title: 'Span of history the growth was fitted over',
          value: growth ? growth.windowSeconds : 0,
          unit: 's',
          info: true,
          status: 'ok',
          message: growth ? windowText : 'no fit yet',
        }),
      ]
      // days until full: free space on the data dir's filesystem / growth (local servers only)
      const dataDir = facts.data_directory
      if (growth && growth.perDay > 0 && dataDir && ctx.pgLocal && existsSync(dataDir)) {
        const disk = await diskUsage(dataDir)
        const days = disk.freeBytes / growth.perDay
        results.push(
          measure(ctx, {
            id: 'pg.days_until_full',
            component: C,
            title: 'Days until the data disk fills',
            value: Math.round(days * 10) / 10,
            unit: 'days',
            message: `${formatBytes(disk.freeBytes)} free at ${formatBytes(growth.perDay)}/day, ${windowText}`,
            remedy:
              'Grow the volume (LVM / cloud disk auto-expansion), archive or delete old data, or VACUUM FULL bloated tables.',
          }),
        )
      } else {
        results.push(
          measure(ctx, {
            id: 'pg.days_until_full',
            component: C,
            title: 'Days until the data disk fills',
            value: null,
            unit: 'days',
            status: 'ok',
            message: growth
              ? growth.perDay <= 0
                ? `not growing (${windowText})`
                : 'data directory not on this host'
              : (estimate as {insufficient: string}).insufficient,
          }),
        )
      }
      return results
    }),
}

const databaseStats: Check = {
  id: 'pg.cache_hit_ratio',
  component: C,
  title: 'Cache hit ratio, deadlocks, blocks read',
  run: (ctx) =>
    withPg(ctx, 'pg.cache_hit_ratio', 'Cache hit ratio', async () => {
      const f = await serverFacts(ctx)
      const hit = Number(f.blks_hit)
      const read = Number(f.blks_read)
      const total = hit + read
      const ratio = total > 0 ? (hit / total) * 100 : null
      const since = f.stats_reset ? ` since ${new Date(f.stats_reset).toISOString()}` : ''
      return [
        measure(ctx, {
          id: 'pg.cache_hit_ratio',
          component: C,
          title: 'Buffer cache hit ratio',
          value: ratio === null ? null : pct(ratio),
          unit: '%',
          status: total < MIN_CACHE_READS ? 'ok' : undefined,
          message:
            total < MIN_CACHE_READS
              ? `${total} block reads so far: too few to judge`
              : `${pct(ratio!)}% of ${total} block reads served from shared_buffers${since}`,
          remedy:
            'Raise shared_buffers (guide: RAM x 0.25) and effective_cache_size, or add RAM; check for sequential scans of large tables (db slow-queries).',
        }),
        measure(ctx, {
          id: 'pg.deadlocks',
          component: C,
          title: 'Deadlocks',
          value: Number(f.deadlocks),
          unit: 'count',
          message: `${f.deadlocks} deadlocks${since}`,
          remedy:
            'Find the statements in the server log ("deadlock detected") and make transactions lock rows in a consistent order.',
        }),
        measure(ctx, {
          id: 'pg.blks_read',
          component: C,
          title: 'Blocks read from disk',
          value: read,
          unit: 'count',
          info: true,
          message: `${read} blocks read from disk${since}`,
        }),
      ]
    }),
}

const connections: Check = {
  id: 'pg.connections_pct',
  component: C,
  title: 'Connections vs max_connections',
  run: (ctx) =>
    withPg(ctx, 'pg.connections_pct', 'Connections vs max_connections', async () => {
      const f = await serverFacts(ctx)
      const usable = f.max_connections - f.reserved
      return [
        measure(ctx, {
          id: 'pg.connections_pct',
          component: C,
          title: 'Connections vs max_connections',
          value: pct((f.connections / usable) * 100),
          unit: '%',
          message: `${f.connections} of ${usable} usable connections (max_connections ${f.max_connections} - ${f.reserved} reserved)`,
          remedy:
            'Put PgBouncer (transaction pooling) in front, lower the service pool size, or raise max_connections (restart needed).',
        }),
      ]
    }),
}

const wraparound: Check = {
  id: 'pg.xid_wraparound_pct',
  component: C,
  title: 'Transaction-ID wraparound',
  run: (ctx) =>
    withPg(ctx, 'pg.xid_wraparound_pct', 'Transaction-ID wraparound', async () => {
      const f = await serverFacts(ctx)
      const age = Number(f.xid_age)
      return [
        measure(ctx, {
          id: 'pg.xid_wraparound_pct',
          component: C,
          title: 'Transaction-ID wraparound',
          value: pct((age / 2 ** 31) * 100),
          unit: '%',
          message: `oldest datfrozenxid age ${age.toLocaleString('en')} of 2,147,483,648`,
          remedy:
            'Run `charge-ops db vacuum` (VACUUM freezes old rows); look for long transactions or abandoned replication slots holding back the xmin horizon.',
        }),
      ]
    }),
}

const sessions: Check = {
  id: 'pg.long_running_seconds',
  component: C,
  title: 'Long-running and idle-in-transaction sessions',
  run: (ctx) =>
    withPg(ctx, 'pg.long_running_seconds', 'Long-running queries', async () => {
      const rows = (
        await ctx.pg!.query<{
          state: string
          pid: number
          user: string
          database: string
          application: string
          seconds: number | null
        }>(sql.SESSIONS_SQL)
      ).rows
      const active = rows.find((r) => r.state === 'active')
      const idle = rows.find((r) => r.state !== 'active')
      const who = (r: {pid: number; user: string; application: string}) =>
        `pid ${r.pid} (${r.user}${r.application ? `, ${r.application}` : ''})`
      return [
        measure(ctx, {
          id: 'pg.long_running_seconds',
          component: C,
          title: 'Longest-running query',
          value: active ? Math.round(active.seconds ?? 0) : 0,
          unit: 's',
          message: active ? `${who(active)} running for ${formatSeconds(active.seconds ?? 0)}` : 'no active queries',
          remedy:
            'Inspect it (SELECT query FROM pg_stat_activity WHERE pid = …); cancel with pg_cancel_backend(pid); set statement_timeout for the service role.',
        }),
        measure(ctx, {
          id: 'pg.idle_in_transaction_seconds',
          component: C,
          title: 'Oldest idle-in-transaction session',
          value: idle ? Math.round(idle.seconds ?? 0) : 0,
          unit: 's',
          message: idle
            ? `${who(idle)} idle in transaction for ${formatSeconds(idle.seconds ?? 0)}`
            : 'no idle-in-transaction sessions',
          remedy:
            'It holds locks and blocks vacuum: end it with pg_terminate_backend(pid) and set idle_in_transaction_session_timeout (e.g. 60s).',
        }),
      ]
    }),
}

const replication: Check = {
  id: 'pg.replication_lag_bytes',
  component: C,
  title: 'Replication lag',
  run: (ctx) =>
    withPg(ctx, 'pg.replication_lag_bytes', 'Replication lag', async () => {
      const f = await serverFacts(ctx)
      if (f.in_recovery)
        return [
          measure(ctx, {
            id: 'pg.replication_lag_bytes',
            component: C,
            title: 'Replication lag',
            value: null,
            unit: 'bytes',
            status: 'ok',
            message: 'this server is a replica; check lag on the primary',
          }),
        ]
      const rows = (
        await ctx.pg!.query<{
          name: string
          client: string
          state: string
          lag_bytes: number | null
          lag_seconds: number | null
        }>(sql.REPLICATION_SQL)
      ).rows
      if (rows.length === 0) return []
      return rows.map((r) =>
        measure(ctx, {
          id: 'pg.replication_lag_bytes',
          component: C,
          title: 'Replication lag',
          value: r.lag_bytes ?? null,
          unit: 'bytes',
          labels: {replica: r.name || r.client},
          message: `${r.name || r.client} (${r.state}) ${r.lag_bytes === null ? 'has not replayed yet' : `${formatBytes(r.lag_bytes)} behind`}${r.lag_seconds ? `, ${formatSeconds(r.lag_seconds)}` : ''}`,
          remedy:
            'Check the replica’s disk and CPU, network bandwidth, and long queries on the replica (hot_standby_feedback / max_standby_streaming_delay).',
        }),
      )
    }),
}

const indexes: Check = {
  id: 'pg.unused_index_bytes',
  component: C,
  title: 'Unused and duplicate indexes',
  run: (ctx) =>
    withPg(ctx, 'pg.unused_index_bytes', 'Unused indexes', async () => {
      const unused = (
        await ctx.pg!.query<{schema: string; table: string; index: string; bytes: string}>(sql.UNUSED_INDEXES_SQL)
      ).rows
      const dups = (
        await ctx.pg!.query<{schema: string; table: string; index: string; covered_by: string; bytes: string}>(
          sql.DUPLICATE_INDEXES_SQL,
        )
      ).rows
      const unusedBytes = unused.reduce((s, r) => s + Number(r.bytes), 0)
      return [
        measure(ctx, {
          id: 'pg.unused_index_bytes',
          component: C,
          title: 'Never-scanned indexes',
          value: unusedBytes,
          unit: 'bytes',
          message:
            unused.length === 0
              ? 'no unused indexes'
              : `${unused.length} indexes never scanned, ${formatBytes(unusedBytes)}${unused[0] ? ` (largest ${unused[0].schema}.${unused[0].index})` : ''}`,
          remedy:
            'Confirm on every replica and after a full business cycle (idx_scan counts since the last stats reset), then DROP INDEX CONCURRENTLY.',
          details: {
            indexes: unused
              .slice(0, 50)
              .map((r) => ({index: `${r.schema}.${r.index}`, table: r.table, bytes: Number(r.bytes)})),
          },
        }),
        measure(ctx, {
          id: 'pg.duplicate_indexes',
          component: C,
          title: 'Duplicate indexes',
          value: dups.length,
          unit: 'count',
          message:
            dups.length === 0
              ? 'no duplicate indexes'
              : dups
                  .slice(0, 3)
                  .map((d) => `${d.schema}.${d.index} is covered by ${d.covered_by}`)
                  .join('; ') + (dups.length > 3 ? `; and ${dups.length - 3} more` : ''),
          remedy:
            'Drop the redundant index with DROP INDEX CONCURRENTLY (its columns are a prefix of the covering index).',
          details: {
            indexes: dups.map((d) => ({
              index: `${d.schema}.${d.index}`,
              table: d.table,
              coveredBy: d.covered_by,
              bytes: Number(d.bytes),
            })),
          },
        }),
      ]
    }),
}

export interface BloatRow {
  schema: string
  table: string
  index?: string
  oid: string
  bytes: string
  bloat_bytes: string
  bloat_pct: number
  is_na: boolean
}

const bloat: Check = {
  id: 'pg.table_bloat_pct',
  component: C,
  title: 'Table and index bloat',
  run: (ctx) =>
    withPg(ctx, 'pg.table_bloat_pct', 'Table bloat', async () => {
      const tables = (await ctx.pg!.query<BloatRow>(sql.TABLE_BLOAT_SQL, [MIN_BLOAT_BYTES])).rows.filter(
        (r) => !r.is_na,
      )
      const idx = (await ctx.pg!.query<BloatRow>(sql.INDEX_BLOAT_SQL, [MIN_BLOAT_BYTES])).rows.filter((r) => !r.is_na)
      const worstT = [...tables].sort((a, b) => b.bloat_pct - a.bloat_pct)[0]
      const worstI = [...idx].sort((a, b) => b.bloat_pct - a.bloat_pct)[0]
      return [
        measure(ctx, {
          id: 'pg.table_bloat_pct',
          component: C,
          title: 'Worst table bloat (tables > 8 MB)',
          value: worstT ? pct(worstT.bloat_pct) : 0,
          unit: '%',
          message: worstT
            ? `${worstT.schema}.${worstT.table}: ~${formatBytes(Number(worstT.bloat_bytes))} of ${formatBytes(Number(worstT.bytes))} is bloat`
            : 'no table larger than 8 MB',
          remedy:
            'Run `charge-ops db vacuum` (space is reused); to return it to the OS, `charge-ops db vacuum --table T --full --yes` in a maintenance window (ACCESS EXCLUSIVE lock).',
          details: {
            tables: tables.slice(0, 20).map((r) => ({
              table: `${r.schema}.${r.table}`,
              bytes: Number(r.bytes),
              bloatBytes: Number(r.bloat_bytes),
              bloatPct: pct(r.bloat_pct),
            })),
          },
        }),
        measure(ctx, {
          id: 'pg.index_bloat_pct',
          component: C,
          title: 'Worst index bloat (indexes > 8 MB)',
          value: worstI ? pct(worstI.bloat_pct) : 0,
          unit: '%',
          message: worstI
            ? `${worstI.schema}.${worstI.index}: ~${formatBytes(Number(worstI.bloat_bytes))} of ${formatBytes(Number(worstI.bytes))} is bloat`
            : 'no index larger than 8 MB',
          remedy: 'Run `charge-ops db reindex` (REINDEX CONCURRENTLY: writers are not blocked).',
          details: {
            indexes: idx.slice(0, 20).map((r) => ({
              index: `${r.schema}.${r.index}`,
              table: r.table,
              bytes: Number(r.bytes),
              bloatBytes: Number(r.bloat_bytes),
              bloatPct: pct(r.bloat_pct),
            })),
          },
        }),
      ]
    }),
}

const archiver: Check = {
  id: 'pg.archive_failing',
  component: C,
  title: 'WAL archiving',
  run: (ctx) =>
    withPg(ctx, 'pg.archive_failing', 'WAL archiving', async () => {
      const f = await serverFacts(ctx)
      if (f.archive_mode === 'off') {
        return [
          measure(ctx, {
            id: 'pg.archive_failing',
            component: C,
            title: 'WAL archiving',
            value: 0,
            unit: 'bool',
            status: 'ok',
            message: 'archive_mode is off (no point-in-time recovery; the recovery point is the newest backup)',
          }),
        ]
      }
      const lastOk = f.last_archived_time ? new Date(f.last_archived_time).getTime() : 0
      const lastFail = f.last_failed_time ? new Date(f.last_failed_time).getTime() : 0
      const failing = lastFail > lastOk
      const lagSeconds = lastOk ? (ctx.now.getTime() - lastOk) / 1000 : null
      // pg_ls_archive_statusdir() needs pg_monitor (or superuser)
      const backlog = await ctx
        .pg!.query<{n: string}>("SELECT count(*)::text AS n FROM pg_ls_archive_statusdir() WHERE name LIKE '%.ready'")
        .then((r) => Number(r.rows[0].n))
        .catch(() => null)
      const measures = [
        measure(ctx, {
          id: 'pg.archive_failing',
          component: C,
          title: 'WAL archiving failing',
          value: failing ? 1 : 0,
          unit: 'bool',
          message: failing
            ? `archive_command is failing: ${f.failed_count} failures, last for ${f.last_failed_wal} at ${new Date(f.last_failed_time!).toISOString()}`
            : `${f.archived_count} segments archived, ${f.failed_count} failures`,
          remedy:
            'Read the server log for the archive_command error (credentials, full disk, repository unreachable): pg_wal grows until archiving works again.',
        }),
        measure(ctx, {
          id: 'pg.archive_lag_seconds',
          component: C,
          title: 'Time since the last archived WAL',
          value: lagSeconds === null ? null : Math.round(lagSeconds),
          unit: 's',
          status: lagSeconds === null ? 'warning' : undefined,
          message:
            lagSeconds === null
              ? 'no WAL segment archived yet'
              : `last archived ${f.last_archived_wal} ${formatSeconds(lagSeconds)} ago`,
          remedy:
            'Set archive_timeout (e.g. 5min) so quiet periods still close segments, and fix archive_command failures.',
        }),
      ]
      // left out (not "unknown") for a role without pg_monitor: the other two still judge archiving
      if (backlog !== null) {
        // archive_command's --queue-max (src/wal/queue.ts) is the limit the operator chose: critical
        // there, warning at half; charge-ops.yaml thresholds or the defaults without one
        const command = await ctx
          .pg!.query<{setting: string}>("SELECT setting FROM pg_settings WHERE name = 'archive_command'")
          .then((r) => r.rows[0]?.setting ?? '')
          .catch(() => '')
        const queueMax = sizeFlagOf(command, 'queue-max')
        const limit =
          queueMax === undefined || queueMax < 16 * 1024 * 1024 ? undefined : Math.floor(queueMax / (16 * 1024 * 1024))
        const limited =
          limit === undefined
            ? ctx
            : {
                ...ctx,
                thresholds: (id: string) =>
                  id === 'pg.archive_ready_backlog'
                    ? {...ctx.thresholds(id)!, warning: Math.max(1, Math.floor(limit / 2)), critical: limit}
                    : ctx.thresholds(id),
              }
        measures.push(
          measure(limited, {
            id: 'pg.archive_ready_backlog',
            component: C,
            title: 'WAL segments waiting to be archived',
            value: backlog,
            unit: 'segments',
            message: `${backlog} segment(s) wait for archive_command (${backlog * 16} MB of pg_wal)${limit === undefined ? '' : `; archive_command's --queue-max is ${limit} segment(s)`}`,
            remedy:
              'Archiving fails or falls behind the writes: fix the repository (server log), or archive in parallel with `wal push --async --process-max N` (docs/pitr.md). pg_wal grows until it catches up.',
          }),
        )
      }
      return measures
    }),
}

const sequences: Check = {
  id: 'pg.sequence_used_pct',
  component: C,
  title: 'Sequences close to exhaustion',
  run: (ctx) =>
    withPg(ctx, 'pg.sequence_used_pct', 'Sequences', async () => {
      const rows = (
        await ctx.pg!.query<{
          schema: string
          sequence: string
          last_value: number | null
          max_value: number
          used_pct: number | null
        }>(sql.SEQUENCES_SQL)
      ).rows
      const worst = rows.find((r) => r.used_pct !== null)
      return [
        measure(ctx, {
          id: 'pg.sequence_used_pct',
          component: C,
          title: 'Sequence closest to exhaustion',
          value: worst ? pct(worst.used_pct!) : 0,
          unit: '%',
          message: worst
            ? `${worst.schema}.${worst.sequence} at ${worst.last_value ?? 'start'} of ${worst.max_value}`
            : 'no sequences',
          remedy:
            'ALTER the column and sequence to bigint (ALTER SEQUENCE … AS bigint) before it runs out: inserts fail when it does.',
          details: {
            sequences: rows.map((r) => ({
              sequence: `${r.schema}.${r.sequence}`,
              lastValue: r.last_value,
              maxValue: r.max_value,
              usedPct: r.used_pct === null ? null : pct(r.used_pct),
            })),
          },
        }),
      ]
    }),
}

const maintenanceAge: Check = {
  id: 'pg.vacuum_age_days',
  component: C,
  title: 'Tables not vacuumed / analysed for too long',
  run: (ctx) =>
    withPg(ctx, 'pg.vacuum_age_days', 'Vacuum age', async () => {
      const rows = (
        await ctx.pg!.query<{
          schema: string
          table: string
          live: string
          dead: string
          modified: string
          vacuum_days: number | null
          analyze_days: number | null
          never_vacuumed: boolean
          never_analyzed: boolean
        }>(sql.MAINTENANCE_AGE_SQL)
      ).rows
      const f = await serverFacts(ctx)
      const statsDays = f.stats_reset ? (ctx.now.getTime() - new Date(f.stats_reset).getTime()) / 86_400_000 : 0
      // only tables with real churn count (autovacuum's own base threshold is 50 rows)
      const churn = rows.filter((r) => Number(r.dead) + Number(r.modified) >= 1000)
      const days = (r: (typeof rows)[number], kind: 'vacuum' | 'analyze') =>
        kind === 'vacuum'
          ? r.never_vacuumed
            ? statsDays
            : (r.vacuum_days ?? 0)
          : r.never_analyzed
            ? statsDays
            : (r.analyze_days ?? 0)
      // A never-vacuumed table has no age to judge (stats_reset is often NULL, so "days since" was 0
      // and 350,000 dead rows read OK). Judge it by what autovacuum would have done: past its own
      // trigger (50 + 20 % of live rows) it is overdue — a warning; half the table dead, critical.
      const neverVacuumedStatus = (r: (typeof rows)[number]): CheckStatus => {
        if (!r.never_vacuumed) return 'ok'
        const dead = Number(r.dead)
        const live = Number(r.live)
        if (dead < Math.max(1000, 50 + 0.2 * live)) return 'ok'
        return dead >= live ? 'critical' : 'warning'
      }
      const deadShare = (r: (typeof rows)[number]) =>
        `${Math.round((Number(r.dead) / Math.max(1, Number(r.dead) + Number(r.live))) * 100)} % of its rows dead`
      const rank = (s: CheckStatus) => ({ok: 0, unknown: 1, warning: 2, critical: 3})[s]
      const out: CheckResult[] = []
      for (const kind of ['vacuum', 'analyze'] as const) {
        const thresholds = ctx.thresholds(`pg.${kind}_age_days`)
        const judged = churn.map((r) => {
          const d = days(r, kind)
          const byAge = evaluate(Math.round(d * 10) / 10, thresholds)
          const byDead = kind === 'vacuum' ? neverVacuumedStatus(r) : 'ok'
          return {r, d, status: rank(byDead) > rank(byAge) ? byDead : byAge}
        })
        // the worst status first, then the oldest
        const worst = judged.sort((a, b) => rank(b.status) - rank(a.status) || b.d - a.d)[0]
        const never = worst && (kind === 'vacuum' ? worst.r.never_vacuumed : worst.r.never_analyzed)
        out.push(
          measure(ctx, {
            id: `pg.${kind}_age_days`,
            component: C,
            title: `Longest time a modified table went without ${kind}`,
            value: worst ? Math.round(worst.d * 10) / 10 : 0,
            unit: 'days',
            status: worst ? worst.status : undefined,
            message: worst
              ? `${worst.r.schema}.${worst.r.table}: ${never ? `never ${kind === 'vacuum' ? 'vacuumed' : 'analysed'}${statsDays > 0 ? ` (statistics kept for ${statsDays.toFixed(1)} days)` : ''}` : `last ${kind === 'vacuum' ? 'vacuumed' : 'analysed'} ${worst.d.toFixed(1)} days ago`} (${worst.r.dead} dead, ${worst.r.modified} modified rows${kind === 'vacuum' ? `, ${deadShare(worst.r)}` : ''})`
              : 'every modified table was vacuumed and analysed',
            details: {
              tables: judged.slice(0, 20).map((j) => ({
                table: `${j.r.schema}.${j.r.table}`,
                status: j.status,
                days: Math.round(j.d * 10) / 10,
                never: kind === 'vacuum' ? j.r.never_vacuumed : j.r.never_analyzed,
                dead: Number(j.r.dead),
                live: Number(j.r.live),
              })),
            },
            remedy:
              kind === 'vacuum'
                ? 'Run `charge-ops db vacuum`; check autovacuum is on (also per table: autovacuum_enabled) and not blocked by long transactions; lower autovacuum_vacuum_scale_factor for big tables.'
                : 'Run `charge-ops db vacuum` (VACUUM ANALYZE) or ANALYZE the table; check autovacuum is on.',
          }),
        )
      }
      return out
    }),
}

// ------------------------------------------------------------------ settings drift

const TIME_UNITS: Record<string, number> = {us: 0.001, ms: 1, s: 1000, min: 60_000, h: 3_600_000, d: 86_400_000}
const MEMORY_UNITS: Record<string, number> = {B: 1, kB: 1024, MB: 1024 ** 2, GB: 1024 ** 3, TB: 1024 ** 4}

/** Normalises a postgresql.conf value to pg_settings' base unit so 8GB == 1048576 (8kB). */
export function normaliseSetting(value: string, unit: string | null, vartype: string): string {
  const v = value.trim().replace(/^'(.*)'$/s, '$1')
  if (vartype === 'bool') {
    const l = v.toLowerCase()
    if (['on', 'true', 'yes', '1'].includes(l)) return 'on'
    if (['off', 'false', 'no', '0'].includes(l)) return 'off'
    return l
  }
  if ((vartype === 'integer' || vartype === 'real') && unit) {
    const m = /^(-?[\d.]+)\s*([a-zA-Z]*)$/.exec(v)
    if (!m) return v
    const n = Number(m[1])
    const um = /^(\d*)([a-zA-Z]+)$/.exec(unit)
    const baseCount = um && um[1] ? Number(um[1]) : 1
    const baseUnit = um ? um[2] : unit
    const table = baseUnit in TIME_UNITS ? TIME_UNITS : MEMORY_UNITS
    const given = m[2] ? table[m[2]] : table[baseUnit]
    const base = table[baseUnit]
    if (given === undefined || base === undefined) return v
    return String(Math.round(((n * (m[2] ? given : base * baseCount)) / (base * baseCount)) * 1000) / 1000)
  }
  return vartype === 'enum' || vartype === 'string' ? v.toLowerCase() : v
}

export function parseConfAssignments(text: string): Map<string, {value: string; line: number}> {
  const out = new Map<string, {value: string; line: number}>()
  text.split('\n').forEach((raw, i) => {
    const line = raw.replace(/(^|\s)#.*$/, '').trim()
    const m = /^([a-zA-Z_][a-zA-Z0-9_.]*)\s*(?:=\s*|\s+)(.*)$/.exec(line)
    if (m && m[2] !== '' && !['include', 'include_if_exists', 'include_dir'].includes(m[1]))
      out.set(m[1].toLowerCase(), {value: m[2].trim(), line: i + 1})
  })
  return out
}

const settingsDrift: Check = {
  id: 'pg.settings_drift',
  component: C,
  title: 'Settings that differ from the chosen configuration',
  run: (ctx) =>
    withPg(ctx, 'pg.settings_drift', 'Settings drift', async () => {
      const confPath = ctx.settings.yaml.paths.postgresqlConf
      if (!confPath)
        return [
          measure(ctx, {
            id: 'pg.settings_drift',
            component: C,
            title: 'Settings drift',
            value: null,
            unit: 'count',
            status: 'ok',
            message: 'no reference: set paths.postgresqlConf in charge-ops.yaml (the file init wrote)',
          }),
        ]
      const {isAbsolute, resolve} = await import('node:path')
      const file = isAbsolute(confPath) ? confPath : resolve(ctx.settings.baseDir, confPath)
      let text: string
      try {
        text = await readFile(file, 'utf8')
      } catch (error) {
        return [
          unknown(
            C,
            'pg.settings_drift',
            'Settings drift',
            `cannot read ${file}: ${(error as Error).message}`,
            'Fix paths.postgresqlConf in charge-ops.yaml.',
          ),
        ]
      }
      const wanted = parseConfAssignments(text)
      const actual = new Map(
        (
          await ctx.pg!.query<{
            name: string
            setting: string
            unit: string | null
            vartype: string
            pending_restart: boolean
          }>(sql.SETTINGS_SQL)
        ).rows.map((r) => [r.name.toLowerCase(), r]),
      )
      const ignore = new Set([
        'port',
        'listen_addresses',
        'unix_socket_directories',
        'data_directory',
        'hba_file',
        'ident_file',
        'include_dir',
        'config_file',
      ])
      const drift: {name: string; expected: string; actual: string; line: number}[] = []
      for (const [name, w] of wanted) {
        const a = actual.get(name)
        if (!a || ignore.has(name)) continue
        const exp = normaliseSetting(w.value, a.unit, a.vartype)
        const got = normaliseSetting(a.setting, a.unit, a.vartype)
        if (exp !== got)
          drift.push({
            name,
            expected: w.value.replace(/^'(.*)'$/s, '$1'),
            actual: `${a.setting}${a.unit ? ` (${a.unit})` : ''}${a.pending_restart ? ' (changed in the server’s files, restart pending)' : ''}`,
            line: w.line,
          })
      }
      return [
        measure(ctx, {
          id: 'pg.settings_drift',
          component: C,
          title: 'Settings that differ from paths.postgresqlConf',
          value: drift.length,
          unit: 'count',
          message:
            drift.length === 0
              ? `all ${wanted.size} settings of ${file} are in effect`
              : drift
                  .slice(0, 4)
                  .map((d) => `${d.name}: ${file}:${d.line} wants ${d.expected}, server has ${d.actual}`)
                  .join('; ') + (drift.length > 4 ? `; and ${drift.length - 4} more` : ''),
          remedy:
            'Reload (SELECT pg_reload_conf()) or restart PostgreSQL for settings that need it; check ALTER SYSTEM overrides in postgresql.auto.conf.',
          details: {drift},
        }),
      ]
    }),
}

const dataDisk: Check = {
  id: 'disk.free_pct',
  component: C,
  title: 'Free disk for the PostgreSQL data directory',
  run: (ctx) =>
    withPg(ctx, 'disk.free_pct', 'Free disk (data dir)', async () => {
      const f = await serverFacts(ctx)
      if (!f.data_directory || !ctx.pgLocal || !existsSync(f.data_directory)) return []
      const d = await diskUsage(f.data_directory)
      return [diskResult(ctx, d, 'postgres-data')]
    }),
}

export function diskResult(
  ctx: Pick<CheckContext, 'thresholds'>,
  d: {path: string; freeBytes: number; totalBytes: number; freePct: number},
  role: string,
): CheckResult {
  return measure(ctx, {
    id: 'disk.free_pct',
    component: 'disk',
    title: 'Free disk space',
    value: pct(d.freePct),
    unit: '%',
    labels: {role, path: d.path},
    message: `${formatBytes(d.freeBytes)} free of ${formatBytes(d.totalBytes)} (${pct(d.freePct)}%) for ${role}`,
    remedy:
      'Free space or grow the volume (guide 6.1.2: enable LVM / cloud disk auto-expansion); prune old backups with `charge-ops backup prune`.',
  })
}

export const SIZING_CONNECTIONS: Check = {
  id: 'sizing.connections_pct',
  component: 'sizing',
  title: 'Service pool vs max_connections',
  run: (ctx) =>
    withPg(ctx, 'sizing.connections_pct', 'Service pool vs max_connections', async () => {
      const f = await serverFacts(ctx)
      const svc = ctx.settings.yaml.service
      const usable = f.max_connections - f.reserved
      const needed = svc.pgbouncer ? svc.pgbouncer.defaultPoolSize : svc.workers * svc.poolSize
      const how = svc.pgbouncer
        ? `PgBouncer default_pool_size ${svc.pgbouncer.defaultPoolSize}`
        : `${svc.workers} workers x pool ${svc.poolSize}`
      return [
        measure(ctx, {
          id: 'sizing.connections_pct',
          component: 'sizing',
          title: 'Service connection demand vs max_connections',
          value: pct((needed / usable) * 100),
          unit: '%',
          message: `${how} = ${needed} connections of ${usable} usable`,
          remedy:
            'Lower service.poolSize / workers, use PgBouncer transaction pooling (guide 6.1.5), or raise max_connections.',
        }),
      ]
    }),
}

export const POSTGRES_CHECKS: Check[] = [
  databaseSize,
  dataDisk,
  databaseStats,
  connections,
  wraparound,
  sessions,
  replication,
  indexes,
  bloat,
  archiver,
  sequences,
  maintenanceAge,
  settingsDrift,
  SIZING_CONNECTIONS,
]
