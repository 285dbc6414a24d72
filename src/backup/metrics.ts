/**
 * Unattended-run reporting: a Prometheus textfile for node_exporter's textfile collector and a
 * healthchecks-style ping URL. Neither may fail a backup: problems are warnings.
 */
import {readFile} from 'node:fs/promises'

import {writeFileAtomic} from '../core/fs/atomic.js'
import type {Logger} from '../output/logger.js'

export const METRIC_HELP: Record<string, [string, string]> = {
  charge_ops_backup_last_success_timestamp_seconds: ['gauge', 'Unix time of the last successful backup, per kind'],
  charge_ops_backup_last_failure_timestamp_seconds: ['gauge', 'Unix time of the last failed backup, per kind'],
  charge_ops_backup_duration_seconds: ['gauge', 'Duration of the last successful backup, per kind'],
  charge_ops_backup_bytes: ['gauge', 'Stored size of the last successful backup, per kind'],
  charge_ops_backup_restore_drill_seconds: [
    'gauge',
    'Measured recovery time of the last restore drill (verify --restore-drill)',
  ],
  charge_ops_backup_verify_last_success_timestamp_seconds: [
    'gauge',
    'Unix time of the last backup verify that passed, per kind',
  ],
  charge_ops_backup_verify_last_failure_timestamp_seconds: [
    'gauge',
    'Unix time of the last backup verify that failed, per kind',
  ],
  charge_ops_backup_restore_drill_last_success_timestamp_seconds: [
    'gauge',
    'Unix time of the last restore drill that passed, per kind',
  ],
  charge_ops_backup_restore_drill_last_failure_timestamp_seconds: [
    'gauge',
    'Unix time of the last restore drill that failed, per kind',
  ],
}

type Sample = {name: string; labels: Record<string, string>; value: number}

const escape = (v: string) => v.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n')
const labelText = (labels: Record<string, string>) =>
  Object.keys(labels)
    .sort()
    .map((k) => `${k}="${escape(labels[k])}"`)
    .join(',')

/** Parses our own textfile (only sample lines) so that an update keeps the other kinds' values. */
export function parseTextfile(text: string): Sample[] {
  const out: Sample[] = []
  for (const line of text.split('\n')) {
    const m = /^([a-z_:][a-z0-9_:]*)\{(.*)\}\s+(\S+)$/i.exec(line.trim())
    if (!m) continue
    const labels: Record<string, string> = {}
    for (const pair of m[2].matchAll(/([a-z_][a-z0-9_]*)="((?:[^"\\]|\\.)*)"/gi))
      labels[pair[1]] = pair[2].replace(/\\n/g, '\n').replace(/\\"/g, '"').replace(/\\\\/g, '\\')
    out.push({name: m[1], labels, value: Number(m[3])})
  }
  return out
}

export function renderTextfile(samples: Sample[]): string {
  const byName = new Map<string, Sample[]>()
  for (const s of samples) byName.set(s.name, [...(byName.get(s.name) ?? []), s])
  const lines: string[] = []
  for (const name of [...byName.keys()].sort()) {
    const [type, help] = METRIC_HELP[name] ?? ['gauge', name]
    lines.push(`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`)
    for (const s of byName.get(name)!.sort((a, b) => labelText(a.labels).localeCompare(labelText(b.labels))))
      lines.push(`${name}{${labelText(s.labels)}} ${s.value}`)
  }
  return lines.join('\n') + '\n'
}

/**
 * Pushes `samples` to a Pushgateway (k8s CronJobs: the pod is gone before any scrape). One group
 * per stack and kind (`/metrics/job/charge-ops/stack/S/kind/K`), by POST: it replaces only the
 * families sent, so a failure's timestamp does not erase the last success's. Never fails the run.
 */
export async function pushMetrics(url: string, samples: Sample[], logger?: Logger): Promise<void> {
  const groups = new Map<string, Sample[]>()
  for (const s of samples) {
    const key = `/stack/${encodeURIComponent(s.labels.stack ?? '')}/kind/${encodeURIComponent(s.labels.kind ?? '')}`
    groups.set(key, [...(groups.get(key) ?? []), s])
  }
  for (const [key, group] of groups) await pushText(url, `/job/charge-ops${key}`, renderTextfile(group), 'POST', logger)
}

/**
 * One push of exposition text to a Pushgateway group (`/metrics` + groupPath). POST replaces the
 * families sent, PUT the whole group (a complete report, e.g. capacity's). Failures only warn.
 */
export async function pushText(
  url: string,
  groupPath: string,
  text: string,
  method: 'POST' | 'PUT',
  logger?: Logger,
): Promise<void> {
  try {
    const response = await fetch(`${url.replace(/\/+$/, '')}/metrics${groupPath}`, {
      method,
      body: text,
      headers: {'content-type': 'text/plain; version=0.0.4'},
      signal: AbortSignal.timeout(10_000),
    })
    if (!response.ok)
      logger?.warn(
        `could not push metrics to the Pushgateway ${url}: HTTP ${response.status} ${(await response.text()).slice(0, 200)}`,
      )
  } catch (error) {
    logger?.warn(`could not push metrics to the Pushgateway ${url}: ${(error as Error).message}`)
  }
}

/** Where a run's metrics go: the node_exporter textfile, the Pushgateway, both or neither. */
export interface MetricsSinks {
  metricsFile?: string
  pushgatewayUrl?: string
}

