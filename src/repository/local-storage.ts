import {createWriteStream} from 'node:fs'
import {faultPoint} from '../core/faults.js'
import {chown, link, mkdir, open, readdir, readFile, rename, rm, stat, unlink} from 'node:fs/promises'
import {dirname, join, relative, sep} from 'node:path'
import {Readable} from 'node:stream'
import {pipeline} from 'node:stream/promises'
import {randomBytes} from 'node:crypto'

import {
  assertSafeKey,
  hashingPassThrough,
  isPermissionError,
  ObjectExistsError,
  ObjectNotFoundError,
  type PutOptions,
  RepositoryUnreadableError,
  type PutResult,
  type RepositoryStorage,
  type StoredObject,
  type TemporaryObject,
} from './storage.js'
import {pidAlive} from '../core/proc/pid.js'
import {holdReadable} from '../core/stream.js'

const TEMP_PREFIX = '.tmp-'

/** fsync a directory so that a rename inside it survives a crash. */
async function fsyncDir(path: string): Promise<void> {
  const handle = await open(path, 'r')
  try {
    await handle.sync()
  } finally {
    await handle.close()
  }
}

/**
 * Moves a complete, fsynced temp file to its key and makes the entry durable. With `ifNotExists`,
 * link() fails with EEXIST instead of replacing: an atomic "create if absent".
 */
async function placeFile(temp: string, target: string, key: string, ifNotExists: boolean, sync = true): Promise<void> {
  if (ifNotExists) {
    try {
      await link(temp, target)
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'EEXIST') throw new ObjectExistsError(key)
      throw error
    } finally {
      await unlink(temp).catch(() => {})
    }
  } else {
    await rename(temp, target)
  }
  if (sync) await fsyncDir(dirname(target))
}

interface RepositoryOwner {
  uid: number
  gid: number
  fileMode: number
}

/** A repository in a local directory (or a mounted NFS / block volume). */
export class LocalStorage implements RepositoryStorage {
  readonly kind = 'local' as const
  constructor(readonly root: string) {}

  get location(): string {
    return this.root
  }

  private pathOf(key: string): string {
    assertSafeKey(key)
    return join(this.root, ...key.split('/'))
  }

  private ownerPromise?: Promise<RepositoryOwner | undefined>

  /**
   * Run as root (the documented cron lines do), files would be root:root 0600 and unreadable to
   * the repository's owner — the postgres user that runs `wal push` and `restore pitr`. So a root
   * process gives every file and directory it creates the owner of the repository's root
   * directory, and files its group-read bit. Not root, or a root-owned repository: unchanged.
   */
  private owner(): Promise<RepositoryOwner | undefined> {
    if (typeof process.getuid !== 'function' || process.getuid() !== 0) return Promise.resolve(undefined)
    this.ownerPromise ??= stat(this.root).then(
      (s) => (s.uid === 0 && s.gid === 0 ? undefined : {uid: s.uid, gid: s.gid, fileMode: 0o600 | (s.mode & 0o040)}),
      () => undefined,
    )
    return this.ownerPromise
  }

  /** mkdir -p, the new directories owned like the repository. */
  private async makeDir(dir: string): Promise<RepositoryOwner | undefined> {
    const owner = await this.owner()
    const first = await mkdir(dir, {recursive: true})
    if (owner && first) {
      for (let d = dir; d.length >= first.length && d.startsWith(this.root); d = dirname(d))
        await chown(d, owner.uid, owner.gid)
    }
    return owner
  }

  /** The temp file of a put: exclusive, then given the repository's owner and mode. */
  private async openTemp(temp: string, flags: string, owner: RepositoryOwner | undefined) {
    const handle = await open(temp, flags, owner?.fileMode ?? 0o600)
    if (owner) {
      await handle.chown(owner.uid, owner.gid)
      await handle.chmod(owner.fileMode)
    }
    return handle
  }

