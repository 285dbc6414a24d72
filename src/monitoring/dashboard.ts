/**
 * The Grafana dashboard (JSON model, schemaVersion 39) and its provisioning files: one row per
 * component with the guide's key metrics (§8.2: request rate, latency, queue depth, active
 * analyses, vector-search time, cache-hit ratio, replication lag) and a backup / RPO row.
 */
import {stringify} from 'yaml'

interface Panel {
  title: string
  type: 'timeseries' | 'stat'
  unit: string
  exprs: {expr: string; legend: string}[]
  description?: string
  thresholds?: {value: number; color: string}[]
}

const ROWS: {title: string; panels: Panel[]}[] = [
  {
    title: 'API service (charge-analysis)',
    panels: [
      {
        title: 'Request rate',
        type: 'timeseries',
        unit: 'reqps',
        exprs: [
          {
            expr: 'sum by (status) (rate(charge_analysis_http_requests_total{route!~"/metrics|/health"}[5m]))',
            legend: '{{status}}',
          },
        ],
      },
      {
        title: 'Latency p50 / p95 / p99',
        type: 'timeseries',
        unit: 's',
        exprs: ['0.5', '0.95', '0.99'].map((q) => ({
          expr: `histogram_quantile(${q}, sum by (le) (rate(charge_analysis_http_request_duration_seconds_bucket{route!~"/metrics|/health"}[5m])))`,
          legend: `p${Number(q) * 100}`,
        })),
      },
      {
        title: 'Error ratio (5xx) vs SLO burn',
        type: 'timeseries',
        unit: 'percentunit',
        exprs: [
          {expr: 'charge_analysis:http_errors:ratio_rate5m', legend: '5m'},
          {expr: 'charge_analysis:http_errors:ratio_rate1h', legend: '1h'},
        ],
      },
      {
        title: 'Queue depth',
        type: 'timeseries',
        unit: 'short',
        exprs: [{expr: 'max by (state) (charge_analysis_queue_depth)', legend: '{{state}}'}],
      },
      {
        title: 'Active analyses',
        type: 'stat',
        unit: 'short',
        exprs: [{expr: 'max(charge_analysis_active_analyses)', legend: 'running'}],
      },
      {
        title: 'Vector search time p95',
        type: 'timeseries',
        unit: 's',
        exprs: [
          {
            expr: 'histogram_quantile(0.95, sum by (le, operation) (rate(charge_analysis_vector_search_seconds_bucket[5m])))',
            legend: '{{operation}}',
          },
        ],
      },
      {
        title: 'Stores reachable from the API',
        type: 'stat',
        unit: 'bool_yes_no',
        exprs: [{expr: 'min by (dependency) (charge_analysis_dependency_up)', legend: '{{dependency}}'}],
      },
    ],
  },
  {
    title: 'PostgreSQL',
    panels: [
      {title: 'Up', type: 'stat', unit: 'bool_yes_no', exprs: [{expr: 'pg_up', legend: '{{instance}}'}]},
      {
        title: 'Connections vs limit',
        type: 'timeseries',
        unit: 'percentunit',
        exprs: [
          {
            expr: 'sum by (instance) (pg_stat_activity_count) / on (instance) (max by (instance) (pg_settings_max_connections) - max by (instance) (pg_settings_superuser_reserved_connections))',
            legend: '{{instance}}',
          },
        ],
      },
      {
        title: 'Cache hit ratio',
        type: 'timeseries',
        unit: 'percentunit',
        exprs: [{expr: 'max(charge_analysis_db_cache_hit_ratio)', legend: 'service database'}],
      },
      {
        title: 'Replication lag',
        type: 'timeseries',
        unit: 'bytes',
        exprs: [
          {expr: 'max by (application_name) (pg_stat_replication_pg_wal_lsn_diff)', legend: '{{application_name}}'},
        ],
      },
      {
        title: 'Database size',
        type: 'timeseries',
        unit: 'bytes',
        exprs: [{expr: 'pg_database_size_bytes{datname!~"template.*"}', legend: '{{datname}}'}],
      },
      {
        title: 'Days until the data disk fills (capacity)',
        type: 'stat',
        unit: 's',
        exprs: [{expr: 'min(charge_ops_pg_data_disk_full_in_seconds)', legend: 'until full'}],
        description:
          'charge-ops capacity: free space / growth fitted over the kept history (charge_ops_pg_growth_window_seconds).',
      },
      {
        title: 'Transaction-ID wraparound',
        type: 'stat',
        unit: 'percentunit',
        exprs: [{expr: 'max(charge_ops_pg_xid_wraparound_ratio)', legend: 'of 2^31'}],
      },
    ],
  },
  {
    title: 'Redis',
    panels: [
      {title: 'Up', type: 'stat', unit: 'bool_yes_no', exprs: [{expr: 'redis_up', legend: '{{instance}}'}]},
      {
        title: 'Memory vs maxmemory',
        type: 'timeseries',
        unit: 'percentunit',
        exprs: [{expr: 'redis_memory_used_bytes / (redis_memory_max_bytes > 0)', legend: '{{instance}}'}],
      },
      {
        title: 'Evicted keys',
        type: 'timeseries',
        unit: 'short',
        exprs: [{expr: 'increase(redis_evicted_keys_total[10m])', legend: '{{instance}}'}],
      },
      {
        title: 'Clients',
        type: 'timeseries',
        unit: 'short',
        exprs: [{expr: 'redis_connected_clients', legend: '{{instance}}'}],
      },
    ],
  },
  {
    title: 'Backups and recovery point (RPO)',
    panels: [
      {
        title: 'Age of the newest backup',
        type: 'stat',
        unit: 's',
        exprs: [
          {expr: 'time() - max by (kind) (charge_ops_backup_last_success_timestamp_seconds)', legend: '{{kind}}'},
        ],
        thresholds: [
          {value: 0, color: 'green'},
          {value: 26 * 3600, color: 'red'},
        ],
      },
      {
        title: 'Recovery point: last archived WAL',
        type: 'stat',
        unit: 's',
        exprs: [{expr: 'max(pg_stat_archiver_last_archive_age)', legend: 'WAL archive age'}],
        thresholds: [
          {value: 0, color: 'green'},
          {value: 900, color: 'red'},
        ],
      },
      {
        title: 'Restore drill: measured recovery time',
        type: 'timeseries',
        unit: 's',
        exprs: [{expr: 'charge_ops_backup_restore_drill_seconds', legend: '{{kind}}'}],
      },
      {
        title: 'Last passing restore drill',
        type: 'stat',
        unit: 's',
        exprs: [
          {
            expr: 'time() - max by (kind) (charge_ops_backup_restore_drill_last_success_timestamp_seconds)',
            legend: '{{kind}}',
          },
        ],
      },
      {
        title: 'Backup size',
        type: 'timeseries',
        unit: 'bytes',
        exprs: [{expr: 'charge_ops_backup_bytes', legend: '{{kind}}'}],
      },
      {
        title: 'WAL archive failures (10 min)',
        type: 'timeseries',
        unit: 'short',
        exprs: [{expr: 'increase(pg_stat_archiver_failed_count[10m])', legend: '{{instance}}'}],
      },
    ],
  },
  {
    title: 'Capacity checks (charge-ops capacity)',
    panels: [
      {
        title: 'Checks not OK',
        type: 'timeseries',
        unit: 'short',
        exprs: [{expr: 'count by (check) (charge_ops_check_status > 0)', legend: '{{check}}'}],
      },
      {
        title: 'Free disk',
        type: 'timeseries',
        unit: 'percentunit',
        exprs: [{expr: 'charge_ops_disk_free_ratio', legend: '{{role}}'}],
      },
      {
        title: 'Capacity report age',
        type: 'stat',
        unit: 's',
        exprs: [{expr: 'time() - max(charge_ops_capacity_last_run_timestamp_seconds)', legend: 'age'}],
      },
    ],
  },
]

