/**
 * The local WAL spool of the asynchronous forms of `wal fetch` (`--prefetch K`) and `wal push`
 * (`--async`). Default place: `charge-ops-spool/` in the data directory (PostgreSQL runs
 * archive_command and restore_command there, as its own OS user, so it is always writable; the
 * file engine of `backup base` leaves it out, `restore pitr` removes it once recovery ended).
 *
 * ```
 * <spool>/fetch/<source>.<boot>/<segment>         a prefetched segment: complete, checksum-verified
 * <spool>/fetch/<source>.<boot>/.<segment>.<pid>.<rand>.tmp   being written (never served; removed once its pid is gone)
 * <spool>/fetch/<source>.<boot>/.want       the segment PostgreSQL last asked restore_command's slow path for
 * <spool>/fetch/<source>.<boot>/.prefetch-<TLI>.pid   the running prefetcher of that timeline (src/wal/prefetch-worker.ts)
 * <spool>/push/<source>/<segment>.ok       "this content is durably in the repository" (JSON: sha256, size, key)
 * <spool>/push/<source>/.<segment>.pushing  pid of the process pushing it right now (the archiver's call or the worker)
 * <spool>/push/<source>/.push-ahead.pid     the running push-ahead worker (src/wal/push-ahead-worker.ts)
 * ```
 * `<source>` is a digest of repository + stack (+ for fetch the system identifier the repository's
 * cluster.json names): a spool filled from one repository, stack or cluster is never read for
 * another, and switching leaves the old one to be cleaned, not served. The timeline is in every
 * segment's name, so a segment of another timeline is never handed over for the one asked.
 *
 * Crash safety: a segment appears under its own name only by rename after verification, so a
 * worker killed at any moment leaves at most a `.tmp` that nothing serves; a push record is
 * written (atomically) only after the repository confirmed the object.
 *
 * `<boot>` is the kernel's boot id (/proc/sys/kernel/random/boot_id): the fetch spool is written
 * WITHOUT fsync — within one boot every reader sees a renamed file whole, from the page cache —
 * and after a machine crash, when a renamed but unflushed file could hold zeros, the new boot
 * looks in another folder: nothing written before the crash is ever handed over. fsync was the
 * prefetcher's biggest cost (~115 ms per 16 MB segment on the shared test disk, more than the
 * decompression). Where no boot id can be read, the folder is `<source>.` and every file is
 * fsynced before its rename.
 */
import {createHash, randomBytes} from 'node:crypto'
import {readFileSync} from 'node:fs'
import {mkdir, open, readdir, readFile, rename, rm, writeFile} from 'node:fs/promises'
import {dirname, join, resolve} from 'node:path'

import {faultPoint} from '../core/faults.js'
import {acquireLocalLock, liveLockHolder} from '../core/fs/lock.js'
import {writeFileAtomic} from '../core/fs/atomic.js'
import {pidAlive} from '../core/proc/pid.js'
import {parseWalFileName} from './names.js'

export const DEFAULT_SPOOL_DIR = 'charge-ops-spool'

export type SpoolKind = 'fetch' | 'push'

export interface SpoolSource {
  repository: string
  stack: string
  /** fetch: the system identifier of the repository's cluster.json (undefined: none recorded yet) */
  systemIdentifier?: string
}

function sourceId(source: SpoolSource): string {
  const parts = [source.repository, source.stack, ...(source.systemIdentifier ? [source.systemIdentifier] : [])]
  return createHash('sha256').update(parts.join('\n')).digest('hex').slice(0, 16)
}

/** The spool folder of one source; `root` defaults to `charge-ops-spool` in the cwd (the data directory). */
export function spoolDir(kind: SpoolKind, source: SpoolSource, root?: string): string {
  return join(
    resolve(root ?? DEFAULT_SPOOL_DIR),
    kind,
    kind === 'fetch' ? `${sourceId(source)}.${bootId()}` : sourceId(source),
  )
}

let boot: string | undefined
/** This boot's id ('' where the kernel does not say): names the fetch spool folder. */
export function bootId(): string {
  boot ??= (() => {
    try {
      const id = readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim()
      return /^[0-9a-f-]{1,64}$/.test(id) ? id : ''
    } catch {
      return ''
    }
  })()
  return boot
}

