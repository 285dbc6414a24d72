/**
 * WAL naming and position arithmetic (pure). PostgreSQL names a 16 MB segment
 * `TTTTTTTTXXXXXXXXYYYYYYYY`: timeline, then the segment number split into "log" and "seg"
 * halves (0x100000000 / segment size segments per log). A timeline history file is
 * `TTTTTTTT.history`; a backup history file `<segment>.XXXXXXXX.backup`; the last segment of an
 * old timeline is archived as `<segment>.partial` at promotion.
 */

export const DEFAULT_SEGMENT_SIZE = 16 * 1024 * 1024

export type WalFileKind = 'segment' | 'partial' | 'backup' | 'history'

export interface WalFileName {
  name: string
  kind: WalFileKind
  timeline: number
  /** absolute segment number (segments since LSN 0); undefined for history files */
  segno?: bigint
}

const SEGMENT = /^([0-9A-F]{8})([0-9A-F]{8})([0-9A-F]{8})$/
const PARTIAL = /^([0-9A-F]{8})([0-9A-F]{8})([0-9A-F]{8})\.partial$/
const BACKUP = /^([0-9A-F]{8})([0-9A-F]{8})([0-9A-F]{8})\.[0-9A-F]{8}\.backup$/
const HISTORY = /^([0-9A-F]{8})\.history$/

function segmentsPerLog(segmentSize: number): bigint {
  return 0x1_0000_0000n / BigInt(segmentSize)
}

/** Parses any file name PostgreSQL archives; undefined when it is not one (never trust %f blindly). */
export function parseWalFileName(name: string, segmentSize = DEFAULT_SEGMENT_SIZE): WalFileName | undefined {
  const history = HISTORY.exec(name)
  if (history) return {name, kind: 'history', timeline: Number.parseInt(history[1], 16)}
  for (const [re, kind] of [
    [SEGMENT, 'segment'],
    [PARTIAL, 'partial'],
    [BACKUP, 'backup'],
  ] as const) {
    const m = re.exec(name)
    if (m) {
      const log = BigInt(`0x${m[2]}`)
      const seg = BigInt(`0x${m[3]}`)
      if (seg >= segmentsPerLog(segmentSize)) return undefined
      return {name, kind, timeline: Number.parseInt(m[1], 16), segno: log * segmentsPerLog(segmentSize) + seg}
    }
  }
  return undefined
}

export function hex8(value: number | bigint): string {
  return value.toString(16).toUpperCase().padStart(8, '0')
}

/** The segment file name of a timeline + absolute segment number. */
export function segmentName(timeline: number, segno: bigint, segmentSize = DEFAULT_SEGMENT_SIZE): string {
  const per = segmentsPerLog(segmentSize)
  return `${hex8(timeline)}${hex8(segno / per)}${hex8(segno % per)}`
}

/** Parses `X/Y` into a 64-bit position. */
export function parseLsn(text: string): bigint {
  const m = /^([0-9A-Fa-f]{1,8})\/([0-9A-Fa-f]{1,8})$/.exec(text.trim())
  if (!m) throw new Error(`not a WAL position (LSN): ${JSON.stringify(text)}; expected e.g. 0/3000060`)
  return (BigInt(`0x${m[1]}`) << 32n) | BigInt(`0x${m[2]}`)
}

export function formatLsn(lsn: bigint): string {
  return `${(lsn >> 32n).toString(16).toUpperCase()}/${(lsn & 0xffff_ffffn).toString(16).toUpperCase()}`
}

/** The segment number holding `lsn`. */
export function segnoOf(lsn: bigint, segmentSize = DEFAULT_SEGMENT_SIZE): bigint {
  return lsn / BigInt(segmentSize)
}

/** The segment that holds the byte just before `lsn` (what pg_walfile_name reports at a boundary). */
export function segnoBefore(lsn: bigint, segmentSize = DEFAULT_SEGMENT_SIZE): bigint {
  return lsn === 0n ? 0n : (lsn - 1n) / BigInt(segmentSize)
}

