/**
 * A part that cannot be empty and is (a compressed, encrypted or file-holding part of 0 bytes) lost
 * its content when the backup was taken: its checksum matches the empty object and proves nothing.
 * Such backups exist: before holdReadable (src/core/stream.ts) a short producer's part could be
 * stored empty on S3. verify and restore must name it instead of calling it fine.
 */
import {createHash} from 'node:crypto'
import {mkdtempSync, rmSync} from 'node:fs'
import {tmpdir} from 'node:os'
import path from 'node:path'

import {afterAll, describe, expect, it} from 'vitest'

import {impossiblyEmpty, partKey, type BackupManifest, type BackupPart} from '../../src/repository/manifest.js'
import {LocalStorage} from '../../src/repository/local-storage.js'
import {checkPart} from '../../src/restore/logical.js'

const dir = mkdtempSync(path.join(tmpdir(), 'co-empty-part-'))
afterAll(() => rmSync(dir, {recursive: true, force: true}))
const EMPTY_SHA = createHash('sha256').digest('hex')

describe('a part stored empty although it cannot be', () => {
  it('is told apart from parts that may be empty', () => {
    expect(impossiblyEmpty({bytes: 0, compression: 'zstd', encryption: null})).toBe(true)
    expect(impossiblyEmpty({bytes: 0, compression: 'none', encryption: null, fileCount: 3})).toBe(true)
    expect(
      impossiblyEmpty({
        bytes: 0,
        compression: 'none',
        encryption: {algorithm: 'aes-256-gcm-chunked', keyId: 'k', chunkSize: 65536},
      }),
    ).toBe(true)
    expect(impossiblyEmpty({bytes: 0, compression: 'none', encryption: null, fileCount: 0})).toBe(false)
    expect(impossiblyEmpty({bytes: 13, compression: 'zstd', encryption: null})).toBe(false)
  })

  it('fails the check that verify and restore run, although its checksum matches', async () => {
    const storage = new LocalStorage(dir)
    const manifest = {stack: 'charge-analysis', id: '20261203T000000Z-files-0000'} as BackupManifest
    const part = {
      name: 'uploads.tar.zst',
      bytes: 0,
      sha256: EMPTY_SHA,
      compression: 'zstd',
      encryption: null,
      fileCount: 31,
    } as BackupPart
    await storage.put(partKey(manifest.stack, manifest.id, part.name), '')
    const check = await checkPart(storage, manifest, part)
    expect(check.ok).toBe(false)
    expect(check.error).toMatch(/stored empty/)
  })
})