/**
 * The shell words that set `$f` to the default fetch spool path of `%f`, relative to the data
 * directory, for the fast path of restore_command: the boot id is read by the shell itself
 * (`read`, a builtin: no process is started).
 */
export function shellFetchSpoolPath(source: SpoolSource): string {
  return `{ read b </proc/sys/kernel/random/boot_id; } 2>/dev/null; f=${DEFAULT_SPOOL_DIR}/fetch/${sourceId(source)}.$b/%f`
}

/** Only plain segment names are ever served from the fetch spool (never .history / .partial / .backup). */
export const isSpoolSegmentName = (entry: string): boolean => /^[0-9A-F]{24}$/.test(entry)

const TEMP = /^\.(.+)\.(\d+)\.[0-9a-f]+\.tmp$/

/**
 * Removes what can never be served: temp files of writers that no longer run, segments before
 * `served` (recovery only moves forward), segments of older timelines than the one served, and
 * the folders of other sources. Best effort: a failure here never fails the fetch.
 */
export async function cleanFetchSpool(dir: string, served?: {timeline: number; segno: bigint}): Promise<void> {
  try {
    const parent = dirname(dir)
    for (const other of await readdir(parent)) {
      if (join(parent, other) !== dir) await rm(join(parent, other), {recursive: true, force: true})
    }
    for (const entry of await readdir(dir)) {
      const temp = TEMP.exec(entry)
      if (temp) {
        if (Number(temp[2]) !== process.pid && !pidAlive(Number(temp[2]))) await rm(join(dir, entry), {force: true})
        continue
      }
      if (entry === WANT || PREFETCH_LOCK.test(entry)) continue
      const file = parseWalFileName(entry)
      if (!file || file.kind !== 'segment' || !isSpoolSegmentName(entry)) {
        await rm(join(dir, entry), {force: true})
        continue
      }
      if (served && (file.segno! <= served.segno || file.timeline < served.timeline))
        await rm(join(dir, entry), {force: true})
    }
  } catch {
    // a missing or unreadable spool only means nothing is prefetched
  }
}

/** A segment being written into the fetch spool under a temp name (its pid in the name). */
export interface SpoolWrite {
  temp: string
  /** writes the verified bytes, (fsync only without a boot id: see above), renames to the segment's name */
  commit(data: Buffer): Promise<void>
  /** removes the temp (the segment is not in the archive, or fetching it failed) */
  discard(): Promise<void>
}

/**
 * Opens the temp file of `name` BEFORE the segment is fetched: while it exists, the slow path of
 * restore_command knows the segment is on its way and waits for it (awaitSpooled) instead of
 * fetching it a second time. The kill point sits between the two halves of the write, where a
 * killed prefetcher leaves a half-written temp file.
 */
export async function beginSpoolSegment(dir: string, name: string): Promise<SpoolWrite> {
  if (!isSpoolSegmentName(name)) throw new Error(`${name} is not a segment name: only segments are spooled`)
  const temp = join(dir, `.${name}.${process.pid}.${randomBytes(3).toString('hex')}.tmp`)
  // no mkdir: a spool removed at the end of recovery stays removed
  const handle = await open(temp, 'wx', 0o600)
  let closed = false
  const close = async () => {
    if (!closed) await handle.close()
    closed = true
  }
  return {
    temp,
    async commit(data: Buffer) {
      try {
        const half = Math.floor(data.length / 2)
        await handle.write(data, 0, half, 0)
        await faultPoint('wal.prefetch.mid-segment', () => ({name, temp}))
        await handle.write(data, half, data.length - half, half)
        if (!bootId()) await handle.sync()
        await close()
        await rename(temp, join(dir, name))
      } catch (error) {
        await close().catch(() => {})
        await rm(temp, {force: true})
        throw error
      }
    },
    async discard() {
      await close().catch(() => {})
      await rm(temp, {force: true})
    },
  }
}

/**
 * True once `name` is in the spool; false at once when no live writer holds a temp of it, or after
 * `timeoutMs`. The slow path of restore_command uses it for a segment the prefetcher is fetching.
 */
