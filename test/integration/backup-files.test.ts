import {mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync, existsSync} from 'node:fs'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {execFileSync} from 'node:child_process'

import Database from 'better-sqlite3'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'

import {backupAll} from '../../src/backup/all.js'
import {openBackupContext} from '../../src/backup/context.js'
import {backupFiles, filesOptionsFrom} from '../../src/backup/files.js'
import {pruneBackups} from '../../src/backup/prune.js'
import {verifyBackup} from '../../src/restore/verify.js'
import {loadSettings} from '../../src/config/settings.js'
import {silentLogger} from '../../src/output/logger.js'
import {listBackups, partKey} from '../../src/repository/manifest.js'
import {sharedPostgres} from '../support/index.js'

const pg = sharedPostgres()
let dir: string
let dbUrl: string
let uploads: string
let chroma: string

function makeChroma(path: string, records: number) {
  mkdirSync(path, {recursive: true})
  const db = new Database(join(path, 'chroma.sqlite3'))
  db.pragma('journal_mode = WAL')
  db.exec(`CREATE TABLE collections (id text primary key, name text);
           CREATE TABLE segments (id text primary key, collection text);
           CREATE TABLE embeddings (id integer primary key, segment_id text, embedding_id text);
           INSERT INTO collections VALUES ('c1', 'charging_knowledge'), ('c2', 'other');
           INSERT INTO segments VALUES ('s1', 'c1'), ('s2', 'c1'), ('s3', 'c2');`)
  const ins = db.prepare('INSERT INTO embeddings (segment_id, embedding_id) VALUES (?, ?)')
  for (let i = 0; i < records; i++) ins.run(i % 2 ? 's1' : 's2', `e${i}`)
  ins.run('s3', 'other')
  mkdirSync(join(path, 'seg-uuid'), {recursive: true})
  writeFileSync(join(path, 'seg-uuid', 'data_level0.bin'), Buffer.alloc(4096, 7))
  return db // left open: a live database with a WAL, as under a running server
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'co-backup-files-'))
  uploads = join(dir, 'uploads')
  chroma = join(dir, 'chroma')
  mkdirSync(join(uploads, '2026', '01'), {recursive: true})
  for (let i = 0; i < 20; i++)
    writeFileSync(join(uploads, '2026', '01', `s${i}.csv`), `timestamp,voltage_v\n${i},${400 + i}\n`.repeat(50 + i))
  writeFileSync(join(uploads, 'stray.csv'), 'orphan')
  dbUrl = await pg.createDatabase()
  const db = new URL(dbUrl).pathname.slice(1)
  await pg.query(
    `CREATE TABLE uploads (id serial primary key, path text not null unique);
     INSERT INTO uploads (path) SELECT '2026/01/s' || g || '.csv' FROM generate_series(0, 19) g;
     INSERT INTO uploads (path) VALUES ('2026/01/gone.csv');
     CREATE TABLE knowledge_passages (id serial primary key, chroma_id text);
     INSERT INTO knowledge_passages (chroma_id) SELECT 'e' || g FROM generate_series(1, 12) g;`,
    db,
  )
})
afterAll(() => rmSync(dir, {recursive: true, force: true}))

const ctxFor = (repo: string) =>
  openBackupContext({
    settings: loadSettings({
      cwd: dir,
      env: {
        DATABASE_URL: dbUrl,
        CHARGE_OPS_REPO: repo,
        UPLOADS_DIR: uploads,
        CHROMA_PERSIST_DIRECTORY: chroma,
        CHARGE_OPS_STATE_DIR: join(dir, 'state'),
      },
    }),
    logger: silentLogger,
  })

