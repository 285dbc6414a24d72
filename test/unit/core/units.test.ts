/** src/core/units: one grammar for durations and sizes (flags and postgresql.conf), and the formatters. */
import {describe, expect, it} from 'vitest'

import {
  formatDuration,
  formatMs,
  formatPgDuration,
  parseDuration,
  parseTimeout,
  tryParseDuration,
} from '../../../src/core/units/duration.js'
import {formatBytes, formatPgMemory, pgSize, tryParseSize} from '../../../src/core/units/size.js'
import {ExitCode} from '../../../src/errors.js'

const GB = 1024 ** 3

describe('durations', () => {
  it.each([
    ['500ms', 500],
    ['10s', 10_000],
    ['10 sec', 10_000],
    ['30m', 1_800_000],
    ['30min', 1_800_000],
    ['2H', 7_200_000],
    ['7d', 604_800_000],
    ['1.5h', 5_400_000],
  ])('flag grammar: %s', (text, ms) => expect(tryParseDuration(text)).toBe(ms))

  it('a bare number needs bareMs; a minus needs negative', () => {
    expect(tryParseDuration('300')).toBeUndefined()
    expect(tryParseDuration('300', {bareMs: 1000})).toBe(300_000)
    expect(tryParseDuration('-1', {bareMs: 1})).toBeUndefined()
    expect(tryParseDuration('-1', {bareMs: 1, negative: true})).toBe(-1)
    expect(tryParseDuration('ten seconds')).toBeUndefined()
  })

  it('postgres units refuse what postgresql.conf refuses (m) and accept us', () => {
    expect(tryParseDuration('15min', {units: 'postgres'})).toBe(900_000)
    expect(tryParseDuration('5m', {units: 'postgres'})).toBeUndefined()
    expect(tryParseDuration('1500us', {units: 'postgres'})).toBe(1.5)
  })

  it('parseDuration: exit 2 with the caller message; parseTimeout: bare milliseconds', () => {
    expect(() => parseDuration('soon', {message: '--ttl "soon" is not a duration'})).toThrow(
      expect.objectContaining({exitCode: ExitCode.usage, message: '--ttl "soon" is not a duration'}),
    )
    expect(() => parseDuration('soon', {what: '--lock-wait'})).toThrow('invalid --lock-wait "soon"')
    expect(parseTimeout('0')).toBe(0)
    expect(parseTimeout('250')).toBe(250)
    expect(parseTimeout('30m')).toBe(1_800_000)
  })

  it('formats', () => {
    expect([formatDuration(45_000), formatDuration(725_000), formatDuration(12_000_000), formatDuration(-1)]).toEqual([
      '45s',
      '12m05s',
      '3h20m',
      '?',
    ])
    expect([formatMs(850), formatMs(2345), formatMs(184_000)]).toEqual(['850 ms', '2.35 s', '3 min 4 s'])
    expect([
      formatPgDuration(3_600_000),
      formatPgDuration(900_000),
      formatPgDuration(30_000),
      formatPgDuration(200),
    ]).toEqual(['1h', '15min', '30s', '200ms'])
  })
})

describe('sizes', () => {
  it.each([
    ['16GB', 16 * GB],
    ['16G', 16 * GB],
    ['16GiB', 16 * GB],
    ['16 gb', 16 * GB],
    ['8192MB', 8 * GB],
    ['100B', 100],
    ['100', 100],
    ['big', undefined],
    ['-1GB', undefined],
  ])('any grammar: %s', (text, bytes) => expect(tryParseSize(text)).toBe(bytes))

  it('bareBytes, and the postgres grammar (its units only; -1 allowed)', () => {
    expect(tryParseSize('16', {bareBytes: GB})).toBe(16 * GB)
    expect(tryParseSize('524288', {bareBytes: 8192, units: 'postgres'})).toBe(4 * GB)
    expect(tryParseSize('256MB', {bareBytes: 1024, units: 'postgres'})).toBe(256 * 1024 ** 2)
    expect(tryParseSize('256M', {units: 'postgres'})).toBeUndefined()
    expect(tryParseSize('-1', {bareBytes: 1024, units: 'postgres'})).toBe(-1024)
  })

  it('formats', () => {
    expect([formatBytes(512), formatBytes(1536), formatBytes(-2 * GB)]).toEqual(['512 B', '1.5 KiB', '-2.0 GiB'])
    expect([formatPgMemory(8 * GB), formatPgMemory(128 * 1024 ** 2), formatPgMemory(1.5 * GB)]).toEqual([
      '8GB',
      '128MB',
      '1.5GB',
    ])
    expect([pgSize(4 * GB), pgSize(3.5 * GB)]).toEqual(['4GB', '3584MB'])
  })
})
