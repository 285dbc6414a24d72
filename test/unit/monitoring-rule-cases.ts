/**
 * `promtool test rules` cases for the generated alert rules (test/unit/monitoring-rules.test.ts):
 * for each alert, synthetic series on which it must fire (with exactly these labels) and series
 * on which it must stay quiet. Time starts at 0, so `time()` is the evaluation time in seconds.
 */
type Labels = Record<string, string>
interface Case {
  eval_time: string
  alertname: string
  exp_alerts: {exp_labels: Labels}[]
}
export interface RuleTest {
  name: string
  interval: string
  input_series: {series: string; values: string}[]
  alert_rule_test: Case[]
}

const fires = (alertname: string, at: string, ...labels: Labels[]): Case => ({
  eval_time: at,
  alertname,
  exp_alerts: labels.map((l) => ({exp_labels: l})),
})
const quiet = (alertname: string, at: string): Case => ({eval_time: at, alertname, exp_alerts: []})
const s = (series: string, values: string) => ({series, values})
/** one test whose series make `alert` fire at `at`, and one whose series keep it quiet */
const pair = (
  alert: string,
  interval: string,
  at: string,
  firing: {series: ReturnType<typeof s>[]; labels: Labels[]},
  calm: ReturnType<typeof s>[],
): RuleTest[] => [
  {
    name: `${alert} fires`,
    interval,
    input_series: firing.series,
    alert_rule_test: [fires(alert, at, ...firing.labels)],
  },
  {name: `${alert} stays quiet`, interval, input_series: calm, alert_rule_test: [quiet(alert, at)]},
]

const ok = 'charge_ops_backup_last_success_timestamp_seconds'
// the capacity textfile's thresholds for the .ready backlog: archive_command's --queue-max 4GB = 256 segments
const queueThresholds = [
  s('charge_ops_pg_archive_ready_backlog_threshold{stack="s",level="critical"}', '256x10'),
  s('charge_ops_pg_archive_ready_backlog_threshold{stack="s",level="warning"}', '128x10'),
]
const fail = 'charge_ops_backup_last_failure_timestamp_seconds'
const drillOk = 'charge_ops_backup_restore_drill_last_success_timestamp_seconds'
const drillFail = 'charge_ops_backup_restore_drill_last_failure_timestamp_seconds'
const req = (status: string) =>
  `charge_analysis_http_requests_total{service="charge-analysis",route="/api/v1/uploads",method="POST",status="${status}"}`
const bucket = (le: string) =>
  `charge_analysis_http_request_duration_seconds_bucket{service="charge-analysis",route="/api/v1/analyses/:id",method="GET",le="${le}"}`
const count =
  'charge_analysis_http_request_duration_seconds_count{service="charge-analysis",route="/api/v1/analyses/:id",method="GET"}'
const fs = 'device="/dev/sda1",fstype="ext4",instance="n",mountpoint="/"'

