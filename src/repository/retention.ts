/**
 * The retention policy (pure): which complete backups to keep.
 *
 * Per kind (db, files, all, base are separate series), a backup is kept when any rule keeps it:
 *  - keepLast: it is among the newest N;
 *  - keepDays: it finished less than D days ago (the guide keeps 30 days);
 *  - daily / weekly / monthly: it is the newest backup of one of the newest N distinct UTC days /
 *    ISO weeks / months that have a backup;
 * and, whatever the policy says, never deleted:
 *  - the newest complete backup of each kind ("the last one of any kind");
 *  - the newest complete *verified* backup (verification ok), of each kind and overall.
 */
import type {RetentionPolicy} from '../config/schema.js'

export interface RetentionCandidate {
  id: string
  kind: string
  finishedAt: Date
  /** true = verified ok, false = verification failed, null = never verified */
  verified: boolean | null
}

export interface RetentionDecision {
  id: string
  kind: string
  keep: boolean
  reasons: string[]
}

const DAY = 86_400_000

function isoWeek(d: Date): string {
  const t = new Date(Date.UTC(d.getUTCFullYear(), d.getUTCMonth(), d.getUTCDate()))
  const day = t.getUTCDay() || 7
  t.setUTCDate(t.getUTCDate() + 4 - day)
  const yearStart = Date.UTC(t.getUTCFullYear(), 0, 1)
  const week = Math.ceil(((t.getTime() - yearStart) / DAY + 1) / 7)
  return `${t.getUTCFullYear()}-W${String(week).padStart(2, '0')}`
}

const bucketers: Record<'daily' | 'weekly' | 'monthly', (d: Date) => string> = {
  daily: (d) => d.toISOString().slice(0, 10),
  weekly: isoWeek,
  monthly: (d) => d.toISOString().slice(0, 7),
}

export function planRetention(backups: RetentionCandidate[], policy: RetentionPolicy, now: Date): RetentionDecision[] {
  const decisions = new Map<string, RetentionDecision>()
  for (const b of backups) decisions.set(b.id, {id: b.id, kind: b.kind, keep: false, reasons: []})
  const keep = (id: string, reason: string) => {
    const d = decisions.get(id)!
    d.keep = true
    d.reasons.push(reason)
  }
  const newestFirst = (list: RetentionCandidate[]) =>
    [...list].sort((a, b) => b.finishedAt.getTime() - a.finishedAt.getTime() || (a.id < b.id ? 1 : -1))
  const kinds = [...new Set(backups.map((b) => b.kind))]
  for (const kind of kinds) {
    const series = newestFirst(backups.filter((b) => b.kind === kind))
    series.slice(0, policy.keepLast).forEach((b, i) => keep(b.id, `keep-last ${policy.keepLast} (#${i + 1})`))
    for (const b of series)
      if (now.getTime() - b.finishedAt.getTime() < policy.keepDays * DAY)
        keep(b.id, `younger than ${policy.keepDays} days`)
    for (const period of ['daily', 'weekly', 'monthly'] as const) {
      const count = policy[period]
      const seen = new Set<string>()
      for (const b of series) {
        const bucket = bucketers[period](b.finishedAt)
        if (seen.has(bucket)) continue
        if (seen.size >= count) break
        seen.add(bucket)
        keep(b.id, `${period} ${bucket}`)
      }
    }
    if (series[0]) keep(series[0].id, `newest ${kind} backup`)
    const verified = series.find((b) => b.verified === true)
    if (verified) keep(verified.id, `newest verified ${kind} backup`)
  }
  const newestVerified = newestFirst(backups).find((b) => b.verified === true)
  if (newestVerified) keep(newestVerified.id, 'newest verified backup')
  return newestFirst(backups).map((b) => decisions.get(b.id)!)
}
