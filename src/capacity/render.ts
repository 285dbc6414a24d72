/**
 * Renderers: one set of results, every format. Each takes CheckResult[] only.
 *  - table: aligned text for humans
 *  - json: a stable document ({status, generatedAt, summary, checks})
 *  - prometheus: text exposition (node_exporter textfile collector) with HELP / TYPE
 *  - nagios: `STATUS - summary | perfdata`, exit 0/1/2/3 (Nagios plugin API)
 */
import {formatDuration} from '../core/units/duration.js'
import {formatBytes} from '../core/units/size.js'
import {renderTable} from '../output/table.js'
import {type CheckResult, type CheckStatus, worstStatus} from './types.js'

export type OutputFormat = 'table' | 'json' | 'prometheus' | 'nagios'

export interface Report {
  status: CheckStatus
  generatedAt: string
  summary: Record<CheckStatus, number>
  checks: CheckResult[]
  /** catalog queries issued (bench / tests) */
  queries?: number
  durationMs?: number
}

export function buildReport(
  checks: CheckResult[],
  now: Date,
  extra: {queries?: number; durationMs?: number} = {},
): Report {
  const summary: Record<CheckStatus, number> = {ok: 0, warning: 0, critical: 0, unknown: 0}
  for (const c of checks) summary[c.status]++
  return {status: worstStatus(checks), generatedAt: now.toISOString(), summary, checks, ...extra}
}

export function formatValue(value: number | null | undefined, unit?: string): string {
  if (value === null || value === undefined) return '-'
  if (unit === 'bytes') return formatBytes(value)
  if (unit === 'bool') return value ? 'yes' : 'no'
  if (unit === 's') return formatSeconds(value)
  const n = Number.isInteger(value) ? String(value) : value.toFixed(value < 10 ? 2 : 1)
  return unit && unit !== 'count' ? `${n}${unit === '%' ? '%' : ' ' + unit}` : n
}

export {formatBytes}

/** Seconds for humans: the CLI's duration format (`45s`, `12m05s`, `3h20m`), days from two days on. */
export function formatSeconds(s: number): string {
  return s >= 172_800 ? `${(s / 86_400).toFixed(1)}d` : formatDuration(s * 1000)
}

function labelText(labels?: Record<string, string>): string {
  if (!labels || Object.keys(labels).length === 0) return ''
  return `[${Object.entries(labels)
    .map(([k, v]) => `${k}=${v}`)
    .join(',')}]`
}

export function renderText(report: Report): string {
  const rows = report.checks.map((c) => [
    c.status.toUpperCase(),
    `${c.id}${labelText(c.labels)}`,
    formatValue(c.value, c.unit),
    c.thresholds ? `${formatValue(c.thresholds.warning, c.unit)} / ${formatValue(c.thresholds.critical, c.unit)}` : '',
    c.message,
  ])
  const lines = [renderTable(['STATUS', 'CHECK', 'VALUE', 'WARN / CRIT', 'MESSAGE'], rows)]
  const remedies = report.checks.filter((c) => c.status !== 'ok' && c.remedy)
  if (remedies.length > 0) {
    lines.push('', 'What to do:')
    for (const c of remedies) lines.push(`  ${c.status.toUpperCase()} ${c.id}${labelText(c.labels)}: ${c.remedy}`)
  }
  const s = report.summary
  lines.push(
    '',
    `${report.status.toUpperCase()}: ${s.ok} ok, ${s.warning} warning, ${s.critical} critical, ${s.unknown} unknown`,
  )
  return lines.join('\n')
}

// ------------------------------------------------------------------ prometheus

const STATUS_VALUE: Record<CheckStatus, number> = {ok: 0, warning: 1, critical: 2, unknown: 3}

/**
 * Check ids keep the units people read (`pg.vacuum_age_days`, `disk.free_pct`: they are the keys of
 * `thresholds:` in charge-ops.yaml), but Prometheus wants base units — `promtool check metrics`
 * flags days and hours — so the exposition converts: days / hours → seconds, percent → ratio
 * (0–1), bytes per day → bytes per second. The old names are listed in docs/monitoring.md and kept
 * for one release as recording rules in the generated rules file (`charge-ops monitoring`).
 */
const UNIT_TO_BASE: Record<string, {factor: number; from: RegExp; to: string}> = {
  days: {factor: 86_400, from: /_days$/, to: '_seconds'},
  h: {factor: 3600, from: /_hours$/, to: '_seconds'},
  '%': {factor: 0.01, from: /_pct$/, to: '_ratio'},
}

/** Names that do not follow the suffix rule. */
const RENAMED: Record<string, {name: string; factor: number}> = {
  'pg.days_until_full': {name: 'charge_ops_pg_data_disk_full_in_seconds', factor: 86_400},
  'pg.growth_bytes_per_day': {name: 'charge_ops_pg_growth_bytes_per_second', factor: 1 / 86_400},
}

export function legacyMetricName(id: string): string {
  return `charge_ops_${id.replace(/[^a-zA-Z0-9_]/g, '_')}`
}

/** The Prometheus name of a check's value and the factor from the check's unit to the base unit. */
export function metricFor(id: string, unit?: string): {name: string; factor: number} {
  if (RENAMED[id]) return RENAMED[id]
  const legacy = legacyMetricName(id)
  const base = unit ? UNIT_TO_BASE[unit] : undefined
  if (!base) return {name: legacy, factor: 1}
  return {name: base.from.test(legacy) ? legacy.replace(base.from, base.to) : legacy, factor: base.factor}
}

