/**
 * The one check-definition model shared by `capacity` and `doctor`: a Check produces
 * CheckResults; renderers (table, json, prometheus, nagios) take results only, so every
 * output format is rendered from the same definitions.
 */
import type {Settings} from '../config/settings.js'
import type {Logger} from '../output/logger.js'

/** A pg client or pool, or a counting wrapper (check-kit.ts): what checks query through. */
export interface Queryable {
  query<R = Record<string, unknown>>(sql: string, params?: unknown[]): Promise<{rows: R[]}>
}

export type CheckStatus = 'ok' | 'warning' | 'critical' | 'unknown'

export interface Thresholds {
  warning: number
  critical: number
}

export interface CheckResult {
  /** stable id, also the thresholds key in charge-ops.yaml (`thresholds.<id>`) */
  id: string
  component: string
  title: string
  status: CheckStatus
  value?: number | null
  unit?: string
  thresholds?: Thresholds
  message: string
  /** what to do about it (the guide's remedy), set when status is not ok */
  remedy?: string
  /** labels for Prometheus / perfdata (e.g. {path: '/var/lib/postgresql'}) */
  labels?: Record<string, string>
  /** extra rows for humans and --json (e.g. the 20 largest tables) */
  details?: unknown
}

export interface CheckContext {
  settings: Settings
  logger: Logger
  now: Date
  /** a connected client to the service database, when one could be opened */
  pg?: Queryable
  /** the DATABASE_URL host is this machine (local paths like data_directory are meaningful) */
  pgLocal?: boolean
  /** why pg is missing (the diagnosed connection error) */
  pgError?: string
  thresholds: (id: string) => Thresholds | undefined
  /** counts catalog queries issued (bench: no query per table) */
  queryCount: () => number
  /** per-run memo: facts several checks share are fetched once */
  memo: Map<string, Promise<unknown>>
}

export interface Check {
  id: string
  component: string
  title: string
  run(ctx: CheckContext): Promise<CheckResult[]>
}

export const STATUS_ORDER: Record<CheckStatus, number> = {ok: 0, warning: 1, critical: 2, unknown: 3}

/** The overall status: critical > warning > unknown > ok (unknown does not hide a critical). */
export function worstStatus(results: readonly CheckResult[]): CheckStatus {
  let worst: CheckStatus = 'ok'
  const rank = (s: CheckStatus) => (s === 'critical' ? 3 : s === 'warning' ? 2 : s === 'unknown' ? 1 : 0)
  for (const r of results) if (rank(r.status) > rank(worst)) worst = r.status
  return worst
}

/** Fetches a shared fact once per run. */
export function once<T>(ctx: CheckContext, key: string, fn: () => Promise<T>): Promise<T> {
  let p = ctx.memo.get(key) as Promise<T> | undefined
  if (!p) {
    p = fn()
    ctx.memo.set(key, p)
  }
  return p
}
