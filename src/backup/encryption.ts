/**
 * Client-side encryption of backup parts (`--encrypt` / backup.encryption.keyFile), so that an S3
 * bucket never sees plaintext. AES-256-GCM in fixed-size authenticated chunks:
 *
 *   header  = "COENC1\n\0" (8) | keyId (8 bytes) | chunkSize u32be | noncePrefix (8 random bytes)
 *   chunk*  = flag (1: 0 = more, 1 = final) | plaintext length u32be | ciphertext | tag (16)
 *
 * nonce = noncePrefix | u32be counter (never reused for a key: the prefix is random per stream and
 * the counter unique within it); AAD = header | counter | flag, so chunks cannot be reordered,
 * dropped, moved between streams, and truncation is detected (no final chunk → error).
 * Memory stays at about two chunks whatever the part size.
 */
import {createCipheriv, createDecipheriv, createHash, randomBytes} from 'node:crypto'
import {readFileSync, statSync} from 'node:fs'
import {Transform, type TransformCallback} from 'node:stream'

import {ChecksFailedError, ConfigError} from '../errors.js'

export const ENCRYPTION_ALGORITHM = 'aes-256-gcm-chunked' as const
export const DEFAULT_CHUNK_SIZE = 1024 * 1024
const MAGIC = Buffer.from('COENC1\n\0')
const HEADER_SIZE = 8 + 8 + 4 + 8
const TAG_SIZE = 16

export interface EncryptionKey {
  key: Buffer
  /** 16 hex chars of sha256(key): names the key without revealing it */
  keyId: string
  file: string
}

/** Reads a key file: 32 raw bytes or 64 hex characters; refuses modes looser than 0600. */
export function loadKeyFile(file: string): EncryptionKey {
  let mode: number
  try {
    mode = statSync(file).mode
  } catch (error) {
    throw new ConfigError(
      `encryption key file ${file} cannot be read: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`,
      {
        code: 'KEY_FILE_MISSING',
        hint: 'Create one: head -c 32 /dev/urandom > backup.key && chmod 600 backup.key (keep a copy outside the repository!)',
      },
    )
  }
  if ((mode & 0o077) !== 0) {
    throw new ConfigError(
      `encryption key file ${file} has mode ${(mode & 0o777).toString(8).padStart(4, '0')}; it must not be readable by group or others`,
      {
        code: 'KEY_FILE_MODE',
        hint: `chmod 600 ${file}`,
      },
    )
  }
  const raw = readFileSync(file)
  const text = raw.toString('utf8').trim()
  let key: Buffer
  if (raw.length === 32) key = raw
  else if (/^[0-9a-fA-F]{64}$/.test(text)) key = Buffer.from(text, 'hex')
  else {
    throw new ConfigError(
      `encryption key file ${file} must hold 32 random bytes or 64 hex characters (it holds ${raw.length} bytes)`,
      {
        code: 'KEY_FILE_INVALID',
        hint: 'Create one: head -c 32 /dev/urandom > backup.key && chmod 600 backup.key',
      },
    )
  }
  return {key, keyId: keyIdOf(key), file}
}

export function keyIdOf(key: Buffer): string {
  return createHash('sha256').update('charge-ops backup key id').update(key).digest('hex').slice(0, 16)
}

function nonce(prefix: Buffer, counter: number): Buffer {
  const n = Buffer.alloc(12)
  prefix.copy(n, 0, 0, 8)
  n.writeUInt32BE(counter, 8)
  return n
}

function aad(header: Buffer, counter: number, flag: number): Buffer {
  const tail = Buffer.alloc(5)
  tail.writeUInt32BE(counter, 0)
  tail[4] = flag
  return Buffer.concat([header, tail])
}