export async function publishMetrics(sinks: MetricsSinks, samples: Sample[], logger?: Logger): Promise<void> {
  if (sinks.metricsFile) await updateMetricsFile(sinks.metricsFile, samples, logger)
  if (sinks.pushgatewayUrl) await pushMetrics(sinks.pushgatewayUrl, samples, logger)
}

/**
 * Merges `updates` into the textfile (same name + labels replaced) and writes it atomically:
 * src/core/fs, so the collector never reads half a file.
 */
export async function updateMetricsFile(file: string, updates: Sample[], logger?: Logger): Promise<void> {
  try {
    const existing = parseTextfile(await readFile(file, 'utf8').catch(() => ''))
    const key = (s: Sample) => `${s.name}{${labelText(s.labels)}}`
    const merged = new Map(existing.map((s) => [key(s), s]))
    for (const u of updates) merged.set(key(u), u)
    await writeFileAtomic(file, renderTextfile([...merged.values()]), {mode: 0o644})
  } catch (error) {
    logger?.warn(`could not write the metrics file ${file}: ${(error as Error).message}`)
  }
}

export function successMetrics(
  stack: string,
  kind: string,
  finishedAt: Date,
  durationMs: number,
  bytes: number,
): Sample[] {
  const labels = {kind, stack}
  return [
    {name: 'charge_ops_backup_last_success_timestamp_seconds', labels, value: Math.floor(finishedAt.getTime() / 1000)},
    {name: 'charge_ops_backup_duration_seconds', labels, value: Math.round(durationMs) / 1000},
    {name: 'charge_ops_backup_bytes', labels, value: bytes},
  ]
}

export function failureMetrics(stack: string, kind: string, at: Date): Sample[] {
  return [
    {
      name: 'charge_ops_backup_last_failure_timestamp_seconds',
      labels: {kind, stack},
      value: Math.floor(at.getTime() / 1000),
    },
  ]
}

/**
 * `backup verify`'s outcome: pass / fail timestamps (the alert on a failing or stale restore drill
 * needs both: a drill that stopped running looks like one that passed long ago), and the drill's
 * measured recovery time when it ran to the end.
 */
export function verifyMetrics(
  stack: string,
  kind: string,
  at: Date,
  outcome: {ok: boolean; drill?: {ok: boolean; durationMs?: number}},
): Sample[] {
  const labels = {kind, stack}
  const ts = Math.floor(at.getTime() / 1000)
  const out: Sample[] = [
    {name: `charge_ops_backup_verify_last_${outcome.ok ? 'success' : 'failure'}_timestamp_seconds`, labels, value: ts},
  ]
  if (outcome.drill) {
    out.push({
      name: `charge_ops_backup_restore_drill_last_${outcome.drill.ok ? 'success' : 'failure'}_timestamp_seconds`,
      labels,
      value: ts,
    })
    if (outcome.drill.durationMs !== undefined)
      out.push({
        name: 'charge_ops_backup_restore_drill_seconds',
        labels,
        value: Math.round(outcome.drill.durationMs) / 1000,
      })
  }
  return out
}

/**
 * healthchecks.io-style ping: `<url>/start`, `<url>` on success, `<url>/fail` on failure (POST
 * with a short body). A 5 s timeout; any failure is only a warning.
 */
export async function ping(
  url: string | undefined,
  event: 'start' | 'success' | 'fail',
  body: string,
  logger?: Logger,
): Promise<void> {
  if (!url) return
  const base = url.replace(/\/+$/, '')
  const target = event === 'success' ? base : `${base}/${event}`
  try {
    const response = await fetch(target, {
      method: 'POST',
      body: body.slice(0, 10_000),
      signal: AbortSignal.timeout(5000),
    })
    if (!response.ok) logger?.warn(`ping ${event} returned HTTP ${response.status}`)
  } catch (error) {
    logger?.warn(`ping ${event} failed: ${(error as Error).message}`)
  }
}

/**
 * Reports one run of a backup that does not go through runBackup (`backup base`: pg_basebackup, the
 * file engine, wal-g) the same way: ping /start, then the kind's success metrics (timestamp,
 * duration, bytes when known) and the success ping, or its failure timestamp and /fail. Reporting
 * never fails the run; the run's own error is rethrown unchanged.
 */
export async function reportBackupRun<T>(
  opts: MetricsSinks & {
    pingUrl?: string
    stack: string
    kind: string
    label: string
    logger?: Logger
    now?: () => Date
  },
  run: () => Promise<T>,
  bytesOf: (result: T) => number | undefined,
): Promise<T> {
  const now = opts.now ?? (() => new Date())
  const started = now()
  await ping(opts.pingUrl, 'start', opts.label, opts.logger)
  let result: T
  try {
    result = await run()
  } catch (error) {
    await publishMetrics(opts, failureMetrics(opts.stack, opts.kind, now()), opts.logger)
    await ping(
      opts.pingUrl,
      'fail',
      `${opts.label} failed: ${error instanceof Error ? error.message : String(error)}`,
      opts.logger,
    )
    throw error
  }
  const finished = now()
  const bytes = bytesOf(result)
  const samples = successMetrics(
    opts.stack,
    opts.kind,
    finished,
    finished.getTime() - started.getTime(),
    bytes ?? 0,
  ).filter((s) => bytes !== undefined || s.name !== 'charge_ops_backup_bytes')
  await publishMetrics(opts, samples, opts.logger)
  await ping(opts.pingUrl, 'success', `${opts.label} ok`, opts.logger)
  return result
}
