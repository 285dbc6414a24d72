/** Small helpers to build CheckResults consistently (status from thresholds, remedy only when not ok). */
import {evaluate} from './thresholds.js'
import type {CheckContext, CheckResult, CheckStatus, Queryable} from './types.js'

export interface MeasureInput {
  id: string
  component: string
  title: string
  value: number | null | undefined
  unit?: string
  message: string
  remedy?: string
  labels?: Record<string, string>
  details?: unknown
  /** forces a status (e.g. unknown when the value could not be measured) */
  status?: CheckStatus
  /** no thresholds apply (informational metric) */
  info?: boolean
}

/**
 * A yes/no check (unit `bool`): `value` is what is measured (1 = true), `bad` whether that is a
 * problem, reported at `severity` (critical unless said). doctor's reachability checks measure
 * "works" (bad when false); its leftover checks measure "a mark is there" (bad when true).
 */
export function yesNo(
  ctx: Pick<CheckContext, 'thresholds'>,
  input: Omit<MeasureInput, 'value' | 'unit' | 'status'> & {
    value: boolean
    bad: boolean
    severity?: 'warning' | 'critical'
  },
): CheckResult {
  const {value, bad, severity, ...rest} = input
  return measure(ctx, {...rest, value: value ? 1 : 0, unit: 'bool', status: bad ? (severity ?? 'critical') : 'ok'})
}

export function measure(ctx: Pick<CheckContext, 'thresholds'>, input: MeasureInput): CheckResult {
  const thresholds = input.info ? undefined : ctx.thresholds(input.id)
  const status = input.status ?? evaluate(input.value, thresholds)
  const result: CheckResult = {
    id: input.id,
    component: input.component,
    title: input.title,
    status,
    value: input.value ?? null,
    unit: input.unit,
    message: input.message,
  }
  if (thresholds) result.thresholds = thresholds
  if (input.labels) result.labels = input.labels
  if (status !== 'ok' && input.remedy) result.remedy = input.remedy
  if (input.details !== undefined) result.details = input.details
  return result
}

export function unknown(
  component: string,
  id: string,
  title: string,
  message: string,
  remedy?: string,
  labels?: Record<string, string>,
): CheckResult {
  return {
    id,
    component,
    title,
    status: 'unknown',
    value: null,
    message,
    ...(remedy ? {remedy} : {}),
    ...(labels ? {labels} : {}),
  }
}

export function pct(n: number): number {
  return Math.round(n * 100) / 100
}

export type {Queryable} from './types.js'

/** A Queryable that counts statements (the bench proves there is no query per table). */
export function countingClient(client: {
  query: (sql: string, params?: unknown[]) => Promise<{rows: unknown[]}>
}): Queryable & {count: () => number} {
  let n = 0
  // pg runs one statement at a time per connection; chain them explicitly (checks run concurrently)
  let tail: Promise<unknown> = Promise.resolve()
  return {
    query<R>(sql: string, params?: unknown[]) {
      n++
      const next = tail.then(() => client.query(sql, params)) as Promise<{rows: R[]}>
      tail = next.catch(() => {})
      return next
    },
    count: () => n,
  }
}
