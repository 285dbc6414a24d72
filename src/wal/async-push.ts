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
 */
import {readdir} from 'node:fs/promises'
import {dirname, isAbsolute, join} from 'node:path'

import type {RepositoryStorage} from '../repository/storage.js'
import {pushWal, requireWalName, type PushResult} from './archive.js'
import {sha256File, type WalCompression} from './codec.js'
import {parseWalFileName} from './names.js'
import {cleanPushSpool, readPushRecord, removePushRecord, spoolDir, writePushRecord} from './spool.js'

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
}

/** How many ready segments one call takes on: enough to keep N workers busy twice over. */
const aheadLimit = (processMax: number) => Math.max(0, processMax * 2 - 1)

export async function pushWalAsync(options: AsyncPushOptions): Promise<AsyncPushResult> {
  const name = options.path.split('/').pop() ?? options.path
  const file = requireWalName(name)
  const fullPath = isAbsolute(options.path) ? options.path : join(process.cwd(), options.path)
  const walDir = dirname(fullPath)
  const dir = spoolDir('push', {repository: options.repository, stack: options.stack}, options.spool)

  if (file.kind === 'segment') {
    const record = await readPushRecord(dir, name)
    if (record) {
      const now = await sha256File(fullPath).catch(() => undefined)
      // the record speaks for the content it was written for, and only for that
      await removePushRecord(dir, name)
      if (now && now.sha256 === record.sha256 && now.size === record.size) return {file: name, key: record.key, fromSpool: true, pushedAhead: [], failedAhead: []}
    }
  }

  const recorded = new Set(await readdir(dir).catch(() => [] as string[]))
  const ahead = (await readySegments(walDir, name, aheadLimit(options.processMax) + recorded.size)).filter((segment) => !recorded.has(`${segment}.ok`)).slice(0, aheadLimit(options.processMax))
  const pushedAhead: string[] = []
  const failedAhead: string[] = []
  const pushOne = async (segment: string): Promise<void> => {
    try {
      const result = await pushWal({storage: options.storage, stack: options.stack, path: join(walDir, segment), compression: options.compression})
      await writePushRecord(dir, {name: segment, sha256: result.sha256, size: result.bytes, key: result.key, recordedAt: new Date().toISOString()}, join(dirname(options.path), segment))
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
          own = await pushWal({storage: options.storage, stack: options.stack, path: fullPath, compression: options.compression})
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
