/**
 * The local WAL spool of the asynchronous forms of `wal fetch` (`--prefetch K`) and `wal push`
 * (`--async`). Default place: `charge-ops-spool/` in the data directory (PostgreSQL runs
 * archive_command and restore_command there, as its own OS user, so it is always writable; the
 * file engine of `backup base` leaves it out, `restore pitr` removes it once recovery ended).
 *
 * ```
 * <spool>/fetch/<source>/<segment>         a prefetched segment: complete, checksum-verified, fsynced
 * <spool>/fetch/<source>/.<segment>.<pid>.<rand>.tmp   being written (never served; removed once its pid is gone)
 * <spool>/push/<source>/<segment>.ok       "this content is durably in the repository" (JSON: sha256, size, key)
 * ```
 * `<source>` is a digest of repository + stack: a spool filled from one repository is never read
 * for another, and switching repository leaves the old one to be cleaned, not served.
 *
 * Crash safety: a segment appears under its own name only by rename after fsync and verification,
 * so a worker killed at any moment leaves at most a `.tmp` that nothing serves; a push record is
 * written (atomically) only after the repository confirmed the object.
 */
import {createHash, randomBytes} from 'node:crypto'
import {copyFile, mkdir, open, readdir, readFile, rename, rm} from 'node:fs/promises'
import {dirname, join, resolve} from 'node:path'

import {faultPoint} from '../core/faults.js'
import {writeFileAtomic} from '../core/fs/atomic.js'
import {pidAlive} from '../core/proc/pid.js'
import {parseWalFileName} from './names.js'

export const DEFAULT_SPOOL_DIR = 'charge-ops-spool'

export type SpoolKind = 'fetch' | 'push'

function sourceId(repository: string, stack: string): string {
  return createHash('sha256').update(`${repository}\n${stack}`).digest('hex').slice(0, 16)
}

/** The spool folder of one repository + stack; `root` defaults to `charge-ops-spool` in the cwd (the data directory). */
export function spoolDir(kind: SpoolKind, location: {repository: string; stack: string}, root?: string): string {
  return join(resolve(root ?? DEFAULT_SPOOL_DIR), kind, sourceId(location.repository, location.stack))
}

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
      const file = parseWalFileName(entry)
      if (!file || file.kind !== 'segment') {
        await rm(join(dir, entry), {force: true})
        continue
      }
      if (served && (file.segno! <= served.segno || file.timeline < served.timeline)) await rm(join(dir, entry), {force: true})
    }
  } catch {
    // a missing or unreadable spool only means nothing is prefetched
  }
}

/**
 * Writes one verified segment into the fetch spool: temp name, fsync, rename. The kill point sits
 * between the two halves of the write, where a killed worker leaves a half-written temp file.
 */
export async function writeSpoolSegment(dir: string, name: string, data: Buffer): Promise<void> {
  await mkdir(dir, {recursive: true, mode: 0o700})
  const temp = join(dir, `.${name}.${process.pid}.${randomBytes(3).toString('hex')}.tmp`)
  try {
    const handle = await open(temp, 'wx', 0o600)
    try {
      const half = Math.floor(data.length / 2)
      await handle.write(data, 0, half, 0)
      await faultPoint('wal.prefetch.mid-segment', () => ({name, temp}))
      await handle.write(data, half, data.length - half, half)
      await handle.sync()
    } finally {
      await handle.close()
    }
    await rename(temp, join(dir, name))
  } catch (error) {
    await rm(temp, {force: true})
    throw error
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
  const temp = join(dirname(destination), `.${name}.charge-ops-${randomBytes(3).toString('hex')}`)
  try {
    await copyFile(source, temp)
    const handle = await open(temp, 'r+')
    try {
      await handle.sync()
    } finally {
      await handle.close()
    }
    await rename(temp, destination)
  } catch (error) {
    await rm(temp, {force: true})
    throw error
  }
  await rm(source, {force: true})
  return true
}

/** Which of `names` the fetch spool holds. */
export async function spooledSegments(dir: string): Promise<Set<string>> {
  try {
    return new Set((await readdir(dir)).filter((entry) => !entry.startsWith('.')))
  } catch {
    return new Set()
  }
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

/** Written only after the repository confirmed the object (the caller's pushWal returned). */
export async function writePushRecord(dir: string, record: PushRecord): Promise<void> {
  await mkdir(dir, {recursive: true, mode: 0o700})
  await faultPoint('wal.push-ahead.before-record', () => ({name: record.name}))
  await writeFileAtomic(recordPath(dir, record.name), JSON.stringify(record) + '\n', {mode: 0o600})
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
  await rm(recordPath(dir, name), {force: true})
}

/** Records whose segment left pg_wal (PostgreSQL recycled it) and the folders of other sources go. */
export async function cleanPushSpool(dir: string, walDir: string): Promise<void> {
  try {
    const parent = dirname(dir)
    for (const other of await readdir(parent)) {
      if (join(parent, other) !== dir) await rm(join(parent, other), {recursive: true, force: true})
    }
    const present = new Set(await readdir(walDir))
    for (const entry of await readdir(dir)) {
      if (entry.endsWith('.ok') && !present.has(entry.slice(0, -3))) await rm(join(dir, entry), {force: true})
      else if (TEMP.test(entry) && !pidAlive(Number(TEMP.exec(entry)![2]))) await rm(join(dir, entry), {force: true})
    }
  } catch {
    // best effort
  }
}