export const RULE_TESTS: RuleTest[] = [
  // the example: a daily db backup (limit 26 h) 27 h old fires, 23 h old does not
  {
    name: 'ChargeOpsBackupTooOld: daily db backup 23 h vs 27 h old',
    interval: '10m',
    input_series: [s(`${ok}{kind="db",stack="s"}`, '0x200'), s(`${ok}{kind="files",stack="s"}`, '0+600x200')],
    alert_rule_test: [
      quiet('ChargeOpsBackupTooOld', '23h'),
      fires('ChargeOpsBackupTooOld', '27h', {kind: 'db', stack: 's', severity: 'critical'}),
    ],
  },
  ...pair(
    'ChargeOpsBackupFailing',
    '1m',
    '10m',
    {
      series: [s(`${ok}{kind="db",stack="s"}`, '50x20'), s(`${fail}{kind="db",stack="s"}`, '100x20')],
      labels: [{kind: 'db', stack: 's', severity: 'warning'}],
    },
    [s(`${ok}{kind="db",stack="s"}`, '100x20'), s(`${fail}{kind="db",stack="s"}`, '50x20')],
  ),
  ...pair(
    'ChargeOpsRestoreDrillFailing',
    '1m',
    '10m',
    {
      series: [s(`${drillFail}{kind="db",stack="s"}`, '100x20')],
      labels: [{kind: 'db', stack: 's', severity: 'critical'}],
    },
    [s(`${drillOk}{kind="db",stack="s"}`, '100x20'), s(`${drillFail}{kind="db",stack="s"}`, '50x20')],
  ),
  {
    name: 'ChargeOpsRestoreDrillStale: 7 vs 9 days since the last passing drill',
    interval: '1h',
    input_series: [s(`${drillOk}{kind="db",stack="s"}`, '0x230')],
    alert_rule_test: [
      quiet('ChargeOpsRestoreDrillStale', '7d'),
      fires('ChargeOpsRestoreDrillStale', '9d', {kind: 'db', stack: 's', severity: 'warning'}),
    ],
  },
  ...pair(
    'ChargeOpsBaseBackupMissing',
    '1m',
    '10m',
    {
      series: [s('pg_stat_archiver_archived_count{instance="pg"}', '5x20')],
      labels: [{instance: 'pg', severity: 'critical'}],
    },
    [s('pg_stat_archiver_archived_count{instance="pg"}', '5x20'), s(`${ok}{kind="base",stack="s"}`, '0x20')],
  ),
  ...pair(
    'ChargeOpsPostgresDown',
    '1m',
    '5m',
    {series: [s('pg_up{instance="pg"}', '0x10')], labels: [{instance: 'pg', severity: 'critical'}]},
    [s('pg_up{instance="pg"}', '1x10')],
  ),
  ...pair(
    'ChargeOpsWalArchivingFailing',
    '1m',
    '15m',
    {
      series: [s('pg_stat_archiver_failed_count{instance="pg"}', '0+1x20')],
      labels: [{instance: 'pg', severity: 'critical'}],
    },
    [s('pg_stat_archiver_failed_count{instance="pg"}', '3x20')],
  ),
  // the capacity textfile: 300 segments waiting, archive_command's --queue-max 4GB = 256 (critical threshold)
  ...pair(
    'ChargeOpsWalArchiveQueueFull',
    '1m',
    '5m',
    {
      series: [s('charge_ops_pg_archive_ready_backlog{stack="s"}', '300x10'), ...queueThresholds],
      labels: [{stack: 's', severity: 'critical'}],
    },
    [s('charge_ops_pg_archive_ready_backlog{stack="s"}', '200x10'), ...queueThresholds],
  ),
  ...pair(
    'ChargeOpsWalArchiveLagging',
    '1m',
    '10m',
    {
      series: [
        s('pg_stat_archiver_last_archive_age{instance="pg"}', '1000x20'),
        s('pg_stat_archiver_archived_count{instance="pg"}', '5x20'),
      ],
      labels: [{instance: 'pg', severity: 'critical'}],
    },
    [
      s('pg_stat_archiver_last_archive_age{instance="pg"}', '100x20'),
      s('pg_stat_archiver_archived_count{instance="pg"}', '5x20'),
    ],
  ),
  ...pair(
    'ChargeOpsPostgresConnectionsNearLimit',
    '1m',
    '10m',
    {
      series: [
        s('pg_stat_activity_count{instance="pg",datname="charge",state="active"}', '90x20'),
        s('pg_settings_max_connections{instance="pg"}', '100x20'),
        s('pg_settings_superuser_reserved_connections{instance="pg"}', '3x20'),
      ],
      labels: [{instance: 'pg', severity: 'warning'}],
    },
    [
      s('pg_stat_activity_count{instance="pg",datname="charge",state="active"}', '10x20'),
      s('pg_settings_max_connections{instance="pg"}', '100x20'),
      s('pg_settings_superuser_reserved_connections{instance="pg"}', '3x20'),
    ],
  ),
  ...pair(
    'ChargeOpsReplicationLag',
    '1m',
    '10m',
    {
      series: [s('pg_stat_replication_pg_wal_lsn_diff{instance="pg",application_name="r1"}', '33554432x20')],
      labels: [{instance: 'pg', application_name: 'r1', severity: 'warning'}],
    },
    [s('pg_stat_replication_pg_wal_lsn_diff{instance="pg",application_name="r1"}', '1024x20')],
  ),
  ...pair(
    'ChargeOpsTransactionIdWraparound',
    '1m',
    '1m',
    {series: [s('charge_ops_pg_xid_wraparound_ratio', '0.6x5')], labels: [{severity: 'critical'}]},
    [s('charge_ops_pg_xid_wraparound_ratio', '0.1x5')],
  ),
  ...pair(
    'ChargeOpsDataDiskFullSoon',
    '1m',
    '1m',
    {series: [s('charge_ops_pg_data_disk_full_in_seconds', '259200x5')], labels: [{severity: 'critical'}]},
    [s('charge_ops_pg_data_disk_full_in_seconds', '5184000x5')],
  ),
  ...pair(
    'ChargeOpsDiskFillingFast',
    '1m',
    '60m',
    {
      series: [
        s(`node_filesystem_avail_bytes{${fs}}`, '190-0.2x100'),
        s(`node_filesystem_size_bytes{${fs}}`, '1000x100'),
      ],
      labels: [{device: '/dev/sda1', fstype: 'ext4', instance: 'n', mountpoint: '/', severity: 'warning'}],
    },
    [s(`node_filesystem_avail_bytes{${fs}}`, '150x100'), s(`node_filesystem_size_bytes{${fs}}`, '1000x100')],
  ),
  ...pair(
    'ChargeOpsRedisDown',
    '1m',
    '5m',
    {series: [s('redis_up{instance="r"}', '0x10')], labels: [{instance: 'r', severity: 'critical'}]},
    [s('redis_up{instance="r"}', '1x10')],
  ),
  ...pair(
    'ChargeOpsRedisMemoryNearMax',
    '1m',
    '10m',
    {
      series: [
        s('redis_memory_used_bytes{instance="r"}', '95x20'),
        s('redis_memory_max_bytes{instance="r"}', '100x20'),
      ],
      labels: [{instance: 'r', severity: 'warning'}],
    },
    // maxmemory 0 (no limit) is not "near the limit"
    [s('redis_memory_used_bytes{instance="r"}', '95x20'), s('redis_memory_max_bytes{instance="r"}', '0x20')],
  ),
  ...pair(
    'ChargeOpsRedisEvictions',
    '1m',
    '15m',
    {series: [s('redis_evicted_keys_total{instance="r"}', '0+5x20')], labels: [{instance: 'r', severity: 'critical'}]},
    [s('redis_evicted_keys_total{instance="r"}', '7x20')],
  ),
  ...pair(
    'ChargeOpsServiceDown',
    '1m',
    '5m',
    {
      series: [s('up{job="charge-analysis",instance="a"}', '0x10')],
      labels: [{job: 'charge-analysis', instance: 'a', severity: 'critical'}],
    },
    [s('up{job="charge-analysis",instance="a"}', '1x10')],
  ),
  ...pair(
    'ChargeOpsServiceDependencyDown',
    '1m',
    '5m',
    {
      series: [s('charge_analysis_dependency_up{dependency="redis",instance="a"}', '0x10')],
      labels: [{dependency: 'redis', severity: 'critical'}],
    },
    [s('charge_analysis_dependency_up{dependency="redis",instance="a"}', '1x10')],
  ),
  ...pair(
    'ChargeOpsQueueGrowing',
    '1m',
    '40m',
    {
      series: [s('charge_analysis_queue_depth{state="queued",instance="a"}', '0+2x60')],
      labels: [{state: 'queued', severity: 'warning'}],
    },
    [s('charge_analysis_queue_depth{state="queued",instance="a"}', '20x60')],
  ),
  ...pair(
    'ChargeOpsAnalysesFailing',
    '1m',
    '40m',
    {
      series: [
        s('charge_analysis_analyses{status="failed",instance="a"}', '0+1x60'),
        s('charge_analysis_analyses{status="done",instance="a"}', '0+2x60'),
      ],
      labels: [{severity: 'warning'}],
    },
    [
      s('charge_analysis_analyses{status="failed",instance="a"}', '3x60'),
      s('charge_analysis_analyses{status="done",instance="a"}', '0+2x60'),
    ],
  ),
  // multi-window burn rate: half the requests fail → after 30 min the 1h/5m and 6h/30m pairs page;
  // the 1d and 3d ones are still pending (for: 1h / 3h); 0.1 % errors stay under every budget
  ...pair(
    'ChargeOpsApiErrorBudgetBurn',
    '1m',
    '30m',
    {
      series: [s(req('500'), '0+50x60'), s(req('200'), '0+50x60')],
      labels: [
        {service: 'charge-analysis', window: '1h', severity: 'critical'},
        {service: 'charge-analysis', window: '6h', severity: 'critical'},
      ],
    },
    [s(req('500'), '0+1x60'), s(req('200'), '0+999x60')],
  ),
  ...pair(
    'ChargeOpsApiLatencyBudgetBurn',
    '1m',
    '30m',
    {
      series: [s(bucket('0.5'), '0+10x60'), s(count, '0+100x60')],
      labels: [
        {service: 'charge-analysis', window: '1h', severity: 'critical'},
        {service: 'charge-analysis', window: '6h', severity: 'critical'},
      ],
    },
    [s(bucket('0.5'), '0+100x60'), s(count, '0+100x60')],
  ),
  ...pair(
    'ChargeOpsCertificateExpiry',
    '1m',
    '1m',
    {
      series: [s('probe_ssl_earliest_cert_expiry{instance="https://charge.example"}', '604800x5')],
      labels: [{instance: 'https://charge.example', severity: 'warning'}],
    },
    [s('probe_ssl_earliest_cert_expiry{instance="https://charge.example"}', '5184000x5')],
  ),
  {
    name: 'ChargeOpsCapacityReportStale: 1 vs 3 days old',
    interval: '1h',
    input_series: [s('charge_ops_capacity_last_run_timestamp_seconds', '0x80')],
    alert_rule_test: [
      quiet('ChargeOpsCapacityReportStale', '24h'),
      fires('ChargeOpsCapacityReportStale', '72h', {severity: 'warning'}),
    ],
  },
]
