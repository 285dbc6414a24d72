import {describe, expect, it} from 'vitest'

import {dangerousLifecycleRules, newestPerKind, retentionDays} from '../../src/capacity/backup-checks.js'
import {estimateGrowth} from '../../src/capacity/history.js'
import {normaliseSetting, parseConfAssignments} from '../../src/capacity/pg-checks.js'
import {buildReport, renderNagios, renderPrometheus, renderText} from '../../src/capacity/render.js'
import {evaluate, thresholdsFor} from '../../src/capacity/thresholds.js'
import type {CheckResult} from '../../src/capacity/types.js'

const now = new Date('2026-11-28T12:00:00Z')
const r = (over: Partial<CheckResult>): CheckResult => ({
  id: 'pg.connections_pct',
  component: 'postgresql',
  title: 'Connections',
  status: 'ok',
  value: 10,
  unit: '%',
  thresholds: {warning: 80, critical: 95},
  message: 'fine',
  ...over,
})

describe('thresholds', () => {
  it('higher is worse when warning < critical', () => {
    expect(evaluate(79, {warning: 80, critical: 95})).toBe('ok')
    expect(evaluate(80, {warning: 80, critical: 95})).toBe('warning')
    expect(evaluate(96, {warning: 80, critical: 95})).toBe('critical')
  })
  it('lower is worse when warning > critical (free disk, hit ratio)', () => {
    expect(evaluate(50, {warning: 15, critical: 5})).toBe('ok')
    expect(evaluate(10, {warning: 15, critical: 5})).toBe('warning')
    expect(evaluate(5, {warning: 15, critical: 5})).toBe('critical')
  })
  it('no value is unknown; charge-ops.yaml overrides the default', () => {
    expect(evaluate(null, {warning: 1, critical: 2})).toBe('unknown')
    expect(thresholdsFor('disk.free_pct', undefined)).toEqual({warning: 15, critical: 5})
    expect(thresholdsFor('disk.free_pct', {'disk.free_pct': {warning: 99, critical: 98}})).toEqual({
      warning: 99,
      critical: 98,
    })
  })
})

