/**
 * Prometheus alert rules for the charge-ops stack, as data: each alert has a severity, a summary,
 * a description that names the charge-ops command to run, and the runbook section of
 * docs/monitoring.md (`runbook_url`). Thresholds come from the options (the backup schedule,
 * the SLO), so the generated file and its unit tests (`promtool test rules`) agree.
 */
export type Severity = 'critical' | 'warning'

export interface AlertRule {
  alert: string
  expr: string
  for?: string
  labels: {severity: Severity} & Record<string, string>
  annotations: {summary: string; description: string; runbook_url: string}
}

export interface RecordingRule {
  record: string
  expr: string
}

export interface RuleGroup {
  name: string
  interval?: string
  rules: (AlertRule | RecordingRule)[]
}

export interface RuleOptions {
  /** seconds a backup of each kind may be old before the alert fires (schedule interval + grace) */
  backupMaxAgeSeconds: Record<string, number>
  /** a passing restore drill must be younger than this */
  drillMaxAgeSeconds: number
  /** the recovery-point objective: WAL archived at most this long ago */
  rpoSeconds: number
  /** a base backup must be younger than this while archiving is on */
  baseMaxAgeSeconds: number
  /** availability SLO of the API (fraction of non-5xx requests), e.g. 0.995 */
  availabilityObjective: number
  /** latency SLO: this fraction of requests faster than latencyThresholdSeconds (a histogram bucket) */
  latencyObjective: number
  latencyThresholdSeconds: number
  /** base URL of the runbook (docs/monitoring.md); anchors are appended */
  runbookBase: string
  /** `for:` of the alerts that wait out blips; tests shorten it */
  pendingFor: string
  /** `for:` of the "is down" alerts (a restart should not page) */
  downFor: string
}

export const DEFAULT_RULE_OPTIONS: Omit<RuleOptions, 'backupMaxAgeSeconds'> = {
  drillMaxAgeSeconds: 8 * 86_400,
  rpoSeconds: 900,
  baseMaxAgeSeconds: 8 * 86_400,
  availabilityObjective: 0.995,
  latencyObjective: 0.99,
  latencyThresholdSeconds: 0.5,
  runbookBase: 'https://github.com/charge-ops/charge-ops/blob/main/docs/monitoring.md',
  pendingFor: '5m',
  downFor: '1m',
}

/** Routes that are not user traffic and must not spend the error budget. */
const NOT_TRAFFIC = 'route!~"/metrics|/health"'
/** The Google SRE workbook's multi-window, multi-burn-rate table (30-day budget). */
export const BURN_WINDOWS = [
  {long: '1h', short: '5m', factor: 14.4, severity: 'critical' as const, for: '2m'},
  {long: '6h', short: '30m', factor: 6, severity: 'critical' as const, for: '15m'},
  {long: '1d', short: '2h', factor: 3, severity: 'warning' as const, for: '1h'},
  {long: '3d', short: '6h', factor: 1, severity: 'warning' as const, for: '3h'},
]
const SLO_WINDOWS = [...new Set(BURN_WINDOWS.flatMap((w) => [w.short, w.long]))]

const hours = (s: number) => (s % 3600 === 0 ? `${s / 3600} h` : s >= 60 ? `${Math.round(s / 60)} min` : `${s} s`)
const days = (s: number) => (s % 86_400 === 0 ? `${s / 86_400} days` : hours(s))

/** The anchor of an alert's runbook section in docs/monitoring.md (`### ChargeOpsBackupTooOld` → `#chargeopsbackuptooold`). */
export const runbookAnchor = (alert: string) => alert.toLowerCase()

/** A rule group's alert builder: the runbook link and the optional `for:` and labels filled in the same way for every alert. */
type Alert = (
  alert: string,
  severity: Severity,
  expr: string,
  summary: string,
  description: string,
  forDuration?: string,
  extra?: Record<string, string>,
) => AlertRule

export function ruleGroups(o: RuleOptions): RuleGroup[] {
  const a = alertBuilder(o)
  return [
    {name: 'charge-ops-backups', rules: backupAlerts(o, a)},
    {name: 'charge-ops-postgres', rules: postgresAlerts(o, a)},
    {name: 'charge-ops-redis', rules: redisAlerts(o, a)},
    {name: 'charge-ops-service', rules: serviceAlerts(o, a)},
    {name: 'charge-ops-slo', rules: sloRecordings(o)},
    {name: 'charge-ops-capacity', rules: capacityAlerts(a)},
  ]
}

