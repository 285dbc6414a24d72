/**
 * The newest commit the archive can replay to. PostgreSQL stops a `recovery_target_time` recovery
 * only *before a commit or abort record* later than the target; if no such record follows in the
 * archived WAL, recovery runs out of WAL and PostgreSQL 15 refuses to promote ("recovery ended
 * before configured recovery target was reached"). The time a segment was archived says nothing
 * about that: a segment switched out a minute after its last commit is archived a minute "late".
 * So `restore pitr` reads the transaction records of the newest archived segments on the target
 * timeline with pg_waldump (the server's own decoder, so no WAL format is parsed here), walking back
 * from the newest until one holds a commit or abort.
 */
import {mkdtemp, rm, writeFile} from 'node:fs/promises'
import {tmpdir} from 'node:os'
import {join} from 'node:path'

import {ChecksFailedError} from '../errors.js'
import type {RepositoryStorage} from '../repository/storage.js'
import {readWal} from './archive.js'
import {parseWalFileName, readSegmentHeader, segmentName, timelineForSegment, type TimelineSpan} from './names.js'

export interface ArchivedCommit {
  /** microseconds since the epoch (JavaScript dates stop at milliseconds; commit times do not) */
  micros: bigint
  /** as PostgreSQL prints it, in UTC: 2026-12-03 12:46:01.123456+00 */
  text: string
  lsn: string
  segment: string
}

const RECORD =
  /lsn: ([0-9A-F]+\/[0-9A-F]+),.*desc: (?:COMMIT|ABORT)(?:_PREPARED)? (?:\d+: )?(\d{4}-\d{2}-\d{2}) (\d{2}:\d{2}:\d{2})(?:\.(\d{1,6}))? (UTC|GMT)\b/

/** Commit / abort records in pg_waldump's output (run with TZ=UTC), newest last. */
export function parseWaldumpCommits(stdout: string, segment: string): ArchivedCommit[] {
  const out: ArchivedCommit[] = []
  for (const line of stdout.split('\n')) {
    const m = RECORD.exec(line)
    if (!m) continue
    const fraction = (m[4] ?? '').padEnd(6, '0')
    const micros = BigInt(Date.parse(`${m[2]}T${m[3]}Z`)) * 1000n + BigInt(fraction)
    out.push({micros, text: `${m[2]} ${m[3]}.${fraction}+00`, lsn: m[1], segment})
  }
  return out
}

/** A target time in microseconds: the digits after the milliseconds that Date drops, put back. */
export function targetMicros(time: Date, text: string): bigint {
  const fraction = /:\d{2}\.(\d{1,6})/.exec(text)?.[1]?.padEnd(6, '0') ?? '000000'
  return BigInt(time.getTime()) * 1000n + BigInt(Number(fraction) % 1000)
}

export interface LastCommitInput {
  storage: RepositoryStorage
  stack: string
  path: TimelineSpan[]
  timeline: number
  firstSegment: string
  lastSegno: bigint
}

/**
 * The newest commit or abort on the path, or undefined when no archived segment from the base
 * backup's start on holds one. Segments are read newest first and the walk stops at the first one
 * with a transaction record, so a normal archive costs one segment.
 */
export async function lastArchivedCommit(input: LastCommitInput): Promise<ArchivedCommit | undefined> {
  const first = parseWalFileName(input.firstSegment)?.segno
  if (first === undefined) return undefined
  const {run} = await import('../core/proc/exec.js')
  const {serverBinary} = await import('../postgres/server-tools.js')
  const dir = await mkdtemp(join(tmpdir(), 'charge-ops-waldump-'))
  try {
    for (let segno = input.lastSegno; segno >= first; segno--) {
      const name = segmentName(timelineForSegment(input.path, segno) ?? input.timeline, segno)
      const read = await readWal(input.storage, input.stack, name)
      if (!read) return undefined
      // the pg_waldump of the major that wrote it (the page magic says which)
      const waldump = serverBinary('pg_waldump', readSegmentHeader(read.data)?.postgresMajor)
      const file = join(dir, name)
      await writeFile(file, read.data, {mode: 0o600})
      // exit 1 is its normal end: the next segment is not here, or the rest of this one is empty
      const {stdout} = await run(waldump, ['--rmgr=Transaction', file], {
        env: {TZ: 'UTC', LC_ALL: 'C'},
        okExitCodes: [1],
        purpose: `reading the commit records of ${name}`,
      })
      const commits = parseWaldumpCommits(stdout, name)
      if (commits.length > 0) {
        await rm(file, {force: true})
        return commits.reduce((a, b) => (b.micros > a.micros ? b : a))
      }
      // no transaction record: only believable if pg_waldump can read the segment at all (another
      // major's page format or a damaged page prints nothing either)
      const probe = await run(waldump, ['--limit=1', file], {
        env: {TZ: 'UTC', LC_ALL: 'C'},
        okExitCodes: [1],
        purpose: `reading ${name}`,
      })
      await rm(file, {force: true})
      if (!/^rmgr: /m.test(probe.stdout)) {
        throw new ChecksFailedError(
          `pg_waldump cannot read archived segment ${name}, so how far the archive reaches cannot be told: ${probe.stderr.trim().split('\n').pop() ?? ''}`,
          {
            code: 'PITR_WAL_UNREADABLE',
            hint: `Check that ${waldump} matches the PostgreSQL major of the backed-up cluster (CHARGE_OPS_PG_BINDIR), and run \`charge-ops wal check\`.`,
          },
        )
      }
    }
    return undefined
  } finally {
    await rm(dir, {recursive: true, force: true})
  }
}
