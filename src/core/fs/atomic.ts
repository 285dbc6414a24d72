/**
 * The one atomic file write: a temp name in the same directory, fsync of the file, rename over the
 * target, fsync of the directory. A kill at any moment leaves the old content or the new, never
 * half, and a power cut after the call returns keeps the new. The mode is set explicitly after the
 * write (open()'s mode is filtered by the umask: a 0600 file must be 0600 whatever the umask).
 */
import {randomBytes} from 'node:crypto'
import {
  chmodSync,
  chownSync,
  closeSync,
  fsyncSync,
  mkdirSync,
  openSync,
  renameSync,
  rmSync,
  statSync,
  writeSync,
} from 'node:fs'
import {basename, dirname, join} from 'node:path'

export interface AtomicWriteOptions {
  /** the file's mode, set exactly (not filtered by the umask) */
  mode: number
  /** chown the file to this owner when running as root */
  owner?: {uid: number; gid: number}
  /**
   * keep an existing file's mode and (as root) owner instead of `mode` / `owner`: a rewritten
   * pgbouncer.ini owned by postgres must stay readable by PgBouncer
   */
  keepExisting?: boolean
}

/** fsync a directory so that a rename or a create inside it survives a crash. */
export function fsyncDirSync(dir: string): void {
  let fd: number | undefined
  try {
    fd = openSync(dir, 'r')
    fsyncSync(fd)
  } catch (error) {
    // Some file systems refuse fsync on a directory (EINVAL); the rename is atomic all the same.
    if ((error as NodeJS.ErrnoException).code !== 'EINVAL' && (error as NodeJS.ErrnoException).code !== 'EISDIR')
      throw error
  } finally {
    if (fd !== undefined) closeSync(fd)
  }
}

export async function fsyncDir(dir: string): Promise<void> {
  fsyncDirSync(dir)
}

/** Writes `content` to `file` atomically and durably (see the header). Creates the directory. */
export function writeFileAtomicSync(file: string, content: string | Uint8Array, options: AtomicWriteOptions): void {
  const parent = dirname(file)
  mkdirSync(parent, {recursive: true})
  let {mode, owner} = options
  if (options.keepExisting) {
    const before = statSync(file, {throwIfNoEntry: false})
    if (before) {
      mode = before.mode & 0o777 || mode
      owner = {uid: before.uid, gid: before.gid}
    }
  }
  const temp = join(parent, `.${basename(file)}.${process.pid}.${randomBytes(3).toString('hex')}.tmp`)
  const fd = openSync(temp, 'wx', mode)
  try {
    if (typeof content === 'string') writeSync(fd, content)
    else writeSync(fd, content)
    fsyncSync(fd)
    closeSync(fd)
    chmodSync(temp, mode)
    if (owner && process.getuid?.() === 0) chownSync(temp, owner.uid, owner.gid)
    renameSync(temp, file)
  } catch (error) {
    try {
      closeSync(fd)
    } catch {
      // already closed
    }
    rmSync(temp, {force: true})
    throw error
  }
  fsyncDirSync(parent)
}

/** The same as writeFileAtomicSync, for async callers (small files: the write itself is synchronous). */
export async function writeFileAtomic(
  file: string,
  content: string | Uint8Array,
  options: AtomicWriteOptions,
): Promise<void> {
  writeFileAtomicSync(file, content, options)
}