function alertBuilder(o: RuleOptions): Alert {
  return (alert, severity, expr, summary, description, forDuration, extra = {}) => ({
    alert,
    expr,
    ...(forDuration ? {for: forDuration} : {}),
    labels: {severity, ...extra},
    annotations: {summary, description, runbook_url: `${o.runbookBase}#${runbookAnchor(alert)}`},
  })
}

function backupAlerts(o: RuleOptions, a: Alert): AlertRule[] {
  const tooOld: AlertRule[] = Object.entries(o.backupMaxAgeSeconds).map(([kind, max]) =>
    a(
      'ChargeOpsBackupTooOld',
      'critical',
      `time() - max by (stack, kind) (charge_ops_backup_last_success_timestamp_seconds{kind="${kind}"}) > ${max}`,
      `No successful ${kind} backup of {{ $labels.stack }} for {{ $value | humanizeDuration }}`,
      `The newest successful ${kind} backup is older than the schedule allows (${hours(max)}). Run \`charge-ops backup ${kind}\` now and read the job's log (/var/log/charge-ops/, \`kubectl logs job/…\`); \`charge-ops schedule list\` shows when it should have run.`,
      undefined,
      {kind},
    ),
  )
  return [
    ...tooOld,
    a(
      'ChargeOpsBackupFailing',
      'warning',
      'charge_ops_backup_last_failure_timestamp_seconds > on (stack, kind) (charge_ops_backup_last_success_timestamp_seconds or on (stack, kind) charge_ops_backup_last_failure_timestamp_seconds * 0)',
      'The last {{ $labels.kind }} backup of {{ $labels.stack }} failed',
      'The newest attempt failed after the last success. Run `charge-ops backup list --all` and the job again by hand (`charge-ops backup {{ $labels.kind }}`); its error names the cause.',
    ),
    a(
      'ChargeOpsRestoreDrillFailing',
      'critical',
      'charge_ops_backup_restore_drill_last_failure_timestamp_seconds > on (stack, kind) (charge_ops_backup_restore_drill_last_success_timestamp_seconds or on (stack, kind) charge_ops_backup_restore_drill_last_failure_timestamp_seconds * 0)',
      'The restore drill of the {{ $labels.kind }} backup failed',
      'The newest `backup verify --restore-drill` did not restore the backup with matching row counts (or could not run). Run `charge-ops backup verify latest --restore-drill` and read its error; do not rely on the backup until it passes.',
    ),
    a(
      'ChargeOpsRestoreDrillStale',
      'warning',
      `time() - max by (stack, kind) (charge_ops_backup_restore_drill_last_success_timestamp_seconds) > ${o.drillMaxAgeSeconds}`,
      'No passing restore drill for {{ $value | humanizeDuration }}',
      `No restore drill passed in ${days(o.drillMaxAgeSeconds)}: nobody knows whether the backups restore. Run \`charge-ops backup verify latest --restore-drill\`; check the verify job in \`charge-ops schedule list\`.`,
    ),
    a(
      'ChargeOpsBaseBackupMissing',
      'critical',
      `(max by (instance) (pg_stat_archiver_archived_count) > 0 unless on () count(charge_ops_backup_last_success_timestamp_seconds{kind="base"})) or on () (time() - max(charge_ops_backup_last_success_timestamp_seconds{kind="base"}) > ${o.baseMaxAgeSeconds})`,
      'WAL is archived but there is no recent base backup',
      `Archived WAL is useless for point-in-time recovery without a base backup to replay it onto (none, or older than ${days(o.baseMaxAgeSeconds)}). Run \`charge-ops backup base\` and schedule it.`,
      o.pendingFor,
    ),
  ]
}

