/**
 * `wal push --async --process-max N`: PostgreSQL's archiver calls archive_command for one
 * segment at a time and waits for each. In the async form, the call for segment N pushes N and,
 * in parallel (N at a time in all), the next segments PostgreSQL has marked ready
 * (pg_wal/archive_status/*.ready), and records each of those in the spool (src/wal/spool.ts) once
 * the repository confirmed it. The calls that follow find their record, check that pg_wal holds
 * the very content recorded (sha256), and return at once.
 *
 * What PostgreSQL is told is unchanged: exit 0 only for a segment that is in the repository —
 * the asked one because this call stored it (or the repository confirmed it earlier and a
 * record says so), never because it was merely queued. A repository that is down fails the call
 * (PostgreSQL retries, pg_wal grows: `wal check` reports the .ready backlog) and records nothing.
 * The same checks as the plain form run on every segment pushed ahead (pushWal: cluster
 * identity, timeline, never overwrite).
 *
 * Run by a server's archiver (a postmaster.pid in the cwd, the data directory) the pushing ahead
 * is not done inside the call: it starts the push-ahead worker (src/wal/push-ahead-worker.ts),
 * which pushes every ready segment beside the archiver, and returns as soon as its own segment
 * is stored — so the archiver's calls are short and most end in the shell fast path. A segment
 * the worker is pushing right now (its claim, spool.ts) is waited for, not pushed twice. Outside
 * a server (a call by hand, nothing to bind a worker to) the call pushes ahead itself, as before.
 */
import {spawn} from 'node:child_process'
import {existsSync} from 'node:fs'
import {readdir} from 'node:fs/promises'
import {dirname, isAbsolute, join, resolve} from 'node:path'
import {fileURLToPath} from 'node:url'

import type {RepositoryStorage} from '../repository/storage.js'
import {pushWal, requireWalName, type PushResult} from './archive.js'
import {sha256File, type WalCompression} from './codec.js'
import {parseWalFileName} from './names.js'
import {
  claimPush,
  cleanPushSpool,
  pushClaimHolder,
  pushWorkerPid,
  readPushRecord,
  releasePushClaim,
  removePushRecord,
  spoolDir,
  writePushRecord,
  type PushRecord,
} from './spool.js'

export interface AsyncPushOptions {
  storage: RepositoryStorage
  stack: string
  /** the repository as given (--repo): names the spool folder */
  repository: string
  path: string
  compression?: WalCompression
  /** segments pushed at once, the asked one included */
  processMax: number
  /** the spool root (default charge-ops-spool in the data directory) */
  spool?: string
}

export interface AsyncPushResult extends Partial<PushResult> {
  file: string
  /** true: an earlier call pushed it ahead, and pg_wal still holds exactly that content */
  fromSpool: boolean
  /** segments pushed ahead and recorded by this call */
  pushedAhead: string[]
  /** segments this call tried to push ahead and could not (not recorded: pushed when asked) */
  failedAhead: string[]
  /** why the push-ahead worker could not be started (the segments are then pushed when asked) */
  workerProblem?: string
}

/** How many ready segments one call takes on: enough to keep N workers busy twice over. */
const aheadLimit = (processMax: number) => Math.max(0, processMax * 2 - 1)

export async function pushWalAsync(options: AsyncPushOptions): Promise<AsyncPushResult> {
  const name = options.path.split('/').pop() ?? options.path
  const file = requireWalName(name)
  const fullPath = isAbsolute(options.path) ? options.path : join(process.cwd(), options.path)
  const walDir = dirname(fullPath)
  const dir = spoolDir('push', {repository: options.repository, stack: options.stack}, options.spool)

  /** the record speaks for the content it was written for, and only for that */
  const fromRecord = async (record: PushRecord | undefined): Promise<AsyncPushResult | undefined> => {
    if (!record) return undefined
    const now = await sha256File(fullPath).catch(() => undefined)
    await removePushRecord(dir, name)
    if (now && now.sha256 === record.sha256 && now.size === record.size)
      return {file: name, key: record.key, fromSpool: true, pushedAhead: [], failedAhead: []}
    return undefined
  }
  if (file.kind === 'segment') {
    const recorded = await fromRecord(await readPushRecord(dir, name))
    if (recorded) return recorded
  }

  if (file.kind === 'segment' && existsSync('postmaster.pid'))
    return pushBesideWorker(options, {name, fullPath, walDir, dir, fromRecord})

  const recorded = new Set(await readdir(dir).catch(() => [] as string[]))
  const ahead = (await readySegments(walDir, name, aheadLimit(options.processMax) + recorded.size))
    .filter((segment) => !recorded.has(`${segment}.ok`))
    .slice(0, aheadLimit(options.processMax))
  const pushedAhead: string[] = []
  const failedAhead: string[] = []
  const pushOne = async (segment: string): Promise<void> => {
    try {
      const result = await pushWal({
        storage: options.storage,
        stack: options.stack,
        path: join(walDir, segment),
        compression: options.compression,
      })
      await writePushRecord(
        dir,
        {
          name: segment,
          sha256: result.sha256,
          size: result.bytes,
          key: result.key,
          recordedAt: new Date().toISOString(),
        },
        join(dirname(options.path), segment),
      )
      pushedAhead.push(segment)
    } catch {
      failedAhead.push(segment)
    }
  }
  // the asked segment first, then the ready ones, at most processMax at a time
  let own: PushResult | undefined
  let ownError: unknown
  const queue = [name, ...ahead]
  const worker = async () => {
    for (let next = queue.shift(); next !== undefined; next = queue.shift()) {
      if (next !== name) await pushOne(next)
      else {
        try {
          own = await pushWal({
            storage: options.storage,
            stack: options.stack,
            path: fullPath,
            compression: options.compression,
          })
        } catch (error) {
          ownError = error
        }
      }
    }
  }
  await Promise.all(Array.from({length: Math.min(queue.length, Math.max(1, options.processMax))}, worker))
  // the asked segment alone decides the exit status; the others only what is recorded
  if (!own) throw ownError
  await cleanPushSpool(dir, walDir)
  return {...own, fromSpool: false, pushedAhead, failedAhead}
}

