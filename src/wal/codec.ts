/**
 * The stored form of an archived WAL file. With zstd (the default) it is a plain `.zst` file that
 * `zstd -d` reads as is: a zstd *skippable frame* in front carries {sha256, size} of the original
 * bytes, which `wal fetch` verifies after decompression. Without the zstd binary it falls back to
 * gzip, with the same JSON in the gzip header's comment field (`gunzip` ignores it too).
 *
 * Node 20 has no zstd in zlib, so zstd runs as a child process (core/proc/filter: spawn bound to
 * this process, no shell, no execa — this is on `wal push`'s hot path, forked once per 16 MB segment).
 */
import {createHash} from 'node:crypto'
import {gunzipSync, deflateRawSync, crc32} from 'node:zlib'

import {filterBuffer} from '../core/proc/filter.js'

export type WalCompression = 'zstd' | 'gzip'

export interface WalEnvelope {
  sha256: string
  size: number
  /** the archived file's name, so a misplaced object is caught */
  name: string
}

const SKIPPABLE_MAGIC = 0x184d2a5e // one of the 16 zstd skippable-frame magics (0x184D2A5?)
const ZSTD_MAGIC = 0xfd2fb528

export function sha256Hex(data: Buffer): string {
  return createHash('sha256').update(data).digest('hex')
}

export const extensionOf = (compression: WalCompression): string => (compression === 'zstd' ? 'zst' : 'gz')

/** sha256 and size of a file, streamed (a 16 MB segment is never held twice). */
export async function sha256File(path: string): Promise<{sha256: string; size: number}> {
  const {createReadStream} = await import('node:fs')
  return new Promise((resolve, reject) => {
    const hash = createHash('sha256')
    let size = 0
    createReadStream(path, {highWaterMark: 1024 * 1024})
      .on('data', (chunk) => {
        hash.update(chunk as Buffer)
        size += chunk.length
      })
      .on('error', reject)
      .on('end', () => resolve({sha256: hash.digest('hex'), size}))
  })
}

/** Compresses with zstd -1 (the binary); `undefined` when zstd is not installed. */
export async function zstdCompress(data: Buffer, level = 1): Promise<Buffer | undefined> {
  try {
    return await filterBuffer('zstd', ['-q', `-${level}`, '-c'], data)
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined
    throw error
  }
}

/**
 * `wal push`'s fast path: zstd reads the file itself (no 16 MB pipe through node) while node
 * hashes it on the other core; gzip fallback when zstd is missing.
 */
export async function encodeWalFile(
  path: string,
  name: string,
  preferred: WalCompression = 'zstd',
): Promise<{body: Buffer; compression: WalCompression; envelope: WalEnvelope}> {
  const hashFile = sha256File(path)
  if (preferred === 'zstd') {
    const compressing = filterBuffer('zstd', ['-q', '-1', '-c', '--', path], Buffer.alloc(0)).catch(
      (error: NodeJS.ErrnoException) => {
        if (error.code === 'ENOENT') return undefined
        throw error
      },
    )
    const [compressed, digest] = await Promise.all([compressing, hashFile])
    if (compressed) {
      const envelope: WalEnvelope = {sha256: digest.sha256, size: digest.size, name}
      const json = Buffer.from(JSON.stringify(envelope))
      const head = Buffer.alloc(8)
      head.writeUInt32LE(SKIPPABLE_MAGIC, 0)
      head.writeUInt32LE(json.length, 4)
      return {body: Buffer.concat([head, json, compressed]), compression: 'zstd', envelope}
    }
  }
  await hashFile
  const {readFile} = await import('node:fs/promises')
  return encodeWal(await readFile(path), name, 'gzip')
}