  async put(key: string, given: Readable | Buffer | string, options: PutOptions = {}): Promise<PutResult> {
    // held before the first await: a producer that exits meanwhile must not lose its output (core/stream.ts)
    const source = typeof given === 'string' || Buffer.isBuffer(given) ? given : holdReadable(given)
    const target = this.pathOf(key)
    const dir = dirname(target)
    const owner = await this.makeDir(dir)
    const temp = join(dir, `${TEMP_PREFIX}${process.pid}-${randomBytes(4).toString('hex')}-${target.split(sep).pop()}`)
    const hasher = await hashingPassThrough(options.onProgress)
    const input = typeof source === 'string' || Buffer.isBuffer(source) ? Readable.from([Buffer.from(source)]) : source
    try {
      const handle = await this.openTemp(temp, 'wx', owner)
      let written = false
      try {
        await pipeline(input, hasher.stream, createWriteStream('', {fd: handle.fd, autoClose: false}))
        if (!options.deferSync) await handle.sync()
        written = true
        await faultPoint('repository.put.temp-written', () => ({key}))
      } finally {
        // After a failed write (ENOSPC …) the stream may already have closed the fd: the close
        // error (EBADF) must not hide the write error.
        await handle.close().catch((error: unknown) => {
          if (written) throw error
        })
      }
      await placeFile(temp, target, key, Boolean(options.ifNotExists), !options.deferSync)
      return hasher.result()
    } catch (error) {
      await rm(temp, {force: true}).catch(() => {})
      throw error
    }
  }

  /**
   * `put` for bytes that a child process writes itself: `produce` gets the temp file's descriptor
   * (to hand to e.g. zstd as its stdout), so the data never passes through this process. The
   * sha256 is computed from the file as it grows (large positional reads, behind the writer, never
   * blocking it), then the file is fsynced and linked/renamed into place exactly as `put` does.
   * `produce` must resolve only once every writer has exited; on `signal` it must stop them.
   */
  async putProduced(
    key: string,
    produce: (fd: number, signal: AbortSignal) => Promise<void>,
    options: PutOptions = {},
  ): Promise<PutResult> {
    const target = this.pathOf(key)
    const dir = dirname(target)
    const owner = await this.makeDir(dir)
    const temp = join(dir, `${TEMP_PREFIX}${process.pid}-${randomBytes(4).toString('hex')}-${target.split(sep).pop()}`)
    const {createHash} = await import('node:crypto')
    const hash = createHash('sha256')
    let bytes = 0
    const abort = new AbortController()
    try {
      const handle = await this.openTemp(temp, 'wx+', owner)
      try {
        let produced = false
        let wake: (() => void) | undefined
        const producing = produce(handle.fd, abort.signal).finally(() => {
          produced = true
          wake?.()
        })
        producing.catch(() => {})
        const buffer = Buffer.allocUnsafe(4 * 1024 * 1024)
        try {
          for (;;) {
            const done = produced
            const {bytesRead} = await handle.read(buffer, 0, buffer.length, bytes)
            if (bytesRead > 0) {
              hash.update(buffer.subarray(0, bytesRead))
              bytes += bytesRead
              options.onProgress?.(bytesRead)
              continue
            }
            // At the end of what is written so far: finished only if the writers had already
            // exited before this read; else wait for more (or for them to exit).
            if (done) break
            // The writers may have exited during that read (their wake-up then found no waiter):
            // read once more rather than wait. The timer is not unref'd: with the children gone it
            // may be the only thing keeping the event loop — and this promise — alive.
            if (produced) continue
            await new Promise<void>((resolve) => {
              wake = resolve
              setTimeout(resolve, 20)
            })
            wake = undefined
          }
        } catch (error) {
          abort.abort()
          await producing.catch(() => {})
          throw error
        }
        await producing
        await handle.sync()
      } finally {
        await handle.close().catch(() => {})
      }
      await placeFile(temp, target, key, Boolean(options.ifNotExists))
      return {bytes, sha256: hash.digest('hex')}
    } catch (error) {
      await rm(temp, {force: true}).catch(() => {})
      throw error
    }
  }

  async get(key: string): Promise<Readable> {
    const path = this.pathOf(key)
    // opened here, not lazily by the stream: a missing or unreadable object fails now, by name
    let handle
    try {
      handle = await open(path, 'r')
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') throw new ObjectNotFoundError(key)
      if (isPermissionError(error)) throw new RepositoryUnreadableError(key, this.root, error)
      throw error
    }
    return handle.createReadStream()
  }

