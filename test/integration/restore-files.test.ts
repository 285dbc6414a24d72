/**
 * restore files against real folders and a real Chroma server (managed like the sandbox's):
 * round trip (every file's sha256 identical, Chroma counts through the restarted server), a flipped
 * byte refused before anything is touched, interrupted runs finished / undone by the rerun.
 */
import {createHash} from 'node:crypto'
import {existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync} from 'node:fs'
import {tmpdir} from 'node:os'
import {dirname, join, relative} from 'node:path'

import {afterAll, beforeAll, describe, expect, it} from 'vitest'

import {openBackupContext} from '../../src/backup/context.js'
import {backupFiles, filesOptionsFrom} from '../../src/backup/files.js'
import {chromaClient} from '../../src/chroma/client.js'
import {loadSettings} from '../../src/config/settings.js'
import {silentLogger} from '../../src/output/logger.js'
import type {BackupManifest} from '../../src/repository/manifest.js'
import {partKey} from '../../src/repository/manifest.js'
import {restoreFiles, type RestoreFilesOptions} from '../../src/restore/files.js'
import {ensureChroma, stopChroma} from '../../src/sandbox/servers.js'
import {freePort} from '../support/index.js'

let dir: string
let root: string
let uploads: string
let chroma: string
let port: number
let manifest: BackupManifest
let uploadsAtBackup: Record<string, string>

/** sha256 of every regular file under a folder, by relative path. */
function treeHashes(base: string, skip: (rel: string) => boolean = () => false): Record<string, string> {
  const out: Record<string, string> = {}
  const walk = (d: string) => {
    for (const e of readdirSync(d, {withFileTypes: true})) {
      const full = join(d, e.name)
      const rel = relative(base, full)
      if (skip(rel)) continue
      if (e.isDirectory()) walk(full)
      else if (e.isFile()) out[rel] = createHash('sha256').update(readFileSync(full)).digest('hex')
    }
  }
  walk(base)
  return out
}

const siblings = () => readdirSync(root).filter((n) => n.includes('.restore-') || n.includes('.old-'))
const settingsFor = (repo: string) =>
  loadSettings({
    cwd: dir,
    env: {
      CHARGE_OPS_REPO: repo,
      UPLOADS_DIR: uploads,
      CHROMA_PERSIST_DIRECTORY: chroma,
      CHARGE_OPS_STATE_DIR: join(dir, 'state'),
    },
  })

async function restore(repo: string, extra: Partial<RestoreFilesOptions> = {}) {
  const settings = settingsFor(repo)
  const ctx = await openBackupContext({settings, logger: silentLogger})
  return restoreFiles({settings, storage: ctx.storage, stack: ctx.stack, ref: 'latest', logger: silentLogger, ...extra})
}

async function addRecords(name: string, from: number, n: number) {
  const client = await chromaClient(`http://127.0.0.1:${port}`)
  const col = await client.getOrCreateCollection({name, embeddingFunction: null})
  const ids = Array.from({length: n}, (_, i) => `${name}-${from + i}`)
  await col.add({
    ids,
    embeddings: ids.map((_, i) => [Math.sin(from + i), Math.cos(from + i), 0.5]),
    documents: ids.map((id) => `passage ${id}`),
  })
}

async function serverCounts(): Promise<Record<string, number>> {
  const {collectionCounts} = await import('../../src/chroma/client.js')
  return Object.fromEntries((await collectionCounts(`http://127.0.0.1:${port}`)).map((c) => [c.name, c.count]))
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'co-restore-files-'))
  root = join(dir, 'sandbox') // laid out like `charge-ops sandbox up`'s: <root>/chroma, <root>/run/chroma.pid
  uploads = join(root, 'uploads')
  chroma = join(root, 'chroma')
  mkdirSync(join(uploads, '2026', '02'), {recursive: true})
  for (let i = 0; i < 30; i++)
    writeFileSync(
      join(uploads, '2026', '02', `session-${i}.csv`),
      `timestamp,voltage_v\n${i},${380 + i}\n`.repeat(100 + i * 7),
    )
  writeFileSync(join(uploads, 'binary.bin'), Buffer.from(Array.from({length: 70_000}, (_, i) => (i * 31) % 256)))
  writeFileSync(join(uploads, 'empty.csv'), '')
  port = await freePort()
  mkdirSync(chroma, {recursive: true})
  writeFileSync(
    join(root, 'sandbox.json'),
    JSON.stringify({
      version: 1,
      createdAt: new Date().toISOString(),
      ports: {postgres: 0, redis: 0, chroma: port, api: 0},
    }),
  )
  await ensureChroma(root, port)
  await addRecords('charging_knowledge', 0, 40)
  await addRecords('other_notes', 0, 5)
  expect(await serverCounts()).toEqual({charging_knowledge: 40, other_notes: 5})

  const settings = settingsFor(join(dir, 'repo'))
  const ctx = await openBackupContext({settings, logger: silentLogger})
  manifest = await backupFiles(ctx, filesOptionsFrom(ctx))
  uploadsAtBackup = treeHashes(uploads)
}, 300_000)

