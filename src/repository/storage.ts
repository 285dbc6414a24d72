/**
 * The backup repository's storage interface (DESIGN §4): a local directory or an S3 prefix with
 * the same key layout. Everything above this file (backups, WAL, locks, retention) speaks in keys
 * like `<stack>/backups/<id>/manifest.json` and never touches paths or S3 calls directly.
 *
 * Contract every driver keeps:
 *  - `put` is atomic: a reader sees the whole object or nothing (local: temp file + fsync + rename;
 *    S3: a single PutObject / completed multipart upload). A killed put leaves no object under the
 *    final key (local temp files are named `.tmp-*` and swept by `sweepTemporary`).
 *  - `put(..., {ifNotExists: true})` never overwrites: it fails with ObjectExistsError.
 *  - `put` returns the byte count and sha256 of what was stored, computed on the stream.
 */
import {createHash} from 'node:crypto'
import type {Readable} from 'node:stream'

import {UsageError} from '../errors.js'

export interface StoredObject {
  key: string
  size: number
  mtime: Date
}

/** A temp object of an unfinished put (local `.tmp-*` file; S3: an incomplete multipart upload). */
export interface TemporaryObject extends StoredObject {
  /** the writer's pid, when the name records it */
  pid?: number
  /** whether that writer still runs (on this host); a dead writer's object is a leftover */
  writerAlive: boolean
  /** S3: the multipart upload id */
  uploadId?: string
}

export interface PutResult {
  bytes: number
  sha256: string
}

export interface PutOptions {
  ifNotExists?: boolean
  /** expected size, for progress and S3 part sizing */
  sizeHint?: number
  onProgress?: (bytes: number) => void
  /**
   * Local only: skip this object's fsyncs; the caller makes a whole batch durable at once with
   * `flush(prefix)` before anything refers to it (the file engine stores thousands of blocks and
   * writes the manifest that names them only after one flush).
   */
  deferSync?: boolean
}

export interface RepositoryStorage {
  /** human-readable location, never containing credentials */
  readonly location: string
  readonly kind: 'local' | 's3'
  put(key: string, source: Readable | Buffer | string, options?: PutOptions): Promise<PutResult>
  get(key: string): Promise<Readable>
  getBytes(key: string): Promise<Buffer>
  stat(key: string): Promise<StoredObject | undefined>
  exists(key: string): Promise<boolean>
  /** every object whose key starts with prefix (recursive), sorted by key */
  list(prefix: string): Promise<StoredObject[]>
  delete(keys: string | string[]): Promise<void>
  /** unfinished puts under prefix (killed runs leave them) — where the store can list them */
  listTemporary?(prefix: string): Promise<TemporaryObject[]>
  /** removes the unfinished puts of dead writers under prefix; returns them */
  sweepTemporary?(prefix: string, olderThanMs?: number): Promise<TemporaryObject[]>
  /** makes every object put with `deferSync` under prefix durable (local: syncfs; S3: nothing to do) */
  flush?(prefix: string): Promise<void>
}

export class ObjectNotFoundError extends Error {
  constructor(readonly key: string) {
    super(`${key} does not exist in the repository`)
    this.name = 'ObjectNotFoundError'
  }
}

export class ObjectExistsError extends Error {
  constructor(readonly key: string) {
    super(`${key} already exists in the repository`)
    this.name = 'ObjectExistsError'
  }
}

/**
 * A repository object this process may not read (a file written by root 0600 and read by the
 * postgres user, or the reverse). Exit 2 with the fix — never read as "no such backup", which
 * would make a restore fall back to an older one.
 */
export class RepositoryUnreadableError extends UsageError {
  constructor(
    readonly key: string,
    location: string,
    cause: unknown,
  ) {
    const uid = typeof process.getuid === 'function' ? process.getuid() : undefined
    super(
      `${location}/${key} cannot be read by this user${uid === undefined ? '' : ` (uid ${uid})`}: permission denied`,
      {
        code: 'REPOSITORY_UNREADABLE',
        hint: `Give the repository back to its owner (e.g. chown -R postgres: ${location}) and run charge-ops as that user; charge-ops run as root now writes files with the repository's owner.`,
        cause,
        data: {key},
      },
    )
  }
}

export const isPermissionError = (error: unknown) =>
  ['EACCES', 'EPERM'].includes((error as NodeJS.ErrnoException)?.code ?? '')

/** Keys are `/`-separated, relative, without `..` — validated so a crafted id cannot escape the repository. */
export function assertSafeKey(key: string): void {
  if (
    key === '' ||
    key.startsWith('/') ||
    key.split('/').some((part) => part === '..' || part === '.' || part === '')
  ) {
    throw new Error(`invalid repository key: ${JSON.stringify(key)}`)
  }
}

/** A pass-through that hashes and counts the bytes flowing through it. */
export async function hashingPassThrough(onProgress?: (bytes: number) => void) {
  const {Transform} = await import('node:stream')
  const hash = createHash('sha256')
  let bytes = 0
  const stream = new Transform({
    transform(chunk: Buffer, _enc, callback) {
      hash.update(chunk)
      bytes += chunk.length
      onProgress?.(chunk.length)
      callback(null, chunk)
    },
  })
  return {
    stream,
    result: (): PutResult => ({bytes, sha256: hash.digest('hex')}),
  }
}