describe('renderers', () => {
  const results = [
    r({}),
    r({
      id: 'redis.evicted_keys',
      component: 'redis',
      status: 'critical',
      value: 1500,
      unit: 'count',
      thresholds: {warning: 1, critical: 1000},
      message: '1500 keys evicted',
      remedy: 'raise maxmemory',
    }),
    r({
      id: 'disk.free_pct',
      component: 'disk',
      status: 'warning',
      value: 12.5,
      labels: {role: 'uploads', path: '/srv/up"loads'},
      thresholds: {warning: 15, critical: 5},
      message: 'low',
    }),
  ]
  const report = buildReport(results, now)

  it('nagios: status line, perfdata with thresholds, exit code per the plugin API', () => {
    const n = renderNagios(report)
    expect(n.exitCode).toBe(2)
    const first = n.text.split('\n')[0]
    expect(first).toMatch(/^CRITICAL - redis\.evicted_keys 1500 keys evicted; disk\.free_pct\[role=uploads/)
    expect(n.text).toContain("'pg.connections_pct'=10%;80;95")
    expect(n.text).toContain("'redis.evicted_keys'=1500;1;1000")
    expect(n.text).toContain("'disk.free_pct_uploads'=12.5%;15;5")
    expect(renderNagios(buildReport([r({})], now))).toEqual({
      text: "OK - 1 checks ok | 'pg.connections_pct'=10%;80;95",
      exitCode: 0,
    })
    expect(renderNagios(buildReport([r({status: 'unknown', value: null})], now)).exitCode).toBe(3)
    expect(renderNagios(buildReport([r({status: 'warning'})], now)).exitCode).toBe(1)
  })

  it('prometheus: HELP/TYPE once per family, escaped labels, status gauge', () => {
    const text = renderPrometheus(report)
    expect(text).toContain('# TYPE charge_ops_check_status gauge')
    expect(text).toContain('charge_ops_check_status{check="redis.evicted_keys",component="redis"} 2')
    // base units: disk.free_pct (12.5 %) is exposed as a ratio
    expect(text).toContain('charge_ops_disk_free_ratio{role="uploads",path="/srv/up\\"loads"} 0.125')
    expect(text).toContain('charge_ops_disk_free_ratio_threshold{level="warning"} 0.15')
    expect(
      text
        .split('\n')
        .filter((l) => !l.startsWith('#') && !l.startsWith('charge_ops_check_status'))
        .join('\n'),
    ).not.toContain('_pct')
    expect(text).toContain('charge_ops_redis_evicted_keys_threshold{level="critical"} 1000')
    const types = text.split('\n').filter((l) => l.startsWith('# TYPE '))
    expect(new Set(types).size).toBe(types.length)
    // every sample line is name{labels} value
    for (const line of text
      .trim()
      .split('\n')
      .filter((l) => !l.startsWith('#')))
      expect(line).toMatch(/^[a-zA-Z_:][a-zA-Z0-9_:]*(\{.*\})? -?[0-9.e+Inf]+$/)
  })

  it('table: remedies for what is not ok, summary line', () => {
    const text = renderText(report)
    expect(text).toContain('CRITICAL redis.evicted_keys: raise maxmemory')
    expect(text).toMatch(/CRITICAL: 1 ok, 1 warning, 1 critical, 0 unknown$/)
  })
})

describe('settings drift normalisation', () => {
  it('compares memory and time values in pg_settings base units', () => {
    expect(normaliseSetting('256MB', '8kB', 'integer')).toBe('32768')
    expect(normaliseSetting('32768', '8kB', 'integer')).toBe('32768')
    expect(normaliseSetting('64MB', 'kB', 'integer')).toBe('65536')
    expect(normaliseSetting('15min', 's', 'integer')).toBe('900')
    expect(normaliseSetting("'on'", null, 'bool')).toBe('on')
    expect(normaliseSetting('true', null, 'bool')).toBe('on')
    expect(normaliseSetting("'replica'", null, 'enum')).toBe('replica')
  })
  it('parses postgresql.conf assignments with comments and line numbers', () => {
    const m = parseConfAssignments("# c\nmax_connections = 200   # pool\nshared_buffers '8GB'\ninclude 'x.conf'\n")
    expect(m.get('max_connections')).toEqual({value: '200', line: 2})
    expect(m.get('shared_buffers')).toEqual({value: "'8GB'", line: 3})
    expect(m.has('include')).toBe(false)
  })
})

describe('backups', () => {
  it('newest verified per kind; `all` counts as db and files', () => {
    const ms = [
      {
        id: '20261127T020000Z-all-aaaa',
        kind: 'all',
        finishedAt: '2026-11-27T02:10:00Z',
        verification: {ok: true, verifiedAt: '2026-11-27T03:00:00Z'},
      },
      {id: '20261128T020000Z-db-bbbb', kind: 'db', finishedAt: '2026-11-28T02:05:00Z'},
      // a failed verification is not a verified backup
      {
        id: '20261128T030000Z-files-cccc',
        kind: 'files',
        finishedAt: '2026-11-28T03:05:00Z',
        verification: {ok: false, verifiedAt: '2026-11-28T04:00:00Z'},
      },
    ]
    const n = newestPerKind(ms)
    expect(n.db.complete!.id).toBe('20261128T020000Z-db-bbbb')
    expect(n.db.verified!.id).toBe('20261127T020000Z-all-aaaa')
    expect(n.files.verified!.id).toBe('20261127T020000Z-all-aaaa')
    expect(n.files.complete!.id).toBe('20261128T030000Z-files-cccc')
  })
  it('flags lifecycle rules that expire WAL or backups retention needs', () => {
    const needed = retentionDays({keepDays: 30, daily: 7, weekly: 4, monthly: 6})
    expect(needed).toBe(186)
    const bad = dangerousLifecycleRules(
      [
        {ID: 'wal-7d', Status: 'Enabled', Filter: {Prefix: 'prod/charge/wal/'}, Expiration: {Days: 7}},
        {ID: 'tmp', Status: 'Enabled', Filter: {Prefix: 'tmp/'}, Expiration: {Days: 1}},
        {ID: 'everything-1y', Status: 'Enabled', Filter: {Prefix: ''}, Expiration: {Days: 365}},
        {ID: 'disabled', Status: 'Disabled', Filter: {Prefix: ''}, Expiration: {Days: 1}},
        {ID: 'all-90', Status: 'Enabled', Prefix: 'prod/', Expiration: {Days: 90}},
      ],
      'prod/',
      'charge',
      needed,
    )
    expect(bad.map((b) => b.rule)).toEqual(['wal-7d', 'all-90'])
    expect(bad[1].reason).toContain('backups and WAL')
  })
  it('growth: no claim from a few minutes around a bulk load; a fit over the kept hours says its window', () => {
    const t = now.getTime()
    const GiB = 1024 ** 3
    const at = (msAgo: number) => new Date(t - msAgo).toISOString()
    // the paging bug: two runs a minute apart, 1.2 GiB loaded in between → no growth, and why
    const short = estimateGrowth([{at: at(60_000), databaseBytes: GiB}], 'databaseBytes', 2.2 * GiB, now)
    expect(short).toEqual({insufficient: expect.stringMatching(/spanning 6 h .* span 0 h/)})
    // a week of daily samples growing 100 MiB/day, the same 1.2 GiB bulk load in the last minute,
    // plus a burst of manual runs this hour (one point per hour): the fit stays near the trend
    const daily = Array.from({length: 7}, (_, i) => ({
      at: at((7 - i) * 86_400_000),
      databaseBytes: GiB + i * 100 * 1024 ** 2,
    }))
    const burst = Array.from({length: 20}, (_, i) => ({at: at(60_000 + i * 1000), databaseBytes: 1.7 * GiB}))
    const g = estimateGrowth([...daily, ...burst], 'databaseBytes', 2.9 * GiB, now)
    if ('insufficient' in g) throw new Error(g.insufficient)
    expect(g.windowSeconds).toBe(7 * 86_400)
    expect(g.points).toBe(9) // 7 daily + 1 for this hour's burst + now
    expect(g.since).toBe(at(7 * 86_400_000))
    // the naive two-point slope over the last minute would be ~1.2 GiB/min ≈ 1.7 TiB/day
    expect(g.perDay).toBeGreaterThan(100 * 1024 ** 2)
    expect(g.perDay).toBeLessThan(400 * 1024 ** 2)
    // samples older than the window are ignored
    const old = estimateGrowth(
      [{at: at(30 * 86_400_000), databaseBytes: 0}, ...daily],
      'databaseBytes',
      GiB + 700 * 1024 ** 2,
      now,
    )
    expect('insufficient' in old ? 0 : old.perDay).toBeCloseTo(100 * 1024 ** 2, -5)
    expect(estimateGrowth([], 'databaseBytes', 3000, now)).toHaveProperty('insufficient')
  })
})
