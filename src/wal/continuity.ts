/**
 * Is the archive complete enough for a recovery? PostgreSQL takes a missing segment for the end
 * of the archive and, with no target, promotes right there — silently losing everything after
 * the gap. So before a restore we walk the timeline path from the base backup's start segment to
 * the newest archived segment and name the first missing one.
 */
import {
  parseTimelineHistory,
  segmentName,
  segnoOf,
  timelineForSegment,
  timelinePath,
  type TimelineHistoryEntry,
  type TimelineSpan,
} from './names.js'
import type {ArchivedFile} from './archive.js'

export interface ContinuityInput {
  archive: ArchivedFile[]
  /** history file contents by timeline (only those in the archive) */
  histories: Map<number, string>
  baseTimeline: number
  baseStartLsn: bigint
  baseStopLsn: bigint
  /** a timeline number, or 'latest' (PostgreSQL's default recovery_target_timeline) */
  targetTimeline: number | 'latest'
}

export interface ContinuityReport {
  timeline: number
  path: TimelineSpan[]
  firstSegment: string
  /** the newest segment recovery can reach without a gap */
  lastSegment: string
  lastSegno: bigint
  /** the first missing segment before the newest archived one (a hole in the archive) */
  missing?: string
  /** the base backup's own WAL (start → stop) is not all archived */
  baseIncomplete?: string
  segmentCount: number
  newestArchivedAt?: Date
}

function ancestry(timeline: number, histories: Map<number, string>): TimelineHistoryEntry[] {
  const text = histories.get(timeline)
  return text === undefined ? [] : parseTimelineHistory(text)
}

/** The newest timeline whose history descends from `base` (or `base` itself). */
export function latestTimeline(base: number, histories: Map<number, string>): number {
  let best = base
  for (const tl of histories.keys()) {
    if (tl > best && (tl === base || ancestry(tl, histories).some((e) => e.timeline === base))) best = tl
  }
  return best
}

export function checkContinuity(input: ContinuityInput): ContinuityReport {
  const timeline =
    input.targetTimeline === 'latest' ? latestTimeline(input.baseTimeline, input.histories) : input.targetTimeline
  const history = timeline === input.baseTimeline ? [] : ancestry(timeline, input.histories)
  const path = timelinePath(timeline, history)
  const have = new Set(input.archive.filter((f) => f.kind === 'segment').map((f) => `${f.timeline}:${f.segno}`))
  const first = segnoOf(input.baseStartLsn)
  // the newest archived segment that lies on the path
  let newest = first - 1n
  let newestAt: Date | undefined
  for (const f of input.archive) {
    if (f.kind !== 'segment' || f.segno === undefined) continue
    if (timelineForSegment(path, f.segno) === f.timeline && f.segno > newest) {
      newest = f.segno
      newestAt = f.mtime
    }
  }
  let missing: string | undefined
  let last = first - 1n
  for (let segno = first; segno <= newest; segno++) {
    const tl = timelineForSegment(path, segno) ?? timeline
    if (!have.has(`${tl}:${segno}`)) {
      missing = segmentName(tl, segno)
      break
    }
    last = segno
  }
  const stopSegno = segnoOf(input.baseStopLsn)
  const baseIncomplete =
    last < stopSegno ? segmentName(timelineForSegment(path, last + 1n) ?? timeline, last + 1n) : undefined
  return {
    timeline,
    path,
    firstSegment: segmentName(timelineForSegment(path, first) ?? timeline, first),
    lastSegment: last >= first ? segmentName(timelineForSegment(path, last) ?? timeline, last) : '(none)',
    lastSegno: last,
    missing,
    baseIncomplete,
    segmentCount: Number(last - first + 1n),
    newestArchivedAt: newestAt,
  }
}
