/**
 * The stored form of the file engine's base backups (`backup base --type full|diff|incr`).
 *
 * Every file of the data directory is cut into blocks of BLOCK_SIZE bytes; each stored block is one
 * repository object `<stack>/backups/<holder>/pg_data/<path>.b<index>.<zst|gz>` (compressed, then
 * encrypted when a key is set). The backup's file list (`pg_data.files.json`, a part of the
 * manifest) names, for every file, its size, mtime and blocks; a block records the sha256 of its
 * content and which backup holds its bytes (`ref`). A full backup holds every block itself; a diff
 * or incr stores only blocks whose content changed and references the others — so a 1 GB relation
 * segment with 20 MB appended costs its changed blocks, not the gigabyte. Restore pulls each block
 * from its holder and verifies both the stored bytes' and the content's sha256.
 */
import {createHash} from 'node:crypto'
import {Readable} from 'node:stream'
import {promisify} from 'node:util'
import {gunzip, gzip} from 'node:zlib'

import {z} from 'zod'

import {filterBuffer} from '../core/proc/filter.js'
import {ChecksFailedError} from '../errors.js'
import type {EncryptionKey} from './encryption.js'

/** 8 MiB: small enough that an append touches few blocks, large enough that zstd's start-up is noise. */
export const BLOCK_SIZE = 8 * 1024 * 1024
/** blocks below this are gzip'ed in-process: spawning zstd for an 8 kB catalog file costs more than it saves */
const ZSTD_MIN = 256 * 1024
export const FILE_LIST_PART = 'pg_data.files.json'
export const BACKUP_LABEL_PART = 'backup_label'
export const TABLESPACE_MAP_PART = 'tablespace_map'

export const blockSchema = z.object({
  /** sha256 of the block's content (before compression) */
  sha256: z.string().regex(/^[0-9a-f]{64}$/),
  /** content length */
  size: z.number().int().nonnegative(),
  /** the backup id whose directory holds the stored object */
  ref: z.string(),
  /** stored object: size, sha256, compression, encrypted */
  stored: z.number().int().nonnegative(),
  storedSha256: z.string().regex(/^[0-9a-f]{64}$/),
  c: z.enum(['zstd', 'gzip']),
  enc: z.boolean().optional(),
})
export type StoredBlock = z.infer<typeof blockSchema>

export const fileEntrySchema = z.object({
  path: z.string(),
  size: z.number().int().nonnegative(),
  /** mtime in ns since the epoch (string: beyond 2^53) as stat'ed before the file was read */
  mtimeNs: z.string(),
  mode: z.number().int(),
  blocks: z.array(blockSchema),
})
export type FileEntry = z.infer<typeof fileEntrySchema>

export const fileListSchema = z.object({
  formatVersion: z.literal(1),
  blockSize: z.number().int().positive(),
  /** wall clock (ms) when the file copy began: the mtime safety margin is measured from it */
  copyStartedAtMs: z.number(),
  directories: z.array(z.object({path: z.string(), mode: z.number().int()})),
  files: z.array(fileEntrySchema),
})
export type FileList = z.infer<typeof fileListSchema>

export function blockKeySuffix(path: string, index: number, c: 'zstd' | 'gzip'): string {
  return `pg_data/${path}.b${index}.${c === 'zstd' ? 'zst' : 'gz'}`
}

export const sha256 = (data: Buffer): string => createHash('sha256').update(data).digest('hex')

async function collect(stream: Readable): Promise<Buffer> {
  const chunks: Buffer[] = []
  for await (const chunk of stream) chunks.push(chunk as Buffer)
  return Buffer.concat(chunks)
}

/** Compresses (zstd child for large blocks, in-process gzip for small ones), then encrypts. */
export async function encodeBlock(
  data: Buffer,
  options: {level: number; zstd: boolean; encryption?: EncryptionKey},
): Promise<{body: Buffer; c: 'zstd' | 'gzip'; enc: boolean}> {
  const c = options.zstd && data.length >= ZSTD_MIN ? 'zstd' : 'gzip'
  let body =
    c === 'zstd'
      ? await filterBuffer('zstd', ['-q', `-${options.level}`, '-c'], data)
      : await promisify(gzip)(data, {level: 1})
  if (options.encryption) {
    const {createEncryptStream} = await import('./encryption.js')
    body = await collect(Readable.from([body]).pipe(createEncryptStream(options.encryption)))
  }
  return {body, c, enc: Boolean(options.encryption)}
}

