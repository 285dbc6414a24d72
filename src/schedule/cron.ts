/**
 * Cron expressions: validation with a reason, next runs (cron-parser v5), overlap detection
 * between jobs, and translation to systemd OnCalendar. Only the five standard fields are
 * accepted: that is what cron, systemd (after translation) and Kubernetes all understand.
 */
import {CronExpressionParser, type CronExpression} from 'cron-parser'

import {UsageError} from '../errors.js'
import type {ScheduledJob} from './jobs.js'

const FIELD_NAMES = ['minute', 'hour', 'day of month', 'month', 'day of week'] as const
const FIELD_RANGES: Array<[number, number]> = [
  [0, 59],
  [0, 23],
  [1, 31],
  [1, 12],
  [0, 7],
]
const NAMES: Record<number, Record<string, number>> = {
  3: {jan: 1, feb: 2, mar: 3, apr: 4, may: 5, jun: 6, jul: 7, aug: 8, sep: 9, oct: 10, nov: 11, dec: 12},
  4: {sun: 0, mon: 1, tue: 2, wed: 3, thu: 4, fri: 5, sat: 6},
}

export function isValidTimezone(tz: string): boolean {
  try {
    new Intl.DateTimeFormat('en', {timeZone: tz})
    return true
  } catch {
    return false
  }
}

/** Why an expression is not a valid five-field cron expression, or undefined when it is. */
export function cronProblem(expr: string, timezone?: string): string | undefined {
  const fields = expr.trim().split(/\s+/)
  if (expr.trim() === '') return 'the expression is empty'
  if (fields[0].startsWith('@'))
    return `${fields[0]} macros are not portable to systemd timers; write the five fields (e.g. "0 2 * * *" for @daily)`
  if (fields.length !== 5) return `expected 5 fields (minute hour day-of-month month day-of-week), got ${fields.length}`
  for (const [i, field] of fields.entries()) {
    for (const part of field.split(',')) {
      const m = /^(\*|[a-z0-9]+(?:-[a-z0-9]+)?)(?:\/(\d+))?$/i.exec(part)
      if (!m) return `${FIELD_NAMES[i]} field "${field}": "${part}" is not a value, range, list or step`
      if (m[2] !== undefined && Number(m[2]) === 0)
        return `${FIELD_NAMES[i]} field "${field}": a step of 0 never advances`
      if (m[1] === '*') continue
      for (const value of m[1].split('-')) {
        const n = /^\d+$/.test(value) ? Number(value) : NAMES[i]?.[value.toLowerCase()]
        if (n === undefined)
          return `${FIELD_NAMES[i]} field "${field}": "${value}" is not a number${NAMES[i] ? ' or a name' : ''}`
        const [lo, hi] = FIELD_RANGES[i]
        if (n < lo || n > hi) return `${FIELD_NAMES[i]} field "${field}": ${n} is outside ${lo}–${hi}`
      }
      const [a, b] = m[1].split('-')
      if (b !== undefined) {
        const na = /^\d+$/.test(a) ? Number(a) : NAMES[i]![a.toLowerCase()]
        const nb = /^\d+$/.test(b) ? Number(b) : NAMES[i]![b.toLowerCase()]
        if (na > nb) return `${FIELD_NAMES[i]} field "${field}": the range ${a}-${b} runs backwards`
      }
    }
  }
  if (timezone !== undefined && !isValidTimezone(timezone))
    return `"${timezone}" is not an IANA time zone (e.g. UTC, Europe/Berlin)`
  try {
    const parsed = CronExpressionParser.parse(expr, {tz: timezone, currentDate: new Date('2024-01-01T00:00:00Z')})
    parsed.next()
  } catch (error) {
    return (error as Error).message
  }
  return undefined
}

export function parseCron(expr: string, options: {timezone?: string; from?: Date} = {}): CronExpression {
  const problem = cronProblem(expr, options.timezone)
  if (problem)
    throw new UsageError(`invalid cron expression "${expr}": ${problem}`, {
      code: 'INVALID_CRON',
      hint: 'Use five fields: minute hour day-of-month month day-of-week, e.g. "0 2 * * *" (02:00 daily).',
    })
  return CronExpressionParser.parse(expr, {tz: options.timezone, currentDate: options.from ?? new Date()})
}

