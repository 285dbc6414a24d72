#!/usr/bin/env node
/**
 * The prefetcher of `wal fetch --prefetch K` (src/wal/prefetch.ts explains the two halves and
 * why it outlives the restore_command call that starts it). One per spool and timeline (lock
 * file). It keeps the K segments after the newest one PostgreSQL asked for in the spool,
 * `--process-max` fetches at a time, each decompressed, checksum-verified (and its page header
 * checked to name the repository's cluster) before it is written under a temp name and renamed
 * (src/wal/spool.ts; no fsync within one boot, the folder is per boot): a prefetcher killed at any
 * moment leaves at most a temp file that nothing serves.
 *
 * Where PostgreSQL is, without any call into this process: a spooled segment that disappeared was
 * taken (the `mv` of the fast path), and the slow path writes `.want` for what it fetched itself.
 * A segment not in the archive is the end of the archive for now: fetching pauses until the next
 * request. Any other failure is printed (the server log) and ends the prefetcher: the segments are
 * then fetched directly when PostgreSQL asks for them, and fail there in the open if damaged.
 */
import {existsSync} from 'node:fs'
import {rm} from 'node:fs/promises'
import {join} from 'node:path'

import {pidAlive} from '../core/proc/pid.js'
import type {RepositoryStorage} from '../repository/storage.js'
import {readWal} from './archive.js'
import {parseWalFileName, readSegmentHeader, segmentName} from './names.js'
import {
  acquirePrefetchLock,
  beginSpoolSegment,
  cleanFetchSpool,
  postmasterLine,
  readWant,
  spooledSegments,
  type SpoolWrite,
} from './spool.js'

const TICK_MS = 20
/** no request for this long: PostgreSQL paused, stopped asking (streaming) or hangs — stop */
const IDLE_MS = 60_000

interface Options {
  storage: RepositoryStorage
  stack: string
  dir: string
  count: number
  processMax: number
  timeline: number
  from: bigint
  systemIdentifier?: string
  postmaster: string
}