/** Verifies the stored bytes, decrypts, decompresses and verifies the content; throws naming the block. */
export async function decodeBlock(
  body: Buffer,
  block: StoredBlock,
  what: string,
  encryption?: EncryptionKey,
): Promise<Buffer> {
  if (body.length !== block.stored || sha256(body) !== block.storedSha256) {
    throw new ChecksFailedError(
      `${what}: stored object checksum mismatch (${body.length} bytes, sha256 ${sha256(body).slice(0, 12)}… ≠ manifest ${block.storedSha256.slice(0, 12)}…)`,
      {code: 'BASE_BLOCK_CORRUPT'},
    )
  }
  let data = body
  if (block.enc) {
    if (!encryption) throw new ChecksFailedError(`${what} is encrypted: pass --encrypt KEYFILE`, {code: 'KEY_REQUIRED'})
    const {createDecryptStream} = await import('./encryption.js')
    data = await collect(Readable.from([data]).pipe(createDecryptStream(encryption, what)))
  }
  try {
    data = block.c === 'zstd' ? await filterBuffer('zstd', ['-q', '-d', '-c'], data) : await promisify(gunzip)(data)
  } catch (error) {
    throw new ChecksFailedError(`${what}: does not decompress (${(error as Error).message.split('\n')[0]})`, {
      code: 'BASE_BLOCK_CORRUPT',
    })
  }
  if (data.length !== block.size || sha256(data) !== block.sha256) {
    throw new ChecksFailedError(`${what}: content checksum mismatch after decompression`, {code: 'BASE_BLOCK_CORRUPT'})
  }
  return data
}

// ------------------------------------------------------------------ what to copy

/** Directories whose contents a base backup never needs (pg_basebackup leaves them out too; charge-ops-spool: the WAL spool, src/wal/spool.ts). */
export const EXCLUDED_DIR_CONTENTS = new Set([
  'charge-ops-spool',
  'pg_wal',
  'pg_dynshmem',
  'pg_notify',
  'pg_replslot',
  'pg_serial',
  'pg_snapshots',
  'pg_stat_tmp',
  'pg_subtrans',
])
/** Files never copied: the running server's, the non-exclusive backup's own (stored as returned), caches. */
export const EXCLUDED_FILES = new Set([
  'postmaster.pid',
  'postmaster.opts',
  'backup_label',
  'tablespace_map',
  'pg_internal.init',
  'current_logfiles',
  'backup_label.old',
  'recovery.signal',
  'standby.signal',
])

export function isExcluded(relPath: string, isDir: boolean): boolean {
  const parts = relPath.split('/')
  const name = parts.at(-1)!
  if (!isDir && EXCLUDED_FILES.has(name)) return true
  if (name.startsWith('pgsql_tmp')) return true
  // contents of an excluded directory (the directory itself is kept, empty)
  if (parts.length > 1 && EXCLUDED_DIR_CONTENTS.has(parts[0])) return true
  return false
}

/**
 * Whether a file can be referenced from the prior backup without reading it: same size, same
 * mtime, and that mtime lies clearly before the prior copy began. A file modified within the
 * margin of the prior copy's start could have changed again in the same clock tick after it was
 * read (or be on a filesystem with coarse timestamps), so it is read and compared block by block.
 */
export function unchangedByMetadata(
  prior: FileEntry | undefined,
  size: number,
  mtimeNs: bigint,
  priorCopyStartedAtMs: number,
  marginMs: number,
): boolean {
  if (!prior || prior.size !== size || prior.mtimeNs !== mtimeNs.toString()) return false
  return Number(mtimeNs / 1_000_000n) < priorCopyStartedAtMs - marginMs
}