export function renderDashboard(opts: {uid: string; title: string}): string {
  const panels: unknown[] = []
  let id = 1
  let y = 0
  for (const row of ROWS) {
    panels.push({
      type: 'row',
      id: id++,
      title: row.title,
      collapsed: false,
      gridPos: {h: 1, w: 24, x: 0, y: y++},
      panels: [],
    })
    row.panels.forEach((p, i) => {
      const w = p.type === 'stat' ? 6 : 12
      panels.push({
        type: p.type,
        id: id++,
        title: p.title,
        ...(p.description ? {description: p.description} : {}),
        datasource: {type: 'prometheus', uid: '${datasource}'},
        gridPos: {h: 7, w, x: (i % (24 / w)) * w, y: y + Math.floor(i / 2) * 7},
        fieldConfig: {
          defaults: {
            unit: p.unit,
            ...(p.thresholds
              ? {
                  thresholds: {
                    mode: 'absolute',
                    steps: p.thresholds.map((t, k) => ({color: t.color, value: k === 0 ? null : t.value})),
                  },
                }
              : {}),
          },
          overrides: [],
        },
        options: {},
        targets: p.exprs.map((e, k) => ({
          refId: String.fromCharCode(65 + k),
          expr: e.expr,
          legendFormat: e.legend,
          datasource: {type: 'prometheus', uid: '${datasource}'},
        })),
      })
    })
    y += Math.ceil(row.panels.length / 2) * 7
  }
  const dashboard = {
    uid: opts.uid,
    title: opts.title,
    tags: ['charge-ops'],
    timezone: 'browser',
    schemaVersion: 39,
    version: 1,
    editable: true,
    refresh: '1m',
    time: {from: 'now-24h', to: 'now'},
    templating: {
      list: [{name: 'datasource', type: 'datasource', query: 'prometheus', label: 'Prometheus', current: {}}],
    },
    panels,
  }
  return JSON.stringify(dashboard, null, 2) + '\n'
}

/** Every PromQL expression of the dashboard (the tests evaluate them against the real Prometheus). */
export function dashboardExpressions(): string[] {
  return ROWS.flatMap((r) => r.panels.flatMap((p) => p.exprs.map((e) => e.expr)))
}

export function renderGrafanaProvisioning(opts: {prometheusUrl: string; dashboardsDir: string}): {
  datasource: string
  dashboards: string
} {
  const header = '# Grafana provisioning — generated by `charge-ops monitoring`; re-run it instead of editing.\n'
  return {
    datasource:
      header +
      stringify(
        {
          apiVersion: 1,
          datasources: [
            {
              name: 'Prometheus',
              uid: 'charge-ops-prometheus',
              type: 'prometheus',
              access: 'proxy',
              url: opts.prometheusUrl,
              isDefault: true,
              editable: false,
            },
          ],
        },
        {lineWidth: 0},
      ),
    dashboards:
      header +
      stringify(
        {
          apiVersion: 1,
          providers: [
            {
              name: 'charge-ops',
              folder: 'charge-ops',
              type: 'file',
              disableDeletion: false,
              allowUiUpdates: false,
              options: {path: opts.dashboardsDir},
            },
          ],
        },
        {lineWidth: 0},
      ),
  }
}