/** A Transform that encrypts its input into the chunked format. */
export function createEncryptStream(key: EncryptionKey, chunkSize = DEFAULT_CHUNK_SIZE): Transform {
  const header = Buffer.alloc(HEADER_SIZE)
  MAGIC.copy(header, 0)
  Buffer.from(key.keyId, 'hex').copy(header, 8)
  header.writeUInt32BE(chunkSize, 16)
  randomBytes(8).copy(header, 20)
  const prefix = header.subarray(20, 28)
  let counter = 0
  let pending: Buffer[] = []
  let pendingBytes = 0
  let headerSent = false

  const seal = (plain: Buffer, flag: number): Buffer => {
    if (counter >= 0xffffffff) throw new Error('encrypted part too large for one nonce prefix')
    const cipher = createCipheriv('aes-256-gcm', key.key, nonce(prefix, counter))
    cipher.setAAD(aad(header, counter, flag))
    const body = Buffer.concat([cipher.update(plain), cipher.final()])
    const frame = Buffer.alloc(5)
    frame[0] = flag
    frame.writeUInt32BE(plain.length, 1)
    counter++
    return Buffer.concat([frame, body, cipher.getAuthTag()])
  }

  return new Transform({
    transform(chunk: Buffer, _enc, callback: TransformCallback) {
      try {
        if (!headerSent) {
          this.push(header)
          headerSent = true
        }
        pending.push(chunk)
        pendingBytes += chunk.length
        if (pendingBytes > chunkSize) {
          let all = Buffer.concat(pending)
          // Keep at least one byte back so that the final chunk is never a spurious empty one.
          while (all.length > chunkSize) {
            this.push(seal(all.subarray(0, chunkSize), 0))
            all = all.subarray(chunkSize)
          }
          pending = [all]
          pendingBytes = all.length
        }
        callback()
      } catch (error) {
        callback(error as Error)
      }
    },
    flush(callback: TransformCallback) {
      try {
        if (!headerSent) this.push(header)
        this.push(seal(Buffer.concat(pending), 1))
        callback()
      } catch (error) {
        callback(error as Error)
      }
    },
  })
}

/** Reads the key id from an encrypted part's first bytes (to name the key it needs). */
export function keyIdOfHeader(firstBytes: Buffer): string | undefined {
  if (firstBytes.length < HEADER_SIZE || !firstBytes.subarray(0, 8).equals(MAGIC)) return undefined
  return firstBytes.subarray(8, 16).toString('hex')
}

/** A Transform that authenticates and decrypts the chunked format; any tampering or truncation → error. */
export function createDecryptStream(key: EncryptionKey, what = 'encrypted part'): Transform {
  let buffer: Buffer = Buffer.alloc(0)
  let header: Buffer | undefined
  let chunkSize = 0
  let counter = 0
  let finished = false
  const fail = (message: string) => new ChecksFailedError(`${what}: ${message}`, {code: 'DECRYPT_FAILED'})

  return new Transform({
    transform(chunk: Buffer, _enc, callback: TransformCallback) {
      buffer = buffer.length === 0 ? chunk : Buffer.concat([buffer, chunk])
      try {
        if (!header) {
          if (buffer.length < HEADER_SIZE) return callback()
          header = Buffer.from(buffer.subarray(0, HEADER_SIZE))
          if (!header.subarray(0, 8).equals(MAGIC)) throw fail('not encrypted by charge-ops (bad header)')
          const id = header.subarray(8, 16).toString('hex')
          if (id !== key.keyId)
            throw fail(`was encrypted with key ${id}, but the key file ${key.file} is key ${key.keyId}`)
          chunkSize = header.readUInt32BE(16)
          buffer = buffer.subarray(HEADER_SIZE)
        }
        while (buffer.length >= 5) {
          const flag = buffer[0]
          const length = buffer.readUInt32BE(1)
          if (length > chunkSize || flag > 1) throw fail('corrupt chunk frame')
          const total = 5 + length + TAG_SIZE
          if (buffer.length < total) break
          if (finished) throw fail('data after the final chunk')
          const decipher = createDecipheriv('aes-256-gcm', key.key, nonce(header.subarray(20, 28), counter))
          decipher.setAAD(aad(header, counter, flag))
          decipher.setAuthTag(buffer.subarray(5 + length, total))
          let plain: Buffer
          try {
            plain = Buffer.concat([decipher.update(buffer.subarray(5, 5 + length)), decipher.final()])
          } catch {
            throw fail(`chunk ${counter} failed authentication (corrupted or tampered)`)
          }
          counter++
          if (flag === 1) finished = true
          buffer = buffer.subarray(total)
          if (plain.length > 0) this.push(plain)
        }
        callback()
      } catch (error) {
        callback(error as Error)
      }
    },
    flush(callback: TransformCallback) {
      if (!header) return callback(fail('too short to hold a header'))
      if (!finished || buffer.length > 0) return callback(fail('truncated (no final chunk)'))
      callback()
    },
  })
}