afterAll(async () => {
  if (root) await stopChroma(root)
  rmSync(dir, {recursive: true, force: true})
})

describe('restore files', () => {
  it('the backup recorded sha256 per file and Chroma counts per collection', () => {
    expect(manifest.files?.chroma).toMatchObject({collections: {charging_knowledge: 40, other_notes: 5}})
    expect(manifest.files?.uploads?.fileCount).toBe(32)
  })

  it('round trip: every file identical, Chroma restarted with the backed-up counts, nothing left beside the folders', async () => {
    // damage the live state after the backup
    rmSync(join(uploads, '2026', '02', 'session-3.csv'))
    writeFileSync(join(uploads, '2026', '02', 'session-4.csv'), 'changed')
    writeFileSync(join(uploads, 'new-after-backup.csv'), 'x')
    await addRecords('charging_knowledge', 1000, 11)
    expect((await serverCounts()).charging_knowledge).toBe(51)

    const result = await restore(join(dir, 'repo'))
    expect(result.components.map((c) => c.component).sort()).toEqual(['chroma', 'uploads'])
    expect(treeHashes(uploads)).toEqual(uploadsAtBackup)
    expect(result.chroma).toMatchObject({server: 'restarted', ok: true})
    expect(result.chroma?.collections).toEqual(
      expect.arrayContaining([
        {name: 'charging_knowledge', expected: 40, restored: 40, server: 40, ok: true},
        {name: 'other_notes', expected: 5, restored: 5, server: 5, ok: true},
      ]),
    )
    expect(await serverCounts()).toEqual({charging_knowledge: 40, other_notes: 5})
    expect(siblings()).toEqual([])
    expect(existsSync(join(dir, 'state', 'maintenance'))).toBe(false)
    expect(existsSync(join(dir, 'state', 'restore-files.json'))).toBe(false)
  }, 300_000)

  it('a flipped byte in a part is refused (exit 1) before anything is touched', async () => {
    const repo = join(dir, 'repo-flip')
    const settings = settingsFor(repo)
    const ctx = await openBackupContext({settings, logger: silentLogger})
    const m = await backupFiles(ctx, {uploadsDir: uploads})
    const file = join(repo, ...partKey('charge-analysis', m.id, 'uploads.tar.zst').split('/'))
    const bytes = readFileSync(file)
    bytes[Math.floor(bytes.length / 2)] ^= 0x04
    writeFileSync(file, bytes)
    writeFileSync(join(uploads, 'after.csv'), 'live data written after the backup')
    const before = treeHashes(uploads)
    await expect(restore(repo)).rejects.toMatchObject({code: 'CHECKSUM_MISMATCH', exitCode: 1})
    expect(treeHashes(uploads)).toEqual(before)
    expect(siblings()).toEqual([])
    rmSync(join(uploads, 'after.csv'))
  })

  it('interrupted after the live folder was moved away: the rerun finishes the swap', async () => {
    writeFileSync(join(uploads, 'junk.csv'), 'junk')
    await expect(
      restore(join(dir, 'repo'), {
        only: ['uploads'],
        onStep: (s) => {
          if (s === 'moved-old:uploads') throw new Error('killed')
        },
      }),
    ).rejects.toThrow('killed')
    // the state a kill leaves: no live folder, the old one and the verified copy beside it
    expect(existsSync(uploads)).toBe(false)
    expect(siblings().sort()).toEqual([`uploads.old-${manifest.id}`, `uploads.restore-${manifest.id}`])
    const result = await restore(join(dir, 'repo'), {only: ['uploads']})
    expect(result.recovered.join('\n')).toMatch(/finished the interrupted swap/)
    expect(result.components[0].resumed).toBe(true)
    expect(treeHashes(uploads)).toEqual(uploadsAtBackup)
    expect(siblings()).toEqual([])
  })

  it('interrupted during extraction: the rerun removes the unverified copy and restores', async () => {
    writeFileSync(join(uploads, 'junk2.csv'), 'junk')
    const before = treeHashes(uploads)
    await expect(
      restore(join(dir, 'repo'), {
        only: ['uploads'],
        onStep: (s) => {
          if (s === 'extracted:uploads') throw new Error('killed')
        },
      }),
    ).rejects.toThrow('killed')
    expect(treeHashes(uploads)).toEqual(before) // live untouched
    expect(siblings()).toEqual([`uploads.restore-${manifest.id}`])
    const result = await restore(join(dir, 'repo'), {only: ['uploads']})
    expect(result.recovered.join('\n')).toMatch(/removed the unverified extraction/)
    expect(treeHashes(uploads)).toEqual(uploadsAtBackup)
    expect(siblings()).toEqual([])
    expect(dirname(uploads)).toBe(root)
  })
})
