/**
 * The first segment of a new timeline, as PostgreSQL writes it when it promotes in the middle of a
 * segment: it copies the old timeline's segment up to the switch point into a file named with
 * the NEW timeline, so every page before the switch point (the first page's long header
 * included) still carries the OLD timeline ID; pages after it carry the new one. `wal push` must
 * accept exactly that and nothing else, so it judges the segment by
 *  - its name (timeline N, segment number),
 *  - N's timeline history file (N's ancestors and where N branched off), and
 *  - every page header: before the switch point an ancestor's timeline, after it N; the page that
 *    holds the switch point may carry either; a page never written (all-zero header) is allowed.
 * The system identifier is checked by the caller from the long header, as for any segment.
 */
import {DEFAULT_SEGMENT_SIZE, formatLsn, hex8, parseTimelineHistory, type TimelineHistoryEntry} from './names.js'

const XLOG_PAGE_SIZE_OFFSET = 36 // xlp_xlog_blcksz in the long page header

export interface SwitchVerdict {
  ok: boolean
  /** why the segment is refused (undefined when ok) */
  reason?: string
  /** the switch point into the segment's timeline, when it lies in this segment */
  switchLsn?: bigint
  parent?: number
}

/**
 * Judges a segment named with `timeline` whose first page carries another timeline.
 * `historyText` is the content of `<timeline>.history`.
 */
export function judgeTimelineSwitchSegment(
  segment: Buffer,
  name: {timeline: number; segno: bigint},
  historyText: string,
  segmentSize = DEFAULT_SEGMENT_SIZE,
): SwitchVerdict {
  let history: TimelineHistoryEntry[]
  try {
    history = parseTimelineHistory(historyText)
  } catch (error) {
    return {
      ok: false,
      reason: `its timeline history file ${hex8(name.timeline)}.history is unreadable: ${(error as Error).message}`,
    }
  }
  const parentEntry = history.at(-1)
  if (!parentEntry)
    return {ok: false, reason: `timeline ${name.timeline} has no parent in ${hex8(name.timeline)}.history`}
  const ancestors = new Set(history.map((e) => e.timeline))
  const start = name.segno * BigInt(segmentSize)
  const end = start + BigInt(segmentSize)
  const switchLsn = parentEntry.switchLsn
  const first = segment.readUInt32LE(4)
  if (!ancestors.has(first))
    return {
      ok: false,
      reason: `its first page carries timeline ${first}, which is not an ancestor of timeline ${name.timeline} (${hex8(name.timeline)}.history)`,
    }
  if (switchLsn <= start || switchLsn >= end) {
    return {
      ok: false,
      reason: `timeline ${name.timeline} branched off timeline ${parentEntry.timeline} at ${formatLsn(switchLsn)}, outside this segment (${formatLsn(start)} – ${formatLsn(end)}): only the segment holding the switch point may begin with the old timeline's pages`,
    }
  }
  if (segment.length !== segmentSize)
    return {ok: false, reason: `it is ${segment.length} bytes, not a whole ${segmentSize}-byte segment`}
  const pageSize = segment.readUInt32LE(XLOG_PAGE_SIZE_OFFSET) || 8192
  const magic = segment.readUInt16LE(0)
  for (let offset = 0; offset < segmentSize; offset += pageSize) {
    const pageStart = start + BigInt(offset)
    const pageEnd = pageStart + BigInt(pageSize)
    const pageMagic = segment.readUInt16LE(offset)
    const tli = segment.readUInt32LE(offset + 4)
    const address = segment.readBigUInt64LE(offset + 8)
    if (pageMagic === 0 && tli === 0 && address === 0n) continue // never written (zero-filled)
    const where = `the page at ${formatLsn(pageStart)}`
    if (pageMagic !== magic || address !== pageStart)
      return {
        ok: false,
        reason: `${where} is not a WAL page of this segment (magic ${pageMagic.toString(16)}, address ${formatLsn(address)})`,
      }
    if (pageEnd <= switchLsn) {
      if (!ancestors.has(tli))
        return {
          ok: false,
          reason: `${where}, before the switch point ${formatLsn(switchLsn)}, carries timeline ${tli}, not an ancestor of ${name.timeline}`,
        }
    } else if (pageStart >= switchLsn) {
      if (tli !== name.timeline)
        return {
          ok: false,
          reason: `${where}, after the switch point ${formatLsn(switchLsn)}, carries timeline ${tli} instead of ${name.timeline}`,
        }
    } else if (tli !== name.timeline && !ancestors.has(tli)) {
      return {
        ok: false,
        reason: `${where}, which holds the switch point ${formatLsn(switchLsn)}, carries timeline ${tli}`,
      }
    }
  }
  return {ok: true, switchLsn, parent: parentEntry.timeline}
}
