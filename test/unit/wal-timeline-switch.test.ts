/** The first segment of a new timeline: old-timeline pages before the switch point, new ones after. */
import {describe, expect, it} from 'vitest'

import {judgeTimelineSwitchSegment} from '../../src/wal/timeline-switch.js'

const SEG = 16 * 1024 * 1024
const PAGE = 8192

/** Segment 4 (0/4000000 … 0/5000000): pages before `switchAt` carry `oldTli`, the rest `newTli`. */
function switchSegment(switchAt: bigint, oldTli: number, newTli: number, options: {zeroFrom?: number} = {}): Buffer {
  const data = Buffer.alloc(SEG)
  const start = 4n * BigInt(SEG)
  for (let off = 0; off < SEG; off += PAGE) {
    if (options.zeroFrom !== undefined && off >= options.zeroFrom) break
    const pageStart = start + BigInt(off)
    data.writeUInt16LE(0xd110, off)
    data.writeUInt16LE(off === 0 ? 0x0002 : 0, off + 2)
    data.writeUInt32LE(
      pageStart + BigInt(PAGE) <= switchAt || (pageStart < switchAt && pageStart + BigInt(PAGE) > switchAt)
        ? oldTli
        : newTli,
      off + 4,
    )
    data.writeBigUInt64LE(pageStart, off + 8)
  }
  data.writeBigUInt64LE(7_311_234_567_890_123_456n, 24)
  data.writeUInt32LE(SEG, 32)
  data.writeUInt32LE(PAGE, 36)
  return data
}

const at = (offset: number) => 4n * BigInt(SEG) + BigInt(offset)
const history2 = (switchLsn: string) => `1\t${switchLsn}\tbefore 2026-12-03 09:29:20.1+00\n`

describe('judgeTimelineSwitchSegment', () => {
  it('accepts the segment a timeline began in, its first pages from the parent timeline', () => {
    const data = switchSegment(at(5 * PAGE + 100), 1, 2)
    expect(judgeTimelineSwitchSegment(data, {timeline: 2, segno: 4n}, history2('0/400A064'))).toMatchObject({
      ok: true,
      parent: 1,
    })
    // pages never written after the switch (zero headers) are fine
    expect(
      judgeTimelineSwitchSegment(
        switchSegment(at(5 * PAGE + 100), 1, 2, {zeroFrom: 9 * PAGE}),
        {timeline: 2, segno: 4n},
        history2('0/400A064'),
      ).ok,
    ).toBe(true)
  })

  it('accepts a grandchild timeline whose history lists several ancestors', () => {
    const data = switchSegment(at(3 * PAGE + 8), 2, 3)
    expect(judgeTimelineSwitchSegment(data, {timeline: 3, segno: 4n}, `1\t0/2000100\tx\n2\t0/4006008\ty\n`).ok).toBe(
      true,
    )
  })

  it('refuses when the switch point lies in another segment', () => {
    const data = switchSegment(at(5 * PAGE + 100), 1, 2)
    const verdict = judgeTimelineSwitchSegment(data, {timeline: 2, segno: 4n}, history2('0/300A064'))
    expect(verdict.ok).toBe(false)
    expect(verdict.reason).toMatch(/branched off timeline 1 at 0\/300A064, outside this segment/)
  })

  it('refuses a page after the switch point that still carries the old timeline', () => {
    const data = switchSegment(at(5 * PAGE + 100), 1, 2)
    data.writeUInt32LE(1, 20 * PAGE + 4)
    expect(judgeTimelineSwitchSegment(data, {timeline: 2, segno: 4n}, history2('0/400A064')).reason).toMatch(
      /the page at 0\/4028000, after the switch point 0\/400A064, carries timeline 1 instead of 2/,
    )
  })

  it('refuses a first page from a timeline that is not an ancestor', () => {
    const data = switchSegment(at(5 * PAGE + 100), 7, 2)
    expect(judgeTimelineSwitchSegment(data, {timeline: 2, segno: 4n}, history2('0/400A064')).reason).toMatch(
      /first page carries timeline 7, which is not an ancestor of timeline 2/,
    )
  })

  it('refuses a page that belongs to another position (recycled or foreign bytes)', () => {
    const data = switchSegment(at(5 * PAGE + 100), 1, 2)
    data.writeBigUInt64LE(at(0), 30 * PAGE + 8)
    expect(judgeTimelineSwitchSegment(data, {timeline: 2, segno: 4n}, history2('0/400A064')).reason).toMatch(
      /the page at 0\/403C000 is not a WAL page of this segment/,
    )
  })

  it('refuses an unparseable or empty history', () => {
    const data = switchSegment(at(5 * PAGE + 100), 1, 2)
    expect(judgeTimelineSwitchSegment(data, {timeline: 2, segno: 4n}, 'garbage').ok).toBe(false)
    expect(judgeTimelineSwitchSegment(data, {timeline: 2, segno: 4n}, '').reason).toMatch(/no parent/)
  })
})