describe('backup files / all', () => {
  it('backs up uploads and Chroma (online sqlite copy), restorable with tar, maintenance switched back off', async () => {
    const live = makeChroma(chroma, 12)
    const repo = join(dir, 'repo-files')
    const ctx = await ctxFor(repo)
    const m = await backupFiles(ctx, filesOptionsFrom(ctx))
    live.close()
    expect(m.files?.uploads).toMatchObject({fileCount: 21})
    expect(m.files?.chroma?.sqliteOnlineBackup).toBe(true)
    expect(m.parts.map((p) => p.name).sort()).toEqual([
      'chroma.files.json',
      'chroma.tar.zst',
      'uploads.files.json',
      'uploads.tar.zst',
    ])
    expect(existsSync(join(dir, 'state', 'maintenance'))).toBe(false)
    // extract the chroma part and open the copy: committed rows, consistent database
    const out = join(dir, 'extract')
    mkdirSync(out)
    try {
      execFileSync(
        'sh',
        [
          '-c',
          `zstd -dc "${join(repo, ...partKey(ctx.stack, m.id, 'chroma.tar.zst').split('/'))}" | tar -xf - -C "${out}"`,
        ],
        {stdio: 'pipe'},
      )
    } catch (e) {
      throw new Error(String((e as {stderr?: Buffer}).stderr))
    }
    expect(existsSync(join(out, 'chroma.sqlite3-wal'))).toBe(false)
    const copy = new Database(join(out, 'chroma.sqlite3'), {readonly: true})
    expect((copy.prepare('SELECT count(*) AS n FROM embeddings').get() as {n: number}).n).toBe(13)
    expect(copy.pragma('integrity_check', {simple: true})).toBe('ok')
    copy.close()
    expect(readFileSync(join(out, 'seg-uuid', 'data_level0.bin')).length).toBe(4096)
    expect((await verifyBackup(ctx, m.id)).ok).toBe(true)
  })

  it('backup all records capture times and skew, and lists missing / orphan uploads and the Chroma mismatch', async () => {
    const repo = join(dir, 'repo-all')
    const ctx = await ctxFor(repo)
    const m = await backupAll(ctx, filesOptionsFrom(ctx))
    const c = m.consistency!
    expect(c.missingUploads).toEqual(['2026/01/gone.csv'])
    expect(c.orphanUploads).toEqual(['stray.csv'])
    expect(c.chroma).toMatchObject({collection: 'charging_knowledge', records: 12, expected: 12, ok: true})
    expect(c.ok).toBe(false)
    expect(c.skewMs).toBeGreaterThanOrEqual(0)
    expect(c.dbSnapshotAt && c.uploadsCapturedAt && c.chromaCapturedAt).toBeTruthy()
    expect(m.parts.map((p) => p.name)).toContain('db.dump.zst')
  })

  it('prune removes incomplete leftovers and applies retention', async () => {
    const repo = join(dir, 'repo-prune')
    const ctx = await ctxFor(repo)
    const a = await backupFiles(ctx, filesOptionsFrom(ctx))
    const b = await backupFiles(ctx, filesOptionsFrom(ctx))
    // a leftover of a killed run: a part without manifest, and a temp file of a killed put
    await ctx.storage.put(partKey(ctx.stack, '20200101T000000Z-db-dead', 'db.dump.zst'), 'partial')
    writeFileSync(join(repo, ctx.stack, 'backups', a.id, '.tmp-999-x-part'), 'x')
    const dry = await pruneBackups(ctx, {
      dryRun: true,
      policy: {keepLast: 1, keepDays: 0, daily: 0, weekly: 0, monthly: 0},
    })
    expect(dry.deleted.map((d) => d.id)).toEqual([a.id])
    expect(dry.incompleteRemoved.map((d) => d.id)).toEqual(['20200101T000000Z-db-dead'])
    expect((await listBackups(ctx.storage, ctx.stack)).complete).toHaveLength(2)
    await pruneBackups(ctx, {policy: {keepLast: 1, keepDays: 0, daily: 0, weekly: 0, monthly: 0}})
    const after = await listBackups(ctx.storage, ctx.stack, {includeIncomplete: true})
    expect(after.complete.map((x) => x.id)).toEqual([b.id])
    expect(after.incomplete).toEqual([])
    expect(existsSync(join(repo, ctx.stack, 'backups', a.id))).toBe(false)
  })
})