export function nextRuns(expr: string, options: {timezone?: string; from?: Date; count?: number} = {}): Date[] {
  const it = parseCron(expr, options)
  return it.take(options.count ?? 3).map((d) => d.toDate())
}

export interface Overlap {
  a: string
  b: string
  /** the first time both are expected to run at once */
  at: string
  message: string
}

/**
 * Jobs scheduled into each other's window: a run of A starts before a run of B is expected to
 * have finished (B's start + typical duration), over the next `days` days.
 */
export function findOverlaps(jobs: readonly ScheduledJob[], options: {from?: Date; days?: number} = {}): Overlap[] {
  const from = options.from ?? new Date()
  const until = new Date(from.getTime() + (options.days ?? 35) * 86_400_000)
  const active = jobs.filter((j) => j.enabled)
  const windows = new Map<string, Array<[number, number]>>()
  for (const job of active) {
    const it = parseCron(job.cron, {timezone: job.timezone, from})
    const list: Array<[number, number]> = []
    for (let i = 0; i < 2000; i++) {
      const start = it.next().getTime()
      if (start > until.getTime()) break
      list.push([start, start + job.typicalMinutes * 60_000])
    }
    windows.set(job.name, list)
  }
  const overlaps: Overlap[] = []
  for (let i = 0; i < active.length; i++) {
    for (let j = i + 1; j < active.length; j++) {
      const a = active[i]
      const b = active[j]
      const hit = firstIntersection(windows.get(a.name)!, windows.get(b.name)!)
      if (hit === undefined) continue
      overlaps.push({
        a: a.name,
        b: b.name,
        at: new Date(hit).toISOString(),
        message: `${a.name} (${a.cron}, ~${a.typicalMinutes} min) and ${b.name} (${b.cron}, ~${b.typicalMinutes} min) run at the same time from ${new Date(hit).toISOString()}`,
      })
    }
  }
  return overlaps
}

function firstIntersection(a: Array<[number, number]>, b: Array<[number, number]>): number | undefined {
  let i = 0
  let j = 0
  while (i < a.length && j < b.length) {
    const start = Math.max(a[i][0], b[j][0])
    const end = Math.min(a[i][1], b[j][1])
    if (start < end) return start
    if (a[i][1] < b[j][1]) i++
    else j++
  }
  return undefined
}

const DOW_NAMES = ['Sun', 'Mon', 'Tue', 'Wed', 'Thu', 'Fri', 'Sat']

/**
 * The systemd OnCalendar equivalent of a cron expression (`DOW *-MM-DD HH:MM:00 ZONE`), built
 * from the expanded field values so steps, ranges and names translate exactly. Cron fires when
 * day-of-month OR day-of-week matches if both are restricted; systemd requires both, so such
 * expressions are refused rather than silently changed.
 */
export function cronToOnCalendar(expr: string, timezone?: string): string {
  const parsed = parseCron(expr, {timezone})
  const f = parsed.fields
  if (!f.dayOfMonth.isWildcard && !f.dayOfWeek.isWildcard) {
    throw new UsageError(
      `"${expr}" restricts both day-of-month and day-of-week; cron runs when either matches, systemd only when both do`,
      {
        code: 'CRON_NOT_PORTABLE',
        hint: 'Split it into two jobs, one per field.',
      },
    )
  }
  const list = (values: readonly (number | string)[], full: number, pad = 2) =>
    values.length >= full ? '*' : values.map((v) => String(v).padStart(pad, '0')).join(',')
  const dowValues = [...new Set(f.dayOfWeek.values.map((d) => (Number(d) === 7 ? 0 : Number(d))))].sort((x, y) => x - y)
  const dow = f.dayOfWeek.isWildcard || dowValues.length === 7 ? '' : `${dowValues.map((d) => DOW_NAMES[d]).join(',')} `
  const month = list(f.month.values as number[], 12)
  const dom = f.dayOfMonth.isWildcard ? '*' : list(f.dayOfMonth.values as number[], 31)
  const hour = list(f.hour.values as number[], 24)
  const minute = list(f.minute.values as number[], 60)
  return `${dow}*-${month}-${dom} ${hour}:${minute}:00${timezone ? ` ${timezone}` : ''}`
}
