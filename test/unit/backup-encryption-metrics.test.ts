import {randomBytes} from 'node:crypto'
import {mkdtempSync, readFileSync, rmSync} from 'node:fs'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {Readable} from 'node:stream'

import {describe, expect, it} from 'vitest'

import {crossStoreCheck} from '../../src/backup/all.js'
import {createDecryptStream, createEncryptStream, keyIdOf} from '../../src/backup/encryption.js'
import {parseTextfile, successMetrics, updateMetricsFile} from '../../src/backup/metrics.js'

const key = {key: randomBytes(32), keyId: '', file: 'k'}
key.keyId = keyIdOf(key.key)

async function collect(stream: NodeJS.ReadableStream): Promise<Buffer> {
  const chunks: Buffer[] = []
  for await (const c of stream) chunks.push(c as Buffer)
  return Buffer.concat(chunks)
}
const encrypt = (plain: Buffer, chunk = 1000) =>
  collect(Readable.from([plain.subarray(0, 777), plain.subarray(777)]).pipe(createEncryptStream(key, chunk)))
const decrypt = (data: Buffer) => collect(Readable.from([data]).pipe(createDecryptStream(key)))

describe('chunked AES-256-GCM', () => {
  it('round-trips sizes around chunk boundaries, including empty', async () => {
    for (const n of [0, 1, 999, 1000, 1001, 5000, 12_345]) {
      const plain = randomBytes(n)
      const enc = await encrypt(plain)
      expect(enc.includes(plain.subarray(0, Math.min(n, 64))) && n >= 16).toBe(false)
      expect((await decrypt(enc)).equals(plain)).toBe(true)
    }
  })
  it('detects a flipped byte, truncation and a wrong key', async () => {
    const enc = await encrypt(randomBytes(5000))
    const flipped = Buffer.from(enc)
    flipped[100] ^= 1
    await expect(decrypt(flipped)).rejects.toThrow(/authentication/)
    await expect(decrypt(enc.subarray(0, enc.length - 1500))).rejects.toThrow(/truncated/)
    const other = {key: randomBytes(32), keyId: '', file: 'other.key'}
    other.keyId = keyIdOf(other.key)
    await expect(collect(Readable.from([enc]).pipe(createDecryptStream(other)))).rejects.toThrow(/encrypted with key/)
  })
})

describe('metrics textfile', () => {
  it('merges kinds and writes atomically', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'co-metrics-'))
    const file = join(dir, 'm.prom')
    await updateMetricsFile(file, successMetrics('s', 'db', new Date(1_700_000_000_000), 1500, 42))
    await updateMetricsFile(file, successMetrics('s', 'files', new Date(1_700_000_100_000), 2500, 7))
    const text = readFileSync(file, 'utf8')
    expect(text).toContain('# TYPE charge_ops_backup_bytes gauge')
    expect(
      parseTextfile(text)
        .filter((s) => s.name === 'charge_ops_backup_last_success_timestamp_seconds')
        .map((s) => [s.labels.kind, s.value]),
    ).toEqual([
      ['db', 1_700_000_000],
      ['files', 1_700_000_100],
    ])
    rmSync(dir, {recursive: true})
  })
})

describe('cross-store check', () => {
  it('lists missing and orphan uploads and compares Chroma with PostgreSQL', () => {
    const r = crossStoreCheck({
      referenced: ['a.csv', 'b.csv', 'sub/c.csv'],
      files: ['a.csv', 'sub/c.csv', 'stray.csv'],
      chromaRecords: 10,
      knowledgePassages: 12,
      collection: 'charging_knowledge',
    })
    expect(r.ok).toBe(false)
    expect(r.missingUploads).toEqual(['b.csv'])
    expect(r.orphanUploads).toEqual(['stray.csv'])
    expect(r.chroma).toMatchObject({records: 10, expected: 12, ok: false})
    expect(
      crossStoreCheck({
        referenced: ['a.csv'],
        files: ['a.csv'],
        chromaRecords: 3,
        knowledgePassages: 3,
        collection: 'x',
      }).ok,
    ).toBe(true)
  })
})
