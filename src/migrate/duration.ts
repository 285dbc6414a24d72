import {UsageError} from '../errors.js'

const UNIT_MS: Record<string, number> = {ms: 1, s: 1000, sec: 1000, m: 60_000, min: 60_000, h: 3_600_000, d: 86_400_000}

/**
 * Parses a duration such as `500ms`, `10s`, `30m`, `30min`, `2h` or a bare number of milliseconds
 * into milliseconds. `0` means "no limit" for PostgreSQL's timeouts.
 */
export function parseDuration(text: string, what = 'duration'): number {
  const m = /^\s*(\d+(?:\.\d+)?)\s*(ms|s|sec|m|min|h|d)?\s*$/i.exec(text)
  if (!m) {
    throw new UsageError(`invalid ${what} "${text}"`, {hint: 'Use a number with a unit: 500ms, 10s, 30m (or 30min), 2h; 0 disables the limit.'})
  }
  return Math.round(Number(m[1]) * UNIT_MS[(m[2] ?? 'ms').toLowerCase()])
}

/** A duration in the form PostgreSQL's SET accepts (milliseconds as an integer). */
export function pgDuration(text: string, what?: string): string {
  return String(parseDuration(text, what))
}

export function formatMs(ms: number): string {
  if (ms < 1000) return `${ms} ms`
  if (ms < 60_000) return `${(ms / 1000).toFixed(ms < 10_000 ? 2 : 1)} s`
  return `${Math.floor(ms / 60_000)} min ${Math.round((ms % 60_000) / 1000)} s`
}
