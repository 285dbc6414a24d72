import {describe, expect, it} from 'vitest'

import {parseBackupHistory, baseWalSegments} from '../../src/backup/physical.js'
import {checkContinuity, latestTimeline} from '../../src/wal/continuity.js'
import {
  formatLsn,
  parseLsn,
  parseTimelineHistory,
  parseWalFileName,
  readSegmentHeader,
  segmentName,
  segnoBefore,
  segnoOf,
  timelineForSegment,
  timelinePath,
} from '../../src/wal/names.js'
import type {ArchivedFile} from '../../src/wal/archive.js'

describe('WAL names and positions', () => {
  it('parses every kind PostgreSQL archives and rejects anything else', () => {
    expect(parseWalFileName('0000000200000001000000FF')).toEqual({
      name: '0000000200000001000000FF',
      kind: 'segment',
      timeline: 2,
      segno: 0x1ffn,
    })
    expect(parseWalFileName('000000010000000000000003.partial')?.kind).toBe('partial')
    expect(parseWalFileName('000000010000000000000003.00000028.backup')?.kind).toBe('backup')
    expect(parseWalFileName('0000000A.history')).toEqual({name: '0000000A.history', kind: 'history', timeline: 10})
    for (const bad of [
      '../etc/passwd',
      '00000001000000000000000',
      '000000010000000000000003.zst',
      '0000000100000000000001000',
      '000000010000000000000100',
      'RECOVERYHISTORY',
    ]) {
      expect(parseWalFileName(bad)).toBeUndefined()
    }
  })

  it('does LSN and segment arithmetic like PostgreSQL', () => {
    expect(parseLsn('1/A0000028')).toBe(0x1_a000_0028n)
    expect(formatLsn(0x1_a000_0028n)).toBe('1/A0000028')
    expect(() => parseLsn('12')).toThrow(/not a WAL position/)
    expect(segmentName(1, segnoOf(parseLsn('1/A0000028')))).toBe('0000000100000001000000A0')
    // at a segment boundary the previous segment holds the last byte (pg_walfile_name)
    expect(segmentName(1, segnoBefore(parseLsn('0/3000000')))).toBe('000000010000000000000002')
    expect(baseWalSegments(1, '0/2000028', '0/4000100')).toEqual([
      '000000010000000000000002',
      '000000010000000000000003',
      '000000010000000000000004',
    ])
  })

  it('reads the long page header of a segment', () => {
    const page = Buffer.alloc(8192)
    page.writeUInt16LE(0xd110, 0)
    page.writeUInt16LE(0x0002, 2)
    page.writeUInt32LE(3, 4)
    page.writeBigUInt64LE(7311234567890123456n, 24)
    page.writeUInt32LE(16 * 1024 * 1024, 32)
    expect(readSegmentHeader(page)).toMatchObject({
      postgresMajor: 15,
      timeline: 3,
      systemIdentifier: '7311234567890123456',
      segmentSize: 16 * 1024 * 1024,
    })
    page.writeUInt16LE(0, 2)
    expect(readSegmentHeader(page)).toBeUndefined()
  })

  it('follows timeline history files', () => {
    const history = parseTimelineHistory(
      '1\t0/5000110\tno recovery target specified\n\n2\t0/9000000\tat restore point "x"\n',
    )
    expect(history).toEqual([
      {timeline: 1, switchLsn: 0x5000110n, reason: 'no recovery target specified'},
      {timeline: 2, switchLsn: 0x9000000n, reason: 'at restore point "x"'},
    ])
    const spans = timelinePath(3, history)
    expect(timelineForSegment(spans, 4n)).toBe(1)
    expect(timelineForSegment(spans, 5n)).toBe(2) // the switch segment is read from the new timeline
    expect(timelineForSegment(spans, 8n)).toBe(2)
    expect(timelineForSegment(spans, 9n)).toBe(3)
  })

  it('parses the backup history file the server archives after a base backup', () => {
    const text =
      'START WAL LOCATION: 0/2000028 (file 000000010000000000000002)\nSTOP WAL LOCATION: 0/2000138 (file 000000010000000000000002)\nCHECKPOINT LOCATION: 0/2000060\nBACKUP METHOD: streamed\nBACKUP FROM: primary\nSTART TIME: 2026-11-28 10:42:34 UTC\nLABEL: charge-ops 20261128T104234Z-base-cc7d\nSTART TIMELINE: 1\nSTOP TIME: 2026-11-28 10:42:35 UTC\nSTOP TIMELINE: 1\n'
    expect(parseBackupHistory(text)).toEqual({
      startLsn: '0/2000028',
      stopLsn: '0/2000138',
      timeline: 1,
      label: 'charge-ops 20261128T104234Z-base-cc7d',
      stopTimeline: 1,
    })
  })
})

