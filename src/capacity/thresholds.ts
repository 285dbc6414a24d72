/**
 * Thresholds: documented defaults, overridden per check id by charge-ops.yaml
 * `thresholds: {<id>: {warning, critical}}`.
 *
 * Direction follows from the numbers: when warning > critical, lower values are worse
 * (free disk, cache hit ratio, days until full); otherwise higher values are worse.
 */
import type {CheckStatus, Thresholds} from './types.js'

export interface ThresholdDefault extends Thresholds {
  unit: string
  description: string
}

export const DEFAULT_THRESHOLDS: Record<string, ThresholdDefault> = {
  'disk.free_pct': {
    warning: 15,
    critical: 5,
    unit: '%',
    description: 'free space on the filesystem of the data dir, backup repository, UPLOADS_DIR, Chroma dir',
  },
  'pg.days_until_full': {
    warning: 30,
    critical: 7,
    unit: 'days',
    description: 'days until the data dir filesystem fills at the growth rate since the previous run',
  },
  'pg.cache_hit_ratio': {
    warning: 95,
    critical: 90,
    unit: '%',
    description: 'shared buffer hit ratio (pg_stat_database), evaluated after 10,000 block reads',
  },
  'pg.deadlocks': {warning: 1, critical: 100, unit: 'count', description: 'deadlocks since the statistics were reset'},
  'pg.connections_pct': {
    warning: 80,
    critical: 95,
    unit: '%',
    description: 'connections in use vs max_connections - superuser_reserved_connections',
  },
  'pg.xid_wraparound_pct': {
    warning: 50,
    critical: 75,
    unit: '%',
    description: 'age(datfrozenxid) of the oldest database vs 2^31',
  },
  'pg.long_running_seconds': {warning: 300, critical: 3600, unit: 's', description: 'the longest-running active query'},
  'pg.idle_in_transaction_seconds': {
    warning: 60,
    critical: 600,
    unit: 's',
    description: 'the oldest idle-in-transaction session',
  },
  'pg.replication_lag_bytes': {
    warning: 16 * 1024 ** 2,
    critical: 1024 ** 3,
    unit: 'bytes',
    description: 'replay lag of the slowest replica',
  },
  'pg.unused_index_bytes': {
    warning: 64 * 1024 ** 2,
    critical: 10 * 1024 ** 3,
    unit: 'bytes',
    description: 'total size of never-scanned, non-unique indexes',
  },
  'pg.duplicate_indexes': {
    warning: 1,
    critical: 1000,
    unit: 'count',
    description: 'indexes whose columns equal or prefix another index of the same table',
  },
  'pg.table_bloat_pct': {
    warning: 40,
    critical: 70,
    unit: '%',
    description: 'estimated bloat of the worst table larger than 8 MB',
  },
  'pg.index_bloat_pct': {
    warning: 50,
    critical: 80,
    unit: '%',
    description: 'estimated bloat of the worst index larger than 8 MB',
  },
  'pg.archive_failing': {
    warning: 1,
    critical: 1,
    unit: 'bool',
    description: 'pg_stat_archiver: the last archive attempt failed',
  },
  'pg.archive_lag_seconds': {
    warning: 900,
    critical: 3600,
    unit: 's',
    description: 'time since the last WAL segment was archived (archive_mode on)',
  },
  'pg.archive_ready_backlog': {
    warning: 8,
    critical: 64,
    unit: 'segments',
    description:
      'WAL segments waiting for archive_command in pg_wal/archive_status (.ready): pg_wal grows by 16 MB each',
  },
  'pg.sequence_used_pct': {warning: 75, critical: 90, unit: '%', description: 'the sequence closest to its maximum'},
  'pg.vacuum_age_days': {
    warning: 7,
    critical: 30,
    unit: 'days',
    description: 'longest time a modified table went without (auto)vacuum',
  },
  'pg.analyze_age_days': {
    warning: 7,
    critical: 30,
    unit: 'days',
    description: 'longest time a modified table went without (auto)analyze',
  },
  'pg.settings_drift': {
    warning: 1,
    critical: 1000,
    unit: 'count',
    description: 'settings that differ from paths.postgresqlConf',
  },
  'sizing.connections_pct': {
    warning: 80,
    critical: 100,
    unit: '%',
    description: "the service's workers x pool size (or PgBouncer's pool) vs usable max_connections",
  },
  'sizing.redis_maxmemory_pct': {
    warning: 75,
    critical: 90,
    unit: '%',
    description: 'Redis maxmemory vs the container (cgroup) or host memory',
  },
  'redis.memory_used_pct': {warning: 80, critical: 95, unit: '%', description: 'used_memory vs maxmemory'},
  'redis.evicted_keys': {
    warning: 1,
    critical: 1000,
    unit: 'count',
    description: 'keys evicted since start (a job queue must not lose keys)',
  },
  'redis.rejected_connections': {
    warning: 1,
    critical: 100,
    unit: 'count',
    description: 'connections rejected (maxclients) since start',
  },
  'redis.last_save_age_seconds': {
    warning: 3600,
    critical: 86_400,
    unit: 's',
    description: 'time since the last successful RDB save (when save points are set)',
  },
  'backup.age_hours': {
    warning: 26,
    critical: 50,
    unit: 'h',
    description: 'age of the newest complete, verified backup of each kind',
  },
  'backup.rpo_gap_seconds': {
    warning: 900,
    critical: 3600,
    unit: 's',
    description: 'recovery-point gap: time since the newest archived WAL in the repository',
  },
  'memory.available_pct': {
    warning: 10,
    critical: 5,
    unit: '%',
    description: 'available memory of the container (cgroup) or host',
  },
}

export type ThresholdOverrides = Record<string, Thresholds> | undefined

/** The thresholds for a check id: charge-ops.yaml first, then the documented default. */
export function thresholdsFor(id: string, overrides: ThresholdOverrides): Thresholds | undefined {
  const o = overrides?.[id]
  if (o) return {warning: o.warning, critical: o.critical}
  const d = DEFAULT_THRESHOLDS[id]
  return d ? {warning: d.warning, critical: d.critical} : undefined
}

/** Evaluates a value against thresholds; direction is inferred (see the file comment). */
export function evaluate(value: number | null | undefined, thresholds: Thresholds | undefined): CheckStatus {
  if (value === null || value === undefined || Number.isNaN(value)) return 'unknown'
  if (!thresholds) return 'ok'
  const lowerIsWorse = thresholds.warning > thresholds.critical
  if (lowerIsWorse) {
    if (value <= thresholds.critical) return 'critical'
    if (value <= thresholds.warning) return 'warning'
    return 'ok'
  }
  if (value >= thresholds.critical) return 'critical'
  if (value >= thresholds.warning) return 'warning'
  return 'ok'
}