function postgresAlerts(o: RuleOptions, a: Alert): AlertRule[] {
  return [
    a(
      'ChargeOpsPostgresDown',
      'critical',
      'pg_up == 0 or up{job="postgres"} == 0',
      'PostgreSQL is down (or the exporter cannot reach it)',
      'postgres_exporter cannot connect. Run `charge-ops doctor` (names the cause: refused, auth, DNS …) and `charge-ops service status`.',
      o.downFor,
    ),
    a(
      'ChargeOpsWalArchivingFailing',
      'critical',
      'increase(pg_stat_archiver_failed_count[10m]) > 0',
      'WAL archiving is failing on {{ $labels.instance }}',
      "archive_command failed {{ $value }} times in 10 minutes: the recovery point stops moving and pg_wal grows. Run `charge-ops capacity --only postgresql,backup` (pg.archive_failing names the WAL file) and read PostgreSQL's log; `charge-ops wal push` errors name the repository problem.",
    ),
    a(
      'ChargeOpsWalArchiveQueueFull',
      'critical',
      'max by (stack) (charge_ops_pg_archive_ready_backlog) >= on (stack) max by (stack) (charge_ops_pg_archive_ready_backlog_threshold{level="critical"})',
      '{{ $value }} WAL segments wait in pg_wal to be archived',
      "More WAL waits in pg_wal than the limit (archive_command's `--queue-max`, else the capacity threshold): the repository has been down for long, or archiving is slower than the writes. charge-ops drops nothing, so pg_wal grows until the data disk is full. Fix the repository (PostgreSQL's log has the archive_command error; `charge-ops wal check`), or archive in parallel (`wal push --async --process-max N`); `charge-ops capacity --only postgresql` (pg.archive_ready_backlog).",
    ),
    a(
      'ChargeOpsWalArchiveLagging',
      'critical',
      `pg_stat_archiver_last_archive_age > ${o.rpoSeconds} and pg_stat_archiver_archived_count > 0`,
      'The recovery point is {{ $value | humanizeDuration }} old',
      `No WAL segment archived for more than the RPO (${hours(o.rpoSeconds)}). Set archive_timeout (init does) and run \`charge-ops capacity --only postgresql,backup\` (backup.rpo_gap_seconds, pg.archive_lag_seconds).`,
      o.pendingFor,
    ),
    a(
      'ChargeOpsPostgresConnectionsNearLimit',
      'warning',
      'sum by (instance) (pg_stat_activity_count) / on (instance) (max by (instance) (pg_settings_max_connections) - max by (instance) (pg_settings_superuser_reserved_connections)) > 0.8',
      'PostgreSQL connections at {{ $value | humanizePercentage }} of the limit',
      'New connections will be refused soon. Run `charge-ops capacity --only postgresql,sizing` (sizing.connections_pct: workers x pool vs max_connections) and look for idle-in-transaction sessions; PgBouncer (init) pools them.',
      o.pendingFor,
    ),
    a(
      'ChargeOpsReplicationLag',
      'warning',
      'max by (instance, application_name) (pg_stat_replication_pg_wal_lsn_diff) > 16 * 1024 * 1024',
      'Replica {{ $labels.application_name }} is {{ $value | humanize1024 }}B behind',
      'The replica replays WAL slower than the primary writes it. Run `charge-ops capacity --only postgresql` (pg.replication_lag_bytes) and check the replica host (disk, network).',
      o.pendingFor,
    ),
    a(
      'ChargeOpsTransactionIdWraparound',
      'critical',
      'max by (stack) (charge_ops_pg_xid_wraparound_ratio) > 0.5',
      'Transaction IDs {{ $value | humanizePercentage }} of the way to wraparound',
      'PostgreSQL stops accepting writes before wraparound. Run `charge-ops db vacuum` (VACUUM freezes old rows) and look for long transactions or abandoned replication slots (`charge-ops capacity --only postgresql`).',
    ),
    a(
      'ChargeOpsDataDiskFullSoon',
      'critical',
      'min by (stack) (charge_ops_pg_data_disk_full_in_seconds) < 7 * 86400',
      'The PostgreSQL data disk fills in {{ $value | humanizeDuration }}',
      'At the growth fitted over the kept capacity history (`charge-ops capacity` names the window), the data disk is full within a week. Grow the volume, or `charge-ops db vacuum --full` bloated tables; `charge-ops capacity --only postgresql,host`.',
    ),
    a(
      'ChargeOpsDiskFillingFast',
      'warning',
      'predict_linear(node_filesystem_avail_bytes{fstype!~"tmpfs|overlay|squashfs"}[6h], 24 * 3600) < 0 and node_filesystem_avail_bytes{fstype!~"tmpfs|overlay|squashfs"} / node_filesystem_size_bytes < 0.2',
      '{{ $labels.mountpoint }} on {{ $labels.instance }} fills within a day',
      'Free space on this filesystem falls to zero within 24 h at the last 6 h rate. Run `charge-ops capacity` (disk.free_pct names data dir, repository, uploads, Chroma) and `charge-ops backup prune --dry-run`.',
      '30m',
    ),
  ]
}