function escapeLabel(value: string): string {
  return value.replaceAll('\\', '\\\\').replaceAll('\n', '\\n').replaceAll('"', '\\"')
}

function promLabels(labels: Record<string, string>): string {
  const entries = Object.entries(labels)
  if (entries.length === 0) return ''
  return `{${entries.map(([k, v]) => `${k.replace(/[^a-zA-Z0-9_]/g, '_')}="${escapeLabel(v)}"`).join(',')}}`
}

function promNumber(v: number): string {
  if (Number.isNaN(v)) return 'NaN'
  if (v === Infinity) return '+Inf'
  if (v === -Infinity) return '-Inf'
  return String(v)
}

/** Prometheus text exposition format 0.0.4; every metric family once, HELP and TYPE first. */
export function renderPrometheus(report: Report): string {
  const out: string[] = []
  out.push(
    '# HELP charge_ops_check_status Check status: 0 ok, 1 warning, 2 critical, 3 unknown.',
    '# TYPE charge_ops_check_status gauge',
  )
  for (const c of report.checks)
    out.push(
      `charge_ops_check_status${promLabels({check: c.id, component: c.component, ...c.labels})} ${STATUS_VALUE[c.status]}`,
    )

  const families = new Map<string, CheckResult[]>()
  for (const c of report.checks) {
    if (typeof c.value !== 'number') continue
    const list = families.get(c.id) ?? []
    list.push(c)
    families.set(c.id, list)
  }
  for (const [id, list] of families) {
    const {name, factor} = metricFor(id, list[0].unit)
    const scale = (v: number) => (factor === 1 || !Number.isFinite(v) ? v : Math.round(v * factor * 1e6) / 1e6)
    out.push(
      `# HELP ${name} ${list[0].title}${name === legacyMetricName(id) ? '' : ` (check ${id}, in base units)`}.`,
      `# TYPE ${name} gauge`,
    )
    for (const c of list) out.push(`${name}${promLabels(c.labels ?? {})} ${promNumber(scale(c.value as number))}`)
    const t = list[0].thresholds
    if (t) {
      out.push(
        `# HELP ${name}_threshold Thresholds of ${id}, in the same unit as ${name}.`,
        `# TYPE ${name}_threshold gauge`,
      )
      out.push(
        `${name}_threshold{level="warning"} ${promNumber(scale(t.warning))}`,
        `${name}_threshold{level="critical"} ${promNumber(scale(t.critical))}`,
      )
    }
  }
  out.push(
    '# HELP charge_ops_capacity_last_run_timestamp_seconds When the checks ran.',
    '# TYPE charge_ops_capacity_last_run_timestamp_seconds gauge',
  )
  out.push(`charge_ops_capacity_last_run_timestamp_seconds ${Math.floor(Date.parse(report.generatedAt) / 1000)}`)
  return out.join('\n') + '\n'
}

// ------------------------------------------------------------------ nagios

export const NAGIOS_EXIT: Record<CheckStatus, number> = {ok: 0, warning: 1, critical: 2, unknown: 3}

const NAGIOS_UOM: Record<string, string> = {'%': '%', bytes: 'B', s: 's'}

function perfLabel(c: CheckResult): string {
  // paths make unwieldy perfdata labels: prefer the other labels (role, kind …) when there are any
  const entries = Object.entries(c.labels ?? {})
  const shown = entries.some(([k]) => k !== 'path') ? entries.filter(([k]) => k !== 'path') : entries
  const label = `${c.id}${shown.map(([, v]) => `_${v}`).join('')}`
  return `'${label.replaceAll("'", '"').replaceAll('=', '_')}'`
}

/** The Nagios plugin output: first line `STATUS - text | perfdata`, then long text. */
export function renderNagios(report: Report): {text: string; exitCode: number} {
  const status = report.status
  const bad = report.checks.filter((c) => c.status === 'critical' || c.status === 'warning' || c.status === 'unknown')
  const order: CheckStatus[] = ['critical', 'warning', 'unknown']
  bad.sort((a, b) => order.indexOf(a.status) - order.indexOf(b.status))
  const headline =
    bad.length === 0
      ? `${report.checks.length} checks ok`
      : bad
          .slice(0, 5)
          .map((c) => `${c.id}${labelText(c.labels)} ${c.message}`)
          .join('; ') + (bad.length > 5 ? `; and ${bad.length - 5} more` : '')
  const perf = report.checks
    .filter((c) => typeof c.value === 'number' && Number.isFinite(c.value))
    .map((c) => {
      const uom = NAGIOS_UOM[c.unit ?? ''] ?? ''
      const t = c.thresholds
      return `${perfLabel(c)}=${c.value}${uom};${t ? t.warning : ''};${t ? t.critical : ''}`
    })
  const first = `${status.toUpperCase()} - ${headline.replaceAll('|', '/').replaceAll('\n', ' ')}`
  const long = bad.map((c) =>
    `${c.status.toUpperCase()}: ${c.id}${labelText(c.labels)}: ${c.message}${c.remedy ? ` — ${c.remedy}` : ''}`.replaceAll(
      '|',
      '/',
    ),
  )
  if (long.length === 0)
    return {text: perf.length > 0 ? `${first} | ${perf.join(' ')}` : first, exitCode: NAGIOS_EXIT[status]}
  const lines = [perf.length > 0 ? `${first} | ${perf[0]}` : first, ...long]
  if (perf.length > 1) lines[lines.length - 1] += ` | ${perf.slice(1).join(' ')}`
  return {text: lines.join('\n'), exitCode: NAGIOS_EXIT[status]}
}