export async function encodeWal(
  data: Buffer,
  name: string,
  preferred: WalCompression = 'zstd',
): Promise<{body: Buffer; compression: WalCompression; envelope: WalEnvelope}> {
  const envelope: WalEnvelope = {sha256: sha256Hex(data), size: data.length, name}
  const json = Buffer.from(JSON.stringify(envelope))
  if (preferred === 'zstd') {
    const compressed = await zstdCompress(data)
    if (compressed) {
      const head = Buffer.alloc(8)
      head.writeUInt32LE(SKIPPABLE_MAGIC, 0)
      head.writeUInt32LE(json.length, 4)
      return {body: Buffer.concat([head, json, compressed]), compression: 'zstd', envelope}
    }
  }
  // gzip member with FCOMMENT (RFC 1952): header, comment\0, raw deflate, CRC32, ISIZE
  const header = Buffer.from([0x1f, 0x8b, 8, 0x10, 0, 0, 0, 0, 0, 255])
  const trailer = Buffer.alloc(8)
  trailer.writeUInt32LE(crc32(data) >>> 0, 0)
  trailer.writeUInt32LE(data.length % 0x1_0000_0000, 4)
  const body = Buffer.concat([
    header,
    Buffer.from(json.toString('latin1'), 'latin1'),
    Buffer.from([0]),
    deflateRawSync(data, {level: 1}),
    trailer,
  ])
  return {body, compression: 'gzip', envelope}
}

export class WalIntegrityError extends Error {}

/** Reads the envelope only (no decompression): used to compare a re-pushed segment cheaply. */
export function readEnvelope(body: Buffer): WalEnvelope | undefined {
  if (body.length >= 8 && body.readUInt32LE(0) === SKIPPABLE_MAGIC) {
    const length = body.readUInt32LE(4)
    return parseEnvelope(body.subarray(8, 8 + length).toString())
  }
  if (body.length >= 10 && body[0] === 0x1f && body[1] === 0x8b && (body[3] & 0x10) !== 0 && (body[3] & 0x0e) === 0) {
    const end = body.indexOf(0, 10)
    if (end > 10) return parseEnvelope(body.subarray(10, end).toString('latin1'))
  }
  return undefined
}

/** A damaged header reads as no header: the object then counts as damaged, never as trusted. */
function parseEnvelope(text: string): WalEnvelope | undefined {
  try {
    const value = JSON.parse(text) as Partial<WalEnvelope>
    if (
      typeof value?.sha256 === 'string' &&
      /^[0-9a-f]{64}$/.test(value.sha256) &&
      Number.isSafeInteger(value.size) &&
      typeof value.name === 'string'
    ) {
      return {sha256: value.sha256, size: value.size!, name: value.name}
    }
  } catch {}
  return undefined
}

/** Decompresses and verifies the checksum; throws WalIntegrityError naming the file on any damage. */
export async function decodeWal(body: Buffer, name: string): Promise<Buffer> {
  const envelope = readEnvelope(body)
  if (!envelope)
    throw new WalIntegrityError(
      `${name}: the archived object has no charge-ops checksum header (damaged or not written by charge-ops)`,
    )
  let data: Buffer
  try {
    if (body.readUInt32LE(0) === SKIPPABLE_MAGIC) {
      const payload = body.subarray(8 + body.readUInt32LE(4))
      if (payload.length < 4 || payload.readUInt32LE(0) !== ZSTD_MAGIC) throw new Error('not a zstd frame')
      data = await filterBuffer('zstd', ['-q', '-d', '-c'], payload)
    } else {
      data = gunzipSync(body)
    }
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') throw error
    throw new WalIntegrityError(
      `${name}: the archived object does not decompress (${(error as Error).message.split('\n')[0]})`,
    )
  }
  if (envelope.name !== name) throw new WalIntegrityError(`${name}: the archived object holds ${envelope.name} instead`)
  if (data.length !== envelope.size || sha256Hex(data) !== envelope.sha256) {
    throw new WalIntegrityError(
      `${name}: checksum mismatch (stored sha256 ${envelope.sha256.slice(0, 12)}…, got ${sha256Hex(data).slice(0, 12)}…): the archived segment is corrupted`,
    )
  }
  return data
}