function redisAlerts(o: RuleOptions, a: Alert): AlertRule[] {
  return [
    a(
      'ChargeOpsRedisDown',
      'critical',
      'redis_up == 0 or up{job="redis"} == 0',
      'Redis is down (or the exporter cannot reach it)',
      'The analysis queue is in Redis: uploads are accepted but nothing is analysed. Run `charge-ops doctor` (redis.writable names the refusal: MISCONF, OOM, auth) and `charge-ops service status`.',
      o.downFor,
    ),
    a(
      'ChargeOpsRedisMemoryNearMax',
      'warning',
      'redis_memory_used_bytes / (redis_memory_max_bytes > 0) > 0.9',
      'Redis uses {{ $value | humanizePercentage }} of maxmemory',
      'Past maxmemory Redis evicts keys (queued jobs) or refuses writes. Run `charge-ops capacity --only redis,sizing` (sizing.redis_maxmemory_pct, the policy) and raise maxmemory or the container limit.',
      o.pendingFor,
    ),
    a(
      'ChargeOpsRedisEvictions',
      'critical',
      'increase(redis_evicted_keys_total[10m]) > 0',
      'Redis evicted {{ $value }} keys in 10 minutes',
      'Evicted keys can be queued analysis jobs. Set maxmemory-policy noeviction and raise maxmemory: `charge-ops capacity --only redis,sizing`.',
    ),
  ]
}

function serviceAlerts(o: RuleOptions, a: Alert): AlertRule[] {
  // multi-window burn-rate alerts of one SLO (BURN_WINDOWS)
  const burn = (kind: 'errors' | 'slow', budget: number) =>
    BURN_WINDOWS.map((w) =>
      a(
        kind === 'errors' ? 'ChargeOpsApiErrorBudgetBurn' : 'ChargeOpsApiLatencyBudgetBurn',
        w.severity,
        `charge_analysis:http_${kind}:ratio_rate${w.long} > ${w.factor} * ${budget} and charge_analysis:http_${kind}:ratio_rate${w.short} > ${w.factor} * ${budget}`,
        kind === 'errors'
          ? `API error budget burning ${w.factor}x too fast (${w.long}/${w.short} windows)`
          : `API latency budget burning ${w.factor}x too fast (${w.long}/${w.short} windows)`,
        kind === 'errors'
          ? `{{ $value | humanizePercentage }} of API requests failed (5xx) over ${w.long}, against an objective of ${o.availabilityObjective * 100} % success: at this rate the 30-day budget lasts ${Math.round((30 * 24) / w.factor)} h. Run \`charge-ops doctor\` (names the failing store) and read the service's logs/error.log.`
          : `{{ $value | humanizePercentage }} of API requests took longer than ${o.latencyThresholdSeconds} s over ${w.long} (objective ${o.latencyObjective * 100} % faster). Run \`charge-ops db slow-queries\` and \`charge-ops capacity --only postgresql,redis\`.`,
        w.for,
        {window: w.long},
      ),
    )

  return [
    a(
      'ChargeOpsServiceDown',
      'critical',
      'up{job="charge-analysis"} == 0 or absent(up{job="charge-analysis"})',
      'The charge-analysis API does not answer /metrics',
      'Prometheus cannot scrape the API. Run `charge-ops service status` and `charge-ops doctor`; `charge-ops service start` starts it.',
      o.downFor,
    ),
    a(
      'ChargeOpsServiceDependencyDown',
      'critical',
      'max by (dependency) (1 - charge_analysis_dependency_up) == 1',
      'The API cannot reach {{ $labels.dependency }}',
      'Every API process reports that {{ $labels.dependency }} does not answer: requests that need it fail. Run `charge-ops doctor` (names the cause) and `charge-ops service status`.',
      o.downFor,
    ),
    a(
      'ChargeOpsQueueGrowing',
      'warning',
      'max without (instance, pod) (charge_analysis_queue_depth{state="queued"}) > 10 and max without (instance, pod) (deriv(charge_analysis_queue_depth{state="queued"}[15m])) > 0',
      '{{ $value }} analyses queued and the queue keeps growing',
      'Workers do not keep up (or none runs). Run `charge-ops service status` (workers alive?) and `charge-ops doctor`; add workers (service.workers in charge-ops.yaml).',
      '15m',
    ),
    a(
      'ChargeOpsAnalysesFailing',
      'warning',
      'max without (instance, pod, status) (delta(charge_analysis_analyses{status="failed"}[30m])) > 0 and max without (instance, pod, status) (delta(charge_analysis_analyses{status="failed"}[30m])) / (max without (instance, pod, status) (delta(charge_analysis_analyses{status="failed"}[30m])) + max without (instance, pod, status) (delta(charge_analysis_analyses{status="done"}[30m]))) > 0.1',
      'More than 10 % of analyses failed in the last 30 minutes',
      'Analyses end in status failed. Read the worker log (logs/ of the service) and `charge-ops doctor` (Chroma, embeddings, PostgreSQL); failed analyses name their error in GET /api/v1/analyses/:id.',
    ),
    ...burn('errors', Math.round((1 - o.availabilityObjective) * 1e6) / 1e6),
    ...burn('slow', Math.round((1 - o.latencyObjective) * 1e6) / 1e6),
    a(
      'ChargeOpsCertificateExpiry',
      'warning',
      'min by (instance) (probe_ssl_earliest_cert_expiry) - time() < 14 * 86400',
      'The TLS certificate of {{ $labels.instance }} expires in {{ $value | humanizeDuration }}',
      'Renew it (certbot renew, or your ACME client) and reload nginx; `charge-ops doctor` checks the stack behind it.',
    ),
  ]
}

