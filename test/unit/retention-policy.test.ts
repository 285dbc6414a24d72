import {describe, expect, it} from 'vitest'

import {planRetention, type RetentionCandidate} from '../../src/repository/retention.js'

const now = new Date('2026-06-30T12:00:00Z')
const daysAgo = (d: number, kind = 'db', verified: boolean | null = null, hour = 2): RetentionCandidate => {
  const t = new Date(now.getTime() - d * 86_400_000)
  t.setUTCHours(hour, 0, 0, 0)
  return {
    id: `${t.toISOString().replace(/[-:]/g, '').slice(0, 15)}Z-${kind}-${String(d).padStart(4, '0')}`,
    kind,
    finishedAt: t,
    verified,
  }
}
const policy = (p: Partial<{keepLast: number; keepDays: number; daily: number; weekly: number; monthly: number}>) => ({
  keepLast: 1,
  keepDays: 0,
  daily: 0,
  weekly: 0,
  monthly: 0,
  ...p,
})
const kept = (backups: RetentionCandidate[], p: ReturnType<typeof policy>) =>
  planRetention(backups, p, now)
    .filter((d) => d.keep)
    .map((d) => d.id)
    .sort()

describe('retention policy', () => {
  const daily60 = Array.from({length: 60}, (_v, i) => daysAgo(i))

  const cases: {
    name: string
    backups: RetentionCandidate[]
    policy: ReturnType<typeof policy>
    keep: (b: RetentionCandidate[]) => string[]
  }[] = [
    {name: 'keep-last 3', backups: daily60, policy: policy({keepLast: 3}), keep: (b) => b.slice(0, 3).map((x) => x.id)},
    {
      name: 'keep-days 30 (the guide)',
      backups: daily60,
      policy: policy({keepDays: 30}),
      keep: (b) => b.slice(0, 30).map((x) => x.id),
    },
    {
      name: 'daily 7 keeps one per day',
      backups: [...daily60.slice(0, 10), daysAgo(0, 'db', null, 1), daysAgo(1, 'db', null, 1)],
      policy: policy({daily: 7}),
      keep: (b) => b.slice(0, 7).map((x) => x.id),
    },
    {
      name: 'weekly 4 keeps the newest of 4 ISO weeks',
      backups: daily60,
      policy: policy({weekly: 4}),
      keep: () => [0, 2, 9, 16].map((d) => daysAgo(d).id),
    },
    {name: 'monthly 2', backups: daily60, policy: policy({monthly: 2}), keep: () => [daysAgo(0).id, daysAgo(30).id]},
    {
      name: 'never deletes the newest verified backup, even when old',
      backups: [daysAgo(0), daysAgo(1), daysAgo(50, 'db', true), daysAgo(51, 'db', true)],
      policy: policy({keepLast: 1}),
      keep: () => [daysAgo(0).id, daysAgo(50, 'db', true).id],
    },
    {
      name: 'a failed verification does not count as verified',
      backups: [daysAgo(0), daysAgo(40, 'db', false)],
      policy: policy({keepLast: 1}),
      keep: () => [daysAgo(0).id],
    },
    {
      name: 'never deletes the last one of any kind',
      backups: [daysAgo(0, 'db'), daysAgo(1, 'db'), daysAgo(90, 'files'), daysAgo(91, 'files'), daysAgo(200, 'all')],
      policy: policy({keepLast: 1}),
      keep: () => [daysAgo(0, 'db').id, daysAgo(90, 'files').id, daysAgo(200, 'all').id],
    },
  ]
  for (const c of cases) {
    it(c.name, () => {
      expect(kept(c.backups, c.policy)).toEqual(c.keep(c.backups).sort())
    })
  }

  it('gives reasons for what it keeps', () => {
    const [first] = planRetention([daysAgo(0, 'db', true)], policy({}), now)
    expect(first.reasons).toEqual(
      expect.arrayContaining(['keep-last 1 (#1)', 'newest db backup', 'newest verified backup']),
    )
  })
})