async function prefetch(options: Options): Promise<number> {
  const {storage, stack, dir, count, timeline} = options
  const say = (line: string) =>
    process.stderr.write(`charge-ops wal fetch --prefetch (timeline ${timeline}): ${line}\n`)
  /** the newest segment PostgreSQL asked for (spool window: cursor+1 … cursor+count) */
  let cursor = options.from
  let next = cursor + 1n
  /** spooled by this prefetcher and not seen taken yet */
  const mine = new Map<string, bigint>()
  let inflight = 0
  let fetched = 0
  let taken = 0
  /** the first segment found missing from the archive (fetching pauses there until a new request) */
  let end: bigint | undefined
  let failure: string | undefined
  let lastWant = await readWant(dir)
  let lastRequest = Date.now()
  let tick = 0
  let wake = () => {}

  const fetchOne = async (segno: bigint) => {
    inflight++
    const name = segmentName(timeline, segno)
    let write: SpoolWrite | undefined
    try {
      write = await beginSpoolSegment(dir, name)
      const found = await readWal(storage, stack, name)
      if (!found) {
        await write.discard()
        if (end === undefined || segno < end) end = segno
        if (next > segno) next = segno
        return
      }
      const header = readSegmentHeader(found.data)
      if (options.systemIdentifier && header?.systemIdentifier !== options.systemIdentifier) {
        throw new Error(
          `its first page names system ${header?.systemIdentifier ?? '(no header)'}, the repository's cluster is ${options.systemIdentifier}`,
        )
      }
      // PostgreSQL went past it meanwhile (fetched it directly)
      if (segno <= cursor) return await write.discard()
      await write.commit(found.data)
      mine.set(name, segno)
      fetched++
    } catch (error) {
      await write?.discard()
      // the spool removed under it (recovery ended, restore pitr cleaned up) is no failure: the loop stops
      if (existsSync(dir)) failure ??= `prefetching ${name} failed: ${(error as Error).message.split('\n')[0]}`
    } finally {
      inflight--
      wake()
    }
  }

  const stop = async (why: string, removeSpool: 'all' | 'mine' | 'none', code = 0) => {
    // let running fetches end: their renames must not land in a spool being removed
    while (inflight > 0) await new Promise((resolve) => setTimeout(resolve, TICK_MS))
    if (removeSpool === 'all') await rm(dir, {recursive: true, force: true})
    if (removeSpool === 'mine') await Promise.all([...mine.keys()].map((name) => rm(join(dir, name), {force: true})))
    say(`${why}; ${fetched} segment(s) prefetched, ${taken} handed over from the spool`)
    return code
  }

  for (;;) {
    const spooled = await spooledSegments(dir)
    if (!spooled) return stop('the spool was removed', 'none')
    let moved = false
    for (const [name, segno] of mine) {
      if (spooled.has(name)) continue
      mine.delete(name)
      taken++
      if (segno > cursor) cursor = segno
      moved = true
    }
    const want = await readWant(dir)
    if (want !== lastWant) {
      lastWant = want
      const asked = want ? parseWalFileName(want) : undefined
      // recovery moves to newer timelines only (an older one is asked when a newer lacks a segment)
      if (asked?.kind === 'segment' && asked.timeline > timeline)
        return stop(`PostgreSQL asks for timeline ${asked.timeline} now`, 'mine')
      if (asked?.timeline === timeline && asked.segno !== undefined && asked.segno > cursor) cursor = asked.segno
      // a request after the end: the archive may have grown since
      end = undefined
      moved = true
    }
    if (moved) lastRequest = Date.now()
    if (next <= cursor) next = cursor + 1n
    // spooled segments PostgreSQL went past without taking them (it fetched them directly)
    for (const [name, segno] of mine) {
      if (segno <= cursor) {
        mine.delete(name)
        await rm(join(dir, name), {force: true})
      }
    }
    while (
      !failure &&
      inflight < options.processMax &&
      next <= cursor + BigInt(count) &&
      (end === undefined || next < end)
    )
      void fetchOne(next++)

    if (failure) return stop(failure, 'none', 1)
    if (tick++ % 10 === 0) {
      const line = postmasterLine('.')
      if (line !== options.postmaster || !pidAlive(Number(line))) return stop('the server is gone', 'none')
      if (!existsSync('recovery.signal') && !existsSync('standby.signal')) return stop('recovery ended', 'all')
    }
    if (Date.now() - lastRequest > IDLE_MS && inflight === 0) return stop(`no request for ${IDLE_MS / 1000} s`, 'mine')
    await new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, TICK_MS)
      wake = () => {
        clearTimeout(timer)
        resolve()
      }
    })
  }
}

async function main(argv: string[]): Promise<number> {
  const flags: Record<string, string> = {}
  for (let i = 0; i < argv.length; i++) if (argv[i].startsWith('--')) flags[argv[i].slice(2)] = argv[++i]
  const from = flags.from ? parseWalFileName(flags.from) : undefined
  if (!flags.repo || !flags.stack || !flags.dir || from?.kind !== 'segment') {
    process.stderr.write(
      'usage: prefetch-worker.js --repo R --stack S --dir SPOOL --from SEGMENT [--count K] [--process-max N] [--system-id ID]\n',
    )
    return 2
  }
  // run by restore_command in the data directory of a running server, or not at all
  const postmaster = postmasterLine('.')
  if (!postmaster) return 0
  const release = await acquirePrefetchLock(flags.dir, from.timeline)
  if (!release) return 0
  try {
    // what a dead prefetcher left: its temps, segments PostgreSQL is past, older timelines
    await cleanFetchSpool(flags.dir, {timeline: from.timeline, segno: from.segno!})
    const {openRepository} = await import('../repository/open.js')
    return await prefetch({
      storage: await openRepository(flags.repo),
      stack: flags.stack,
      dir: flags.dir,
      count: Math.max(1, Number(flags.count) || 8),
      processMax: Math.max(1, Number(flags['process-max']) || 2),
      timeline: from.timeline,
      from: from.segno!,
      systemIdentifier: flags['system-id'],
      postmaster,
    })
  } finally {
    await release()
  }
}

process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true'
// a failure outside the fetch loop (the repository cannot be opened): one line in the server log,
// never a stack trace — the segments are then fetched directly
process.exitCode = await main(process.argv.slice(2)).catch((error: unknown) => {
  process.stderr.write(
    `charge-ops wal fetch --prefetch: ${(error as Error).message.split('\n')[0]}; the segments are fetched directly\n`,
  )
  return 1
})