/** How long the archiver's call waits for the worker's push of its segment before pushing it itself. */
const CLAIM_WAIT_MS = 120_000

/** In a server's data directory: push the asked segment (unless the worker is on it), keep the worker running. */
async function pushBesideWorker(
  options: AsyncPushOptions,
  asked: {
    name: string
    fullPath: string
    walDir: string
    dir: string
    fromRecord: (record: PushRecord | undefined) => Promise<AsyncPushResult | undefined>
  },
): Promise<AsyncPushResult> {
  const {name, fullPath, walDir, dir} = asked
  const started = ensurePushWorker(options, dir, walDir)
  // the worker pushes this very segment right now: wait for its record rather than push it twice
  const deadline = Date.now() + CLAIM_WAIT_MS
  while ((await claimPush(dir, name)) !== undefined) {
    const recorded = await asked.fromRecord(await readPushRecord(dir, name))
    if (recorded) return recorded
    if (Date.now() > deadline) break
    await new Promise((resolve) => setTimeout(resolve, 10))
  }
  try {
    // the worker may have finished it between our first look and the claim
    const recorded = await asked.fromRecord(await readPushRecord(dir, name))
    if (recorded) return recorded
    const own = await pushWal({
      storage: options.storage,
      stack: options.stack,
      path: fullPath,
      compression: options.compression,
    })
    await cleanPushSpool(dir, walDir)
    return {...own, fromSpool: false, pushedAhead: [], failedAhead: [], ...(await started)}
  } finally {
    if (pushClaimHolder(dir, name) === process.pid) await releasePushClaim(dir, name)
  }
}

/** dist/src/wal/push-ahead-worker.js next to this module (from src/ under vitest: the built one). */
function pushWorkerEntry(): string {
  const here = fileURLToPath(import.meta.url)
  return here.endsWith('.ts')
    ? resolve(dirname(here), '../../dist/src/wal/push-ahead-worker.js')
    : join(dirname(here), 'push-ahead-worker.js')
}

/** Starts the push-ahead worker of this spool unless one runs; never waits for it. */
async function ensurePushWorker(
  options: AsyncPushOptions,
  dir: string,
  walDir: string,
): Promise<{workerProblem?: string}> {
  if (pushWorkerPid(dir) !== undefined) return {}
  const entry = pushWorkerEntry()
  if (!existsSync(entry)) return {workerProblem: `${entry} is missing (run npm run build)`}
  // relative as PostgreSQL names it (%p from the data directory): the records' `<sha256>  <path>` lines name it
  const relativeWal = isAbsolute(options.path) ? walDir : dirname(options.path)
  const args = [
    entry,
    '--repo',
    options.repository,
    '--stack',
    options.stack,
    '--dir',
    dir,
    '--wal-dir',
    relativeWal,
    '--process-max',
    String(Math.max(1, options.processMax)),
    '--compression',
    options.compression ?? 'zstd',
  ]
  // not detached: it stays in the archiver's process group; its stderr is ours (the server log).
  // AWS_* from an --aws-env-file reach it by the environment, never argv.
  const child = spawn(process.execPath, args, {stdio: ['ignore', 'ignore', 'inherit']})
  child.on('error', () => {})
  child.unref()
  return {}
}

/** The next segments PostgreSQL marked ready, oldest first (the order it archives them in), without `except` and those already recorded. */
async function readySegments(walDir: string, except: string, limit: number): Promise<string[]> {
  if (limit <= 0) return []
  let entries: string[]
  try {
    entries = await readdir(join(walDir, 'archive_status'))
  } catch {
    return []
  }
  return entries
    .filter((entry) => entry.endsWith('.ready'))
    .map((entry) => entry.slice(0, -'.ready'.length))
    .filter((segment) => segment !== except && parseWalFileName(segment)?.kind === 'segment')
    .sort()
    .slice(0, limit)
}
