#!/usr/bin/env node
/**
 * The push-ahead worker of `wal push --async` (src/wal/async-push.ts starts it). PostgreSQL's
 * archiver runs archive_command for one segment at a time and waits for each; pushing the other
 * ready segments inside that call (what the async form did first) kept the call long, on the
 * archiver's clock. This process works beside the archiver instead, as pgBackRest's async
 * archive-push does: it pushes every segment PostgreSQL has marked ready
 * (pg_wal/archive_status/*.ready, oldest first), `--process-max` at a time, and records each in
 * the spool once the repository confirmed it — so the archiver's later calls end in the shell
 * fast path (a sha256 of the segment equal to the record's, no Node start).
 *
 * Nothing PostgreSQL is told depends on this process: a record is written only after the
 * repository confirmed the object (the same pushWal as every push: cluster identity, timeline,
 * never overwrite, fsynced), and the archiver's call still checks that pg_wal holds exactly the
 * recorded bytes. Killed at any moment it leaves at most a claim file of a dead pid (taken over)
 * and no record for what it did not finish: that segment is pushed by the archiver's call.
 *
 * Like the prefetcher of `wal fetch`, it outlives the call that started it and is bound to the
 * server instead: it starts only in a data directory with a postmaster.pid, and stops when the
 * postmaster is gone, after a minute with nothing ready to push, or at the first failed push
 * (repository down, a conflict: said in the server log — the archiver's calls then fail or
 * succeed in the open, exactly as the plain form).
 */
import {readdir} from 'node:fs/promises'
import {join} from 'node:path'

import {pidAlive} from '../core/proc/pid.js'
import type {RepositoryStorage} from '../repository/storage.js'
import {pushWal} from './archive.js'
import type {WalCompression} from './codec.js'
import {parseWalFileName} from './names.js'
import {
  acquirePushWorkerLock,
  claimPush,
  postmasterLine,
  readPushRecord,
  releasePushClaim,
  writePushRecord,
} from './spool.js'

const TICK_MS = 50
/** nothing ready for this long: archiving is idle (or PostgreSQL stopped asking) — stop */
const IDLE_MS = 60_000

interface Options {
  storage: RepositoryStorage
  stack: string
  dir: string
  walDir: string
  processMax: number
  compression: WalCompression
  postmaster: string
}

/** Segments PostgreSQL marked ready, oldest first (the order the archiver asks for them). */
async function readySegments(walDir: string): Promise<string[]> {
  const entries = await readdir(join(walDir, 'archive_status')).catch(() => [] as string[])
  return entries
    .filter((entry) => entry.endsWith('.ready'))
    .map((entry) => entry.slice(0, -'.ready'.length))
    .filter((segment) => parseWalFileName(segment)?.kind === 'segment')
    .sort()
}

async function pushAhead(options: Options): Promise<number> {
  const {storage, stack, dir, walDir} = options
  const say = (line: string) => process.stderr.write(`charge-ops wal push --async: ${line}\n`)
  const inflight = new Set<string>()
  /** pushed by this worker: never again (the archiver's fast path removes the record before PostgreSQL marks the segment done) */
  const done = new Set<string>()
  let pushed = 0
  let failure: string | undefined
  let lastWork = Date.now()
  let tick = 0
  let wake = () => {}

  const pushOne = async (segment: string) => {
    try {
      const result = await pushWal({storage, stack, path: join(walDir, segment), compression: options.compression})
      await writePushRecord(
        dir,
        {
          name: segment,
          sha256: result.sha256,
          size: result.bytes,
          key: result.key,
          recordedAt: new Date().toISOString(),
        },
        join(walDir, segment),
      )
      pushed++
      done.add(segment)
    } catch (error) {
      // a segment PostgreSQL archived and recycled meanwhile (its .ready gone) is no failure
      const stillReady = await readdir(join(walDir, 'archive_status')).then(
        (e) => e.includes(`${segment}.ready`),
        () => false,
      )
      if (stillReady) failure ??= `pushing ${segment} ahead failed: ${(error as Error).message.split('\n')[0]}`
    } finally {
      await releasePushClaim(dir, segment)
      inflight.delete(segment)
      lastWork = Date.now()
      wake()
    }
  }

  const stop = async (why: string, code = 0) => {
    while (inflight.size > 0) await new Promise((resolve) => setTimeout(resolve, TICK_MS))
    if (pushed > 0 || code !== 0) say(`push-ahead worker stopped (${why}); ${pushed} segment(s) pushed ahead`)
    return code
  }

  for (;;) {
    if (failure) return stop(`${failure}; the archiver's calls push the segments themselves`, 1)
    if (tick++ % 10 === 0) {
      const line = postmasterLine('.')
      if (line !== options.postmaster || !pidAlive(Number(line))) return stop('the server is gone')
    }
    for (const segment of await readySegments(walDir)) {
      if (inflight.size >= options.processMax) break
      if (inflight.has(segment) || done.has(segment) || (await readPushRecord(dir, segment))) continue
      // the archiver's call (or a previous worker) is on it
      if ((await claimPush(dir, segment)) !== undefined) continue
      inflight.add(segment)
      lastWork = Date.now()
      void pushOne(segment)
    }
    if (inflight.size === 0 && Date.now() - lastWork > IDLE_MS) return stop(`nothing to push for ${IDLE_MS / 1000} s`)
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
  if (!flags.repo || !flags.stack || !flags.dir || !flags['wal-dir']) {
    process.stderr.write(
      'usage: push-ahead-worker.js --repo R --stack S --dir SPOOL --wal-dir pg_wal [--process-max N] [--compression zstd|gzip]\n',
    )
    return 2
  }
  // run by archive_command in the data directory of a running server, or not at all
  const postmaster = postmasterLine('.')
  if (!postmaster) return 0
  const release = await acquirePushWorkerLock(flags.dir)
  if (!release) return 0
  try {
    const {openRepository} = await import('../repository/open.js')
    return await pushAhead({
      storage: await openRepository(flags.repo),
      stack: flags.stack,
      dir: flags.dir,
      walDir: flags['wal-dir'],
      processMax: Math.max(1, Number(flags['process-max']) || 2),
      compression: flags.compression === 'gzip' ? 'gzip' : 'zstd',
      postmaster,
    })
  } finally {
    await release()
  }
}

process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true'
// a failure outside the push loop (the repository cannot be opened): one line in the server log,
// never a stack trace — the archiver's calls then push every segment themselves
process.exitCode = await main(process.argv.slice(2)).catch((error: unknown) => {
  process.stderr.write(
    `charge-ops wal push --async: push-ahead worker: ${(error as Error).message.split('\n')[0]}; the archiver's calls push the segments themselves\n`,
  )
  return 1
})