export async function awaitSpooled(dir: string, name: string, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    let entries: string[]
    try {
      entries = await readdir(dir)
    } catch {
      return false
    }
    if (entries.includes(name)) return true
    const writing = entries.some((entry) => {
      const temp = TEMP.exec(entry)
      return temp !== null && temp[1] === name && pidAlive(Number(temp[2]))
    })
    if (!writing || Date.now() > deadline) return false
    await new Promise((resolve) => setTimeout(resolve, 10))
  }
}

/**
 * Hands a prefetched segment to PostgreSQL: a rename into `destination` (the spool is in the data
 * directory, so on the same file system; across file systems a copy to a temp name + fsync +
 * rename). False when the spool does not hold it.
 */
export async function takeSpoolSegment(dir: string, name: string, destination: string): Promise<boolean> {
  const source = join(dir, name)
  try {
    await rename(source, destination)
    return true
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code
    if (code === 'ENOENT') return false
    if (code !== 'EXDEV') throw error
  }
  // another filesystem: copied by the one atomic write (a segment is 16 MB), then taken out of the spool
  await writeFileAtomic(destination, await readFile(source), {mode: 0o600})
  await rm(source, {force: true})
  return true
}

/** The segments the fetch spool holds (undefined: the spool folder is gone). */
export async function spooledSegments(dir: string): Promise<Set<string> | undefined> {
  try {
    return new Set((await readdir(dir)).filter(isSpoolSegmentName))
  } catch {
    return undefined
  }
}

// ------------------------------------------------------------------ prefetcher control files

const WANT = '.want'
const PREFETCH_LOCK = /^\.prefetch-[0-9A-F]{8}\.pid$/
const lockPath = (dir: string, timeline: number) =>
  join(dir, `.prefetch-${timeline.toString(16).toUpperCase().padStart(8, '0')}.pid`)

/** restore_command's slow path notes the segment PostgreSQL asked for: the prefetcher keeps its window after it. */
export async function writeWant(dir: string, name: string): Promise<void> {
  const temp = join(dir, `.want.${process.pid}.${randomBytes(3).toString('hex')}.tmp`)
  await writeFile(temp, name, {mode: 0o600})
  await rename(temp, join(dir, WANT)).catch(async (error: unknown) => {
    await rm(temp, {force: true})
    throw error
  })
}

export async function readWant(dir: string): Promise<string | undefined> {
  return (await readFile(join(dir, WANT), 'utf8').catch(() => '')).trim() || undefined
}

/** The pid of the live prefetcher of `timeline`, if one runs. */
export function prefetcherPid(dir: string, timeline: number): number | undefined {
  return liveLockHolder(lockPath(dir, timeline))
}

/**
 * One prefetcher per spool and timeline: core/fs/lock's pid file, created exclusively; one left by
 * a dead prefetcher is replaced. (Two breaking the same stale lock at once could both run:
 * harmless, each writes the same verified bytes by rename, only work is wasted.) Undefined when a
 * live prefetcher holds it; else the function that releases it.
 */
export async function acquirePrefetchLock(dir: string, timeline: number): Promise<(() => Promise<void>) | undefined> {
  return acquireLocalLock(lockPath(dir, timeline), {what: 'prefetcher'}).catch(() => undefined)
}

// ------------------------------------------------------------------ push records

export interface PushRecord {
  name: string
  sha256: string
  size: number
  key: string
  recordedAt: string
}

const recordPath = (dir: string, name: string) => join(dir, `${name}.ok`)
const checkPath = (dir: string, name: string) => join(dir, `${name}.sha256`)

/**
 * Written only after the repository confirmed the object (the caller's pushWal returned): the
 * record, and beside it `<segment>.sha256` in `sha256sum -c` form (`<hex>  pg_wal/<segment>`, the
 * path as archive_command's %p names it from the data directory) for the shell fast path of the
 * async archive_command (command-lines.ts): its sha256 of %p (openssl) proves pg_wal still holds exactly the
 * pushed bytes, and the call ends without a Node start.
 */
export async function writePushRecord(dir: string, record: PushRecord, walPath?: string): Promise<void> {
  await mkdir(dir, {recursive: true, mode: 0o700})
  await faultPoint('wal.push-ahead.before-record', () => ({name: record.name}))
  await writeFileAtomic(recordPath(dir, record.name), JSON.stringify(record) + '\n', {mode: 0o600})
  if (walPath && !/\s/.test(walPath))
    await writeFileAtomic(checkPath(dir, record.name), `${record.sha256}  ${walPath}\n`, {mode: 0o600})
}

