/**
 * Durations: one grammar for every flag and setting — a number, optional spaces, a unit:
 * `500ms`, `10s`, `30m` / `30min`, `2h`, `7d`. postgresql.conf spells units its own way (us, ms,
 * s, min, h, d; no `m`), so its values are read with `units: 'postgres'`, which refuses what the
 * server would refuse. A bare number means `bareMs` milliseconds when the caller allows it.
 */
import {UsageError} from '../../errors.js'

const FLAG_UNITS: Record<string, number> = {
  ms: 1,
  s: 1000,
  sec: 1000,
  m: 60_000,
  min: 60_000,
  h: 3_600_000,
  d: 86_400_000,
}
const POSTGRES_UNITS: Record<string, number> = {us: 0.001, ms: 1, s: 1000, min: 60_000, h: 3_600_000, d: 86_400_000}

export interface DurationGrammar {
  /** what a unit-less number counts, in milliseconds; absent: a unit is required */
  bareMs?: number
  /** `postgres`: postgresql.conf's units; default: the CLI's */
  units?: 'flag' | 'postgres'
  /** accept a leading minus (postgresql.conf's -1 = "disabled") */
  negative?: boolean
}

/** Milliseconds, or undefined when `text` is not a duration in that grammar. */
export function tryParseDuration(text: string, grammar: DurationGrammar = {}): number | undefined {
  const match = /^\s*(-?\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*$/.exec(text)
  if (!match) return undefined
  const n = Number(match[1])
  if (n < 0 && !grammar.negative) return undefined
  if (match[2] === '') return grammar.bareMs === undefined ? undefined : n * grammar.bareMs
  const unit = (grammar.units === 'postgres' ? POSTGRES_UNITS : FLAG_UNITS)[match[2].toLowerCase()]
  return unit === undefined ? undefined : n * unit
}

export interface ParseDurationOptions extends DurationGrammar {
  /** names the value in the default message: `invalid --lock-wait "ten"` */
  what?: string
  /** the whole error message, instead of the default */
  message?: string
  hint?: string
}

/** Milliseconds (rounded); a UsageError (exit 2) that says what is accepted when it is not a duration. */
export function parseDuration(text: string, options: ParseDurationOptions = {}): number {
  const ms = tryParseDuration(text, options)
  if (ms === undefined) {
    throw new UsageError(options.message ?? `invalid ${options.what ?? 'duration'} "${text}"`, {
      hint: options.hint ?? 'Use a number with a unit: 500ms, 10s, 30m (or 30min), 2h, 7d.',
    })
  }
  return Math.round(ms)
}

/** A PostgreSQL timeout: a bare number is milliseconds (as in SET), 0 disables the limit. */
export function parseTimeout(text: string, what = 'duration'): number {
  return parseDuration(text, {
    what,
    bareMs: 1,
    hint: 'Use a number with a unit: 500ms, 10s, 30m (or 30min), 2h; 0 disables the limit.',
  })
}

/** Elapsed time for progress lines: `45s`, `12m05s`, `3h20m`; `?` when unknown. */
export function formatDuration(ms: number): string {
  if (!Number.isFinite(ms) || ms < 0) return '?'
  const s = Math.round(ms / 1000)
  if (s < 60) return `${s}s`
  const m = Math.floor(s / 60)
  if (m < 60) return `${m}m${String(s % 60).padStart(2, '0')}s`
  return `${Math.floor(m / 60)}h${String(m % 60).padStart(2, '0')}m`
}

/** A run's duration in reports: `850 ms`, `2.35 s`, `3 min 4 s`. */
export function formatMs(ms: number): string {
  if (ms < 1000) return `${ms} ms`
  if (ms < 60_000) return `${(ms / 1000).toFixed(ms < 10_000 ? 2 : 1)} s`
  return `${Math.floor(ms / 60_000)} min ${Math.round((ms % 60_000) / 1000)} s`
}

/** A time written the way postgresql.conf does: `1h`, `15min`, `30s`, `200ms`. */
export function formatPgDuration(ms: number): string {
  if (ms % 3_600_000 === 0) return `${ms / 3_600_000}h`
  if (ms % 60_000 === 0) return `${ms / 60_000}min`
  if (ms % 1000 === 0) return `${ms / 1000}s`
  return `${ms}ms`
}