  async getBytes(key: string): Promise<Buffer> {
    try {
      return await readFile(this.pathOf(key))
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') throw new ObjectNotFoundError(key)
      if (isPermissionError(error)) throw new RepositoryUnreadableError(key, this.root, error)
      throw error
    }
  }

  async stat(key: string): Promise<StoredObject | undefined> {
    try {
      const s = await stat(this.pathOf(key))
      return s.isFile() ? {key, size: s.size, mtime: s.mtime} : undefined
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined
      throw error
    }
  }

  async exists(key: string): Promise<boolean> {
    return (await this.stat(key)) !== undefined
  }

  async list(prefix: string): Promise<StoredObject[]> {
    // List from the deepest existing directory of the prefix, then filter by the full prefix.
    const parts = prefix.split('/')
    const dirKey = prefix.endsWith('/') ? prefix.slice(0, -1) : parts.slice(0, -1).join('/')
    const start = dirKey ? join(this.root, ...dirKey.split('/')) : this.root
    const out: StoredObject[] = []
    const walk = async (dir: string): Promise<void> => {
      let entries
      try {
        entries = await readdir(dir, {withFileTypes: true})
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code === 'ENOENT') return
        throw error
      }
      for (const entry of entries) {
        const full = join(dir, entry.name)
        if (entry.isDirectory()) await walk(full)
        else if (entry.isFile() && !entry.name.startsWith(TEMP_PREFIX)) {
          const key = relative(this.root, full).split(sep).join('/')
          if (key.startsWith(prefix)) {
            const s = await stat(full).catch(() => undefined)
            if (s) out.push({key, size: s.size, mtime: s.mtime})
          }
        }
      }
    }
    await walk(start)
    return out.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0))
  }

  /** syncfs(2) of the filesystem holding prefix: one flush for every object put with deferSync. */
  async flush(prefix: string): Promise<void> {
    const {run} = await import('../core/proc/exec.js')
    const dir = join(this.root, ...prefix.split('/').filter(Boolean))
    await run('sync', ['-f', dir], {purpose: 'flushing the stored objects'})
  }

  async delete(keys: string | string[]): Promise<void> {
    for (const key of Array.isArray(keys) ? keys : [keys]) await rm(this.pathOf(key), {force: true})
  }

  /**
   * Temp files of puts (`.tmp-<pid>-<rand>-<name>`) under prefix, with the writer's pid and whether
   * it still runs on this host. A dead writer's temp file is a leftover of a killed run.
   */
  async listTemporary(prefix = ''): Promise<TemporaryObject[]> {
    const out: TemporaryObject[] = []
    const walk = async (dir: string): Promise<void> => {
      const entries = await readdir(dir, {withFileTypes: true}).catch(() => [])
      for (const entry of entries) {
        const full = join(dir, entry.name)
        if (entry.isDirectory()) await walk(full)
        else if (entry.name.startsWith(TEMP_PREFIX)) {
          const s = await stat(full).catch(() => undefined)
          if (!s) continue
          const pid = Number(/^\.tmp-(\d+)-/.exec(entry.name)?.[1] ?? NaN)
          out.push({
            key: relative(this.root, full).split(sep).join('/'),
            size: s.size,
            mtime: s.mtime,
            pid: Number.isFinite(pid) ? pid : undefined,
            writerAlive: Number.isFinite(pid) && pidAlive(pid),
          })
        }
      }
    }
    await walk(prefix ? join(this.root, ...prefix.split('/').filter(Boolean)) : this.root)
    return out.sort((a, b) => (a.key < b.key ? -1 : 1))
  }

  /**
   * Removes temp files left by killed puts: those whose writer no longer runs (on this host) and
   * that are at least `olderThanMs` old. Returns what was removed.
   */
  async sweepTemporary(prefix = '', olderThanMs = 60 * 60 * 1000): Promise<TemporaryObject[]> {
    const now = Date.now()
    const removed: TemporaryObject[] = []
    for (const t of await this.listTemporary(prefix)) {
      if (t.writerAlive || now - t.mtime.getTime() < olderThanMs) continue
      await rm(join(this.root, ...t.key.split('/')), {force: true})
      removed.push(t)
    }
    return removed
  }
}
