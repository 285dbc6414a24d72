/**
 * The web UI's data shaping (web/src): samples → plot series, finding → time range, keyboard zoom,
 * runtime configuration, reconnect backoff, and what an error report may carry.
 */
import {describe, expect, it} from 'vitest'

import {reconnectDelay} from '../../web/src/backoff.js'
import {DEFAULT_CONFIG, endpoints, mergeConfig} from '../../web/src/config.js'
import {scrub} from '../../web/src/scrub.js'
import {chartOfFinding, findingRange, toPlotSeries, zoomed, type SessionSeries} from '../../web/src/shaping.js'

const T0 = Date.parse('2024-05-02T09:00:00Z') / 1000
const series = (t: number[], extra: Partial<SessionSeries> = {}): SessionSeries => ({
  samples: t.length,
  decimated: false,
  t: t.map((s) => T0 + s),
  voltage: t.map(() => 400),
  current: t.map((_, i) => 100 + i),
  soc: t.map((_, i) => 20 + i),
  temp: t.map((_, i) => 30 + i),
  ...extra,
})

describe('toPlotSeries', () => {
  it('derives power in kW from V·I and keeps every sample aligned', () => {
    const p = toPlotSeries(series([0, 5, 10]))
    expect([...p.t]).toEqual([T0, T0 + 5, T0 + 10])
    expect(p.y.power).toEqual([40, 40.4, 40.8])
    expect(p.y.soc).toEqual([20, 21, 22])
    expect(p.y.temp).toEqual([30, 31, 32])
    expect(p.range).toEqual({min: T0, max: T0 + 10})
    expect(p.gaps).toBe(0)
  })

  it('breaks the lines inside a gap longer than 30 s (a null in its middle), not at 30 s exactly', () => {
    const p = toPlotSeries(series([0, 30, 100, 105]))
    expect(p.gaps).toBe(1)
    expect([...p.t]).toEqual([T0, T0 + 30, T0 + 65, T0 + 100, T0 + 105])
    for (const key of ['power', 'soc', 'voltage', 'current', 'temp'] as const) expect(p.y[key][2]).toBeNull()
    expect(p.y.current).toEqual([100, 101, null, 102, 103])
  })

  it('handles an empty session', () => {
    const p = toPlotSeries(series([]))
    expect(p.t.length).toBe(0)
    expect(p.range).toEqual({min: 0, max: 0})
  })
})

describe('findingRange', () => {
  const range = {min: T0, max: T0 + 3600}
  it('maps ISO times to epoch seconds on the axis', () => {
    expect(
      findingRange(
        {kind: 'over_temperature', startedAt: '2024-05-02T09:07:35Z', endedAt: '2024-05-02T09:13:05Z'},
        range,
      ),
    ).toEqual({start: T0 + 455, end: T0 + 785})
  })
  it('widens a one-sample episode around its instant so it stays visible', () => {
    expect(
      findingRange(
        {kind: 'abnormal_voltage', startedAt: '2024-05-02T09:10:00Z', endedAt: '2024-05-02T09:10:00Z'},
        range,
        10,
      ),
    ).toEqual({start: T0 + 595, end: T0 + 605})
  })
  it('clamps to the data and drops a finding outside it', () => {
    expect(
      findingRange({kind: 'derating', startedAt: '2024-05-02T08:59:00Z', endedAt: '2024-05-02T09:01:00Z'}, range),
    ).toEqual({start: T0, end: T0 + 60})
    expect(
      findingRange({kind: 'derating', startedAt: '2024-05-02T11:00:00Z', endedAt: '2024-05-02T11:05:00Z'}, range),
    ).toBeNull()
    expect(findingRange({kind: 'derating', startedAt: 'garbage', endedAt: '2024-05-02T11:05:00Z'}, range)).toBeNull()
  })
  it('puts each kind on its curve', () => {
    expect(chartOfFinding('over_temperature')).toBe('temp')
    expect(chartOfFinding('abnormal_voltage')).toBe('voltage')
    expect(chartOfFinding('derating')).toBe('power')
    expect(chartOfFinding('something_new')).toBe('power')
  })
})

describe('zoomed', () => {
  const range = {min: 0, max: 1000}
  it('halves and doubles around the middle, within the data', () => {
    expect(zoomed({min: 0, max: 1000}, range, 0.5)).toEqual({min: 250, max: 750})
    expect(zoomed({min: 250, max: 750}, range, 2)).toEqual({min: 0, max: 1000})
    expect(zoomed({min: 900, max: 1000}, range, 2)).toEqual({min: 800, max: 1000})
    expect(zoomed({min: 0, max: 40}, range, 0.5)).toEqual({min: 5, max: 35}) // never below 30 s
  })
})

describe('configuration', () => {
  it('runtime config.json wins over the build, empty values do not', () => {
    const build = {title: 'Built', apiUrl: 'https://api.example.com/api/v1/', wsUrl: ''}
    expect(mergeConfig(build, undefined)).toEqual({title: 'Built', apiUrl: 'https://api.example.com/api/v1', wsUrl: ''})
    expect(mergeConfig(build, {apiUrl: '/api/v1', title: '  ', wsUrl: 'wss://x.example/ws'})).toEqual({
      title: 'Built',
      apiUrl: '/api/v1',
      wsUrl: 'wss://x.example/ws',
    })
    expect(mergeConfig({}, {apiUrl: 42})).toEqual(DEFAULT_CONFIG)
  })
  it('resolves same-origin defaults and the guide’s cross-origin form', () => {
    const here = {origin: 'https://app.example.com', protocol: 'https:', host: 'app.example.com'}
    expect(endpoints(DEFAULT_CONFIG, here)).toEqual({
      api: 'https://app.example.com/api/v1',
      health: 'https://app.example.com/health',
      ws: 'wss://app.example.com/ws',
    })
    const guide = mergeConfig({apiUrl: 'https://api.example.com/api/v1', wsUrl: 'wss://api.example.com/ws'})
    expect(endpoints(guide, here)).toEqual({
      api: 'https://api.example.com/api/v1',
      health: 'https://api.example.com/health',
      ws: 'wss://api.example.com/ws',
    })
    expect(
      endpoints(DEFAULT_CONFIG, {origin: 'http://127.0.0.1:8000', protocol: 'http:', host: '127.0.0.1:8000'}).ws,
    ).toBe('ws://127.0.0.1:8000/ws')
  })
})

describe('reconnect backoff and error reports', () => {
  it('grows from 1 s to a 30 s cap with ±20 % jitter', () => {
    expect(reconnectDelay(0, () => 0.5)).toBe(1000)
    expect(reconnectDelay(3, () => 0.5)).toBe(8000)
    expect(reconnectDelay(20, () => 0.5)).toBe(30_000)
    expect(reconnectDelay(0, () => 0)).toBe(800)
    expect(reconnectDelay(0, () => 1)).toBe(1200)
  })
  it('never carries a token', () => {
    const jwt = 'eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJvcHMifQ.c2lnbmF0dXJl'
    expect(scrub(`failed with ${jwt} at x`)).toBe('failed with [token] at x')
    expect(scrub('Authorization: Bearer abc.def')).toBe('Authorization: Bearer [token]')
    expect(scrub('x'.repeat(5000))).toHaveLength(4000)
  })
})
