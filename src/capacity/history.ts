/**
 * Capacity history (`<stateDir>/capacity-history.json`): one sample per run, so that the next
 * run can compute growth and days until the disk fills. Written atomically (src/core/fs:
 * temp file + fsync + rename): a killed run leaves the previous history intact.
 */
import {readFile} from 'node:fs/promises'
import {join} from 'node:path'

import {writeFileAtomicSync} from '../core/fs/atomic.js'

export interface CapacitySample {
  at: string
  /** pg_database_size of the service database */
  databaseBytes?: number
  /** used bytes on the data dir filesystem (when known) */
  dataDirUsedBytes?: number
  uploadsBytes?: number
}

export interface CapacityHistory {
  version: 1
  samples: CapacitySample[]
}

export const HISTORY_FILE = 'capacity-history.json'
const MAX_SAMPLES = 500

export function historyPath(stateDir: string): string {
  return join(stateDir, HISTORY_FILE)
}

export async function readHistory(stateDir: string): Promise<CapacityHistory> {
  try {
    const parsed = JSON.parse(await readFile(historyPath(stateDir), 'utf8')) as CapacityHistory
    if (parsed && Array.isArray(parsed.samples))
      return {version: 1, samples: parsed.samples.filter((s) => typeof s?.at === 'string')}
  } catch {
    // missing or unreadable: start a new history (the old one is replaced on the next write)
  }
  return {version: 1, samples: []}
}

export async function appendSample(stateDir: string, sample: CapacitySample): Promise<CapacityHistory> {
  const history = await readHistory(stateDir)
  history.samples.push(sample)
  if (history.samples.length > MAX_SAMPLES) history.samples = history.samples.slice(-MAX_SAMPLES)
  writeFileAtomicSync(historyPath(stateDir), JSON.stringify(history, null, 2) + '\n', {mode: 0o644})
  return history
}

/** Growth is fitted over this much of the kept history … */
export const GROWTH_WINDOW_MS = 7 * 86_400_000
/** … and only judged once the samples span at least this long: two runs a minute apart around a
 * bulk load once extrapolated to "17.1 GiB/day" and paged someone. */
export const GROWTH_MIN_SPAN_MS = 6 * 3_600_000

export interface Growth {
  perDay: number
  /** the oldest sample used */
  since: string
  /** the span the fit covers (oldest sample used → now) */
  windowSeconds: number
  /** points in the fit (one per hour at most, plus now) */
  points: number
}

export type GrowthEstimate = Growth | {insufficient: string}

/**
 * Growth per day: the least-squares slope over the kept samples of the last `windowMs` plus the
 * current value, one point per clock hour (the newest of that hour) so that a burst of manual
 * runs does not outweigh the daily scheduled ones. A step (bulk load, restore) is spread over
 * the whole window instead of being extrapolated from the minutes around it.
 * Without samples spanning `minSpanMs`, no growth is claimed: the reason says what is missing.
 */
export function estimateGrowth(
  samples: readonly CapacitySample[],
  key: keyof Omit<CapacitySample, 'at'>,
  current: number,
  now: Date,
  opts: {windowMs?: number; minSpanMs?: number} = {},
): GrowthEstimate {
  const windowMs = opts.windowMs ?? GROWTH_WINDOW_MS
  const minSpanMs = opts.minSpanMs ?? GROWTH_MIN_SPAN_MS
  const t0 = now.getTime()
  const byHour = new Map<number, {t: number; v: number}>()
  for (const s of samples) {
    const value = s[key]
    const t = Date.parse(s.at)
    if (typeof value !== 'number' || !Number.isFinite(t) || t > t0 || t0 - t > windowMs) continue
    const hour = Math.floor(t / 3_600_000)
    const prev = byHour.get(hour)
    if (!prev || prev.t < t) byHour.set(hour, {t, v: value})
  }
  const points = [...byHour.values(), {t: t0, v: current}]
  const oldest = Math.min(...points.map((p) => p.t))
  const span = t0 - oldest
  const hours = (ms: number) => `${Math.round((ms / 3_600_000) * 10) / 10} h`
  if (span < minSpanMs) {
    return {
      insufficient: `needs capacity history spanning ${hours(minSpanMs)} to fit growth; the kept samples span ${hours(span)} (history fills with each run, e.g. the daily capacity job)`,
    }
  }
  // slope of v over t (ms), by least squares; centred for numeric stability
  const mt = points.reduce((a, p) => a + p.t, 0) / points.length
  const mv = points.reduce((a, p) => a + p.v, 0) / points.length
  let num = 0
  let den = 0
  for (const p of points) {
    num += (p.t - mt) * (p.v - mv)
    den += (p.t - mt) ** 2
  }
  return {
    perDay: (num / den) * 86_400_000,
    since: new Date(oldest).toISOString(),
    windowSeconds: Math.round(span / 1000),
    points: points.length,
  }
}