/** The shell words that set `$f` to the push spool path of `%f` (default spool, relative to the data directory). */
export function shellPushSpoolPath(source: SpoolSource): string {
  return `f=${DEFAULT_SPOOL_DIR}/push/${sourceId(source)}/%f`
}

export async function readPushRecord(dir: string, name: string): Promise<PushRecord | undefined> {
  try {
    const record = JSON.parse(await readFile(recordPath(dir, name), 'utf8')) as PushRecord
    return record.name === name && typeof record.sha256 === 'string' ? record : undefined
  } catch {
    return undefined
  }
}

export async function removePushRecord(dir: string, name: string): Promise<void> {
  await rm(checkPath(dir, name), {force: true})
  await rm(recordPath(dir, name), {force: true})
}

/** The postmaster.pid line naming the server (its pid), or undefined when no server runs in `dataDir`: what binds the prefetcher and the push-ahead worker to it. */
export function postmasterLine(dataDir: string): string | undefined {
  try {
    return readFileSync(join(dataDir, 'postmaster.pid'), 'utf8').split('\n')[0].trim() || undefined
  } catch {
    return undefined
  }
}

const PUSHER_LOCK = '.push-ahead.pid'
const claimPath = (dir: string, name: string) => join(dir, `.${name}.pushing`)
const CLAIM = /^\.([0-9A-F]{24})\.pushing$/

/** The pid of the running push-ahead worker of this spool folder, or undefined. */
export const pushWorkerPid = (dir: string): number | undefined => liveLockHolder(join(dir, PUSHER_LOCK))

export async function acquirePushWorkerLock(dir: string): Promise<(() => Promise<void>) | undefined> {
  return acquireLocalLock(join(dir, PUSHER_LOCK), {what: 'push-ahead worker'}).catch(() => undefined)
}

/**
 * Claims a segment for this process before pushing it, so that the archiver's call and the
 * push-ahead worker do not compress and store the same 16 MB twice. Returns undefined when the
 * claim is ours (release it with releasePushClaim), else the pid of the live process pushing it.
 * A claim whose process died is taken over. Only a saving: both sides may still push the same
 * segment (the repository's no-overwrite put and the sha256 comparison make that harmless).
 */
export async function claimPush(dir: string, name: string): Promise<number | undefined> {
  await mkdir(dir, {recursive: true, mode: 0o700})
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      await writeFile(claimPath(dir, name), `${process.pid}\n`, {flag: 'wx', mode: 0o600})
      return undefined
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') return undefined
      const holder = liveLockHolder(claimPath(dir, name))
      if (holder !== undefined && holder !== process.pid) return holder
      await rm(claimPath(dir, name), {force: true})
    }
  }
  return undefined
}

export async function releasePushClaim(dir: string, name: string): Promise<void> {
  await rm(claimPath(dir, name), {force: true})
}

/** The live pid pushing `name` right now, or undefined. */
export const pushClaimHolder = (dir: string, name: string): number | undefined => liveLockHolder(claimPath(dir, name))

/** Records whose segment left pg_wal (PostgreSQL recycled it) and the folders of other sources go. */
export async function cleanPushSpool(dir: string, walDir: string): Promise<void> {
  try {
    const parent = dirname(dir)
    for (const other of await readdir(parent)) {
      if (join(parent, other) !== dir) await rm(join(parent, other), {recursive: true, force: true})
    }
    const present = new Set(await readdir(walDir))
    for (const entry of await readdir(dir)) {
      const segment = entry.endsWith('.ok')
        ? entry.slice(0, -3)
        : entry.endsWith('.sha256')
          ? entry.slice(0, -7)
          : undefined
      if (segment !== undefined && !present.has(segment)) await rm(join(dir, entry), {force: true})
      else if (TEMP.test(entry) && !pidAlive(Number(TEMP.exec(entry)![2]))) await rm(join(dir, entry), {force: true})
      else if (CLAIM.test(entry) && liveLockHolder(join(dir, entry)) === undefined)
        await rm(join(dir, entry), {force: true})
    }
  } catch {
    // best effort
  }
}