/** The error and slow-request ratios of each SLO window, recorded once for the burn-rate alerts. */
function sloRecordings(o: RuleOptions): RecordingRule[] {
  const rate = (w: string, filter = '') =>
    `sum by (service) (rate(charge_analysis_http_requests_total{${NOT_TRAFFIC}${filter}}[${w}]))`
  return SLO_WINDOWS.flatMap((w) => [
    {record: `charge_analysis:http_errors:ratio_rate${w}`, expr: `${rate(w, ',status=~"5.."')} / ${rate(w)}`},
    {
      record: `charge_analysis:http_slow:ratio_rate${w}`,
      expr: `1 - (sum by (service) (rate(charge_analysis_http_request_duration_seconds_bucket{${NOT_TRAFFIC},le="${o.latencyThresholdSeconds}"}[${w}])) / sum by (service) (rate(charge_analysis_http_request_duration_seconds_count{${NOT_TRAFFIC}}[${w}])))`,
    },
  ])
}

function capacityAlerts(a: Alert): AlertRule[] {
  return [
    a(
      'ChargeOpsCapacityReportStale',
      'warning',
      'time() - max by (stack) (charge_ops_capacity_last_run_timestamp_seconds) > 2 * 86400',
      'The capacity textfile is {{ $value | humanizeDuration }} old',
      "Several alerts (disk full, wraparound) read the capacity job's textfile. Run `charge-ops capacity --format prometheus --output <textfile dir>/charge_ops_capacity.prom` and check the capacity job (`charge-ops schedule list`).",
    ),
  ]
}

/**
 * The capacity metrics renamed to base units (docs/monitoring.md) under their old names, for one
 * release, so existing dashboards and alerts keep working while they move; removed in the next.
 * `pg.cache_hit_ratio` kept its name (only its unit changed), so it cannot be recorded here.
 */
export function legacyNameRules(renames: readonly {legacy: string; name: string; factor: number}[]): RuleGroup {
  return {
    name: 'charge-ops-legacy-names',
    rules: renames
      .filter((r) => r.legacy !== r.name)
      .flatMap((r) => [
        {record: r.legacy, expr: r.factor >= 1 ? `${r.name} / ${r.factor}` : `${r.name} * ${Math.round(1 / r.factor)}`},
        {
          record: `${r.legacy}_threshold`,
          expr:
            r.factor >= 1 ? `${r.name}_threshold / ${r.factor}` : `${r.name}_threshold * ${Math.round(1 / r.factor)}`,
        },
      ]),
  }
}