export interface TimelineHistoryEntry {
  /** the parent timeline */
  timeline: number
  /** where the child timeline branched off the parent */
  switchLsn: bigint
  reason: string
}

/** Parses a `TTTTTTTT.history` file: one `parentTLI  switchpoint  reason` line per ancestor. */
export function parseTimelineHistory(text: string): TimelineHistoryEntry[] {
  const out: TimelineHistoryEntry[] = []
  for (const raw of text.split('\n')) {
    const line = raw.trim()
    if (!line || line.startsWith('#')) continue
    const m = /^(\d+)\s+([0-9A-Fa-f]+\/[0-9A-Fa-f]+)\s*(.*)$/.exec(line)
    if (!m) throw new Error(`invalid timeline history line: ${JSON.stringify(line)}`)
    out.push({timeline: Number(m[1]), switchLsn: parseLsn(m[2]), reason: m[3]})
  }
  return out
}

/**
 * For each timeline on the path to `target` (oldest first), the range of positions it covers:
 * `[begin, end)` where end is the switch point to the next timeline (undefined for the target).
 */
export interface TimelineSpan {
  timeline: number
  begin: bigint
  end?: bigint
}

export function timelinePath(target: number, history: TimelineHistoryEntry[]): TimelineSpan[] {
  const spans: TimelineSpan[] = []
  let begin = 0n
  for (const entry of history) {
    spans.push({timeline: entry.timeline, begin, end: entry.switchLsn})
    begin = entry.switchLsn
  }
  spans.push({timeline: target, begin})
  return spans
}

/** The timeline whose span holds segment `segno` (the newest one whose span touches it). */
export function timelineForSegment(
  spans: TimelineSpan[],
  segno: bigint,
  segmentSize = DEFAULT_SEGMENT_SIZE,
): number | undefined {
  for (let i = spans.length - 1; i >= 0; i--) {
    const s = spans[i]
    const first = segnoOf(s.begin, segmentSize)
    const last = s.end === undefined ? undefined : segnoBefore(s.end, segmentSize)
    if (segno >= first && (last === undefined || segno <= last)) return s.timeline
  }
  return undefined
}

/**
 * The first WAL page of every segment is a long page header that names the cluster:
 * xlp_magic (u16) … xlp_tli (u32 @4), xlp_pageaddr (u64 @8), xlp_sysid (u64 @24),
 * xlp_seg_size (u32 @32). Reading it lets `wal push` check the segment's origin without
 * running pg_controldata or connecting to the server.
 */
export interface SegmentHeader {
  magic: number
  postgresMajor?: number
  timeline: number
  pageAddress: bigint
  systemIdentifier: string
  segmentSize: number
}

const WAL_MAGIC_TO_MAJOR: Record<number, number> = {
  0xd101: 12,
  0xd106: 13,
  0xd10d: 14,
  0xd110: 15,
  0xd113: 16,
  0xd116: 17,
  0xd118: 18,
}

export function readSegmentHeader(page: Buffer): SegmentHeader | undefined {
  if (page.length < 40) return undefined
  const magic = page.readUInt16LE(0)
  const info = page.readUInt16LE(2)
  // XLP_LONG_HEADER = 0x0002: only the first page of a segment carries the cluster's identity
  if ((info & 0x0002) === 0) return undefined
  return {
    magic,
    postgresMajor: WAL_MAGIC_TO_MAJOR[magic],
    timeline: page.readUInt32LE(4),
    pageAddress: page.readBigUInt64LE(8),
    systemIdentifier: page.readBigUInt64LE(24).toString(),
    segmentSize: page.readUInt32LE(32),
  }
}

/** pg_control starts with the system identifier (u64); PG_VERSION holds the major version. */
export function systemIdentifierFromPgControl(control: Buffer): string {
  return control.readBigUInt64LE(0).toString()
}
