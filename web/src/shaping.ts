/**
 * Data shaping for the analysis page, kept free of the DOM so it is unit-tested
 * (test/unit/web-shaping.test.ts) and timed by bench/web-draw.mjs as part of a draw.
 *
 *   toPlotSeries   the API's columns → uPlot's aligned arrays: power (kW) derived from V·I, and a
 *                  null inserted inside every gap longer than the interruption rule, so a line is
 *                  broken where the charger sent nothing instead of bridging it
 *   findingRange   a finding's ISO times → epoch seconds on the plot's axis, clamped to the data and
 *                  at least a few samples wide so a one-sample episode is still visible and clickable
 *   chartOfFinding which curve a finding is marked on
 */

// GET /api/v1/analyses/:id/series: the service's own declaration (a type-only import, no code)
import type {SessionSeries} from '../../service/src/series-shape.js'

export type {SessionSeries}

export type CurveKey = 'power' | 'soc' | 'voltage' | 'current' | 'temp'
export const CURVES: CurveKey[] = ['power', 'temp', 'soc', 'voltage', 'current']

export interface PlotSeries {
  /** epoch seconds, ascending (uPlot's x) */
  t: Float64Array
  /** one array per curve, aligned with t; null = gap */
  y: Record<CurveKey, (number | null)[]>
  /** the time range of the data, for clamping and the reset of zoom */
  range: {min: number; max: number}
  gaps: number
}

/** A gap longer than this is an interruption (service/src/analysis.ts RULES.interruptionGapSeconds). */
export const GAP_SECONDS = 30

export function toPlotSeries(series: SessionSeries, gapSeconds = GAP_SECONDS): PlotSeries {
  const n = series.t.length
  // one extra slot per gap: count first, so the arrays are allocated once (20,000 samples per draw)
  let gaps = 0
  for (let i = 1; i < n; i++) if (series.t[i]! - series.t[i - 1]! > gapSeconds) gaps++
  const size = n + gaps
  const t = new Float64Array(size)
  const y: Record<CurveKey, (number | null)[]> = {
    power: new Array(size),
    soc: new Array(size),
    voltage: new Array(size),
    current: new Array(size),
    temp: new Array(size),
  }
  let j = 0
  for (let i = 0; i < n; i++) {
    const ti = series.t[i]!
    if (i > 0 && ti - series.t[i - 1]! > gapSeconds) {
      // the null sits in the middle of the gap: uPlot breaks the line there
      t[j] = (ti + series.t[i - 1]!) / 2
      y.power[j] = y.soc[j] = y.voltage[j] = y.current[j] = y.temp[j] = null
      j++
    }
    const v = series.voltage[i]!
    const a = series.current[i]!
    t[j] = ti
    y.power[j] = Math.round(v * a) / 1000
    y.soc[j] = series.soc[i]!
    y.voltage[j] = v
    y.current[j] = a
    y.temp[j] = series.temp[i]!
    j++
  }
  return {t, y, range: {min: n ? series.t[0]! : 0, max: n ? series.t[n - 1]! : 0}, gaps}
}

export interface FindingLike {
  kind: string
  startedAt: string
  endedAt: string
}

/**
 * The finding's span in epoch seconds on the axis of `range`. `minWidth` (seconds) widens a span
 * shorter than that around its middle (a single-sample episode has start = end); null when the
 * finding lies outside the data entirely.
 */
export function findingRange(
  finding: FindingLike,
  range: {min: number; max: number},
  minWidth = 10,
): {start: number; end: number} | null {
  let start = Date.parse(finding.startedAt) / 1000
  let end = Date.parse(finding.endedAt) / 1000
  if (!Number.isFinite(start) || !Number.isFinite(end)) return null
  if (end < start) [start, end] = [end, start]
  if (end < range.min || start > range.max) return null
  if (end - start < minWidth) {
    const mid = (start + end) / 2
    start = mid - minWidth / 2
    end = mid + minWidth / 2
  }
  return {start: Math.max(start, range.min), end: Math.min(end, range.max)}
}

const CHART_OF: Record<string, CurveKey> = {
  over_temperature: 'temp',
  abnormal_voltage: 'voltage',
  derating: 'power',
  interruption: 'power',
}

export function chartOfFinding(kind: string): CurveKey {
  return CHART_OF[kind] ?? 'power'
}

/** A zoom step around the middle of the current view, kept inside the data (keyboard zoom). */
export function zoomed(
  view: {min: number; max: number},
  range: {min: number; max: number},
  factor: number,
): {min: number; max: number} {
  const full = range.max - range.min
  const width = Math.min(full, Math.max((view.max - view.min) * factor, Math.min(full, 30)))
  let min = (view.min + view.max) / 2 - width / 2
  min = Math.min(Math.max(min, range.min), range.max - width)
  return {min, max: min + width}
}