describe('archive continuity', () => {
  const file = (name: string, mtime = new Date(0)): ArchivedFile => ({
    ...parseWalFileName(name)!,
    key: `s/wal/${name.slice(0, 8)}/${name}.zst`,
    size: 1,
    mtime,
  })
  const seg = (tl: number, n: number) => segmentName(tl, BigInt(n))

  it('names the first hole after the base backup', () => {
    const archive = [2, 3, 5, 6].map((n) => file(seg(1, n)))
    const report = checkContinuity({
      archive,
      histories: new Map(),
      baseTimeline: 1,
      baseStartLsn: 0x2000028n,
      baseStopLsn: 0x2000100n,
      targetTimeline: 'latest',
    })
    expect(report.missing).toBe('000000010000000000000004')
    expect(report.lastSegment).toBe('000000010000000000000003')
  })

  it('reports a base backup whose own WAL is missing', () => {
    const report = checkContinuity({
      archive: [file(seg(1, 2))],
      histories: new Map(),
      baseTimeline: 1,
      baseStartLsn: 0x2000028n,
      baseStopLsn: 0x3000100n,
      targetTimeline: 'latest',
    })
    expect(report.baseIncomplete).toBe('000000010000000000000003')
  })

  it('crosses a timeline switch and ignores the abandoned branch', () => {
    const histories = new Map([[2, '1\t0/5000110\tno recovery target specified\n']])
    // TL1 continues past the switch (the old primary kept writing): those segments are not on the path
    const archive = [2, 3, 4, 5, 6, 7]
      .map((n) => file(seg(1, n)))
      .concat(
        [5, 6].map((n) => file(seg(2, n))),
        [file('00000002.history')],
      )
    expect(latestTimeline(1, histories)).toBe(2)
    const report = checkContinuity({
      archive,
      histories,
      baseTimeline: 1,
      baseStartLsn: 0x2000028n,
      baseStopLsn: 0x2000100n,
      targetTimeline: 'latest',
    })
    expect(report).toMatchObject({
      timeline: 2,
      missing: undefined,
      lastSegment: '000000020000000000000006',
      segmentCount: 5,
    })
    const stay = checkContinuity({
      archive,
      histories,
      baseTimeline: 1,
      baseStartLsn: 0x2000028n,
      baseStopLsn: 0x2000100n,
      targetTimeline: 1,
    })
    expect(stay.lastSegment).toBe('000000010000000000000007')
    // the new timeline's copy of the switch segment is required
    const broken = checkContinuity({
      archive: archive.filter((f) => f.name !== seg(2, 5)),
      histories,
      baseTimeline: 1,
      baseStartLsn: 0x2000028n,
      baseStopLsn: 0x2000100n,
      targetTimeline: 'latest',
    })
    expect(broken.missing).toBe('000000020000000000000005')
  })
})

describe('WAL retention', () => {
  it('keeps everything a kept base backup needs and nothing older', async () => {
    const {planWalRetention} = await import('../../src/backup/physical-retention.js')
    const f = (name: string): ArchivedFile => ({
      ...parseWalFileName(name)!,
      key: `s/wal/${name.slice(0, 8)}/${name}.zst`,
      size: 1,
      mtime: new Date(0),
    })
    const archive = [1, 2, 3, 4, 5, 6]
      .map((n) => f(segmentName(1, BigInt(n))))
      .concat([f('000000010000000000000003.00000028.backup'), f('00000002.history'), f(segmentName(2, 6n))])
    const plan = planWalRetention(archive, [
      {id: 'b2', base: {startLsn: '0/5000028', timeline: 1}},
      {id: 'b1', base: {startLsn: '0/3000028', timeline: 1}},
    ])
    expect(plan.keepFrom).toBe('000000010000000000000003')
    expect(plan.delete.map((x) => x.name)).toEqual(['000000010000000000000001', '000000010000000000000002'])
    expect(planWalRetention(archive, []).delete).toEqual([])
  })
})
