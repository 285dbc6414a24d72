/**
 * The file engine (`backup base --type full|diff|incr`) on a real cluster archiving through the
 * built `charge-ops wal push`: a chain full → incr → incr with writes between, restored at a target
 * inside each link with exact rows; the mtime safety margin's checksum rule (a changed file whose
 * mtime was put back with touch -d); kill -9 at named kill points; verify of the whole chain and a
 * damaged block; an incr on a failed chain refused; prune keeping what a kept backup references.
 * Needs `npm run build`.
 */
import {spawnSync} from 'node:child_process'
import fs from 'node:fs'
import path from 'node:path'

import {afterAll, beforeAll, describe, expect, it} from 'vitest'

import {fileListSchema} from '../../src/backup/base-blocks.js'
import {silentLogger} from '../../src/output/logger.js'
import {LocalStorage} from '../../src/repository/local-storage.js'
import {listBackups, partKey, type BackupManifest} from '../../src/repository/manifest.js'
import {restorePitr} from '../../src/restore/pitr.js'
import {parseTarget} from '../../src/restore/pitr-target.js'
import {archiveCommand} from '../../src/wal/command-lines.js'
import {ENTRY, freePort, runCli, runToKillPoint, startPostgres, type PgCluster} from '../support/index.js'

// the default stack: `backup verify` / `backup prune` then need no configuration
const STACK = 'charge-analysis'

let pg: PgCluster
let repo: string
const started: string[] = []

/** the built CLI; `asServer` runs it as the server's OS user (as cron / archive_command would) */
const cli = (args: string[], options: {env?: Record<string, string>; asServer?: boolean} = {}) =>
  runCli(args, {bareEnv: true, env: options.env, user: options.asServer ? pg.osUser : undefined})

const baseArgs = (type: 'full' | 'diff' | 'incr') => [
  'backup',
  'base',
  '--type',
  type,
  '--jobs',
  '2',
  '--repo',
  repo,
  '--stack',
  STACK,
  '--json',
]

function base(type: 'full' | 'diff' | 'incr') {
  return cli(baseArgs(type), {asServer: true, env: {DATABASE_URL: pg.url()}})
}

function baseOk(type: 'full' | 'incr'): BackupManifest {
  const r = base(type)
  expect(r.stderr).not.toMatch(/error/i)
  expect(r.code).toBe(0)
  return JSON.parse(r.stdout) as BackupManifest
}

async function complete(): Promise<BackupManifest[]> {
  return (await listBackups(new LocalStorage(repo), STACK, {kind: 'base'})).complete
}

async function count(port: number): Promise<number> {
  const {default: pgLib} = await import('pg')
  const c = new pgLib.Client({host: '127.0.0.1', port, user: pg.user, password: pg.password, database: 'postgres'})
  await c.connect()
  try {
    return Number((await c.query('SELECT count(*) AS n FROM samples')).rows[0].n)
  } finally {
    await c.end()
  }
}

function stopRestored(dataDir: string) {
  if (fs.existsSync(path.join(dataDir, 'postmaster.pid')))
    spawnSync(path.join(pg.binDir, 'pg_ctl'), ['stop', '-D', dataDir, '-m', 'immediate', '-w'], {
      uid: pg.osUser?.uid,
      gid: pg.osUser?.gid,
    })
}

async function restoreAt(name: string, backupId: string, target: Parameters<typeof parseTarget>[0]) {
  const dataDir = path.join(pg.serverDir('restores'), name)
  const port = await freePort()
  started.push(dataDir)
  const result = await restorePitr({
    storage: new LocalStorage(repo),
    stack: STACK,
    repository: repo,
    target: parseTarget(target),
    dataDir,
    backupId,
    archive: 'off',
    start: {port, timeoutSec: 120},
    logger: silentLogger,
    entry: ENTRY,
  })
  return {result, port, dataDir}
}

async function insert(n: number) {
  await pg.query(`INSERT INTO samples (v) SELECT random() FROM generate_series(1, ${n})`)
}

const manifests: Record<string, BackupManifest> = {}
const TOUCHED = 'charge-ops-touch-test'
const OLD = 'charge-ops-old-file'

beforeAll(async () => {
  pg = await startPostgres({name: 'incr'})
  repo = pg.serverDir('repo')
  await pg.restart({
    archive_mode: 'on',
    wal_level: 'replica',
    archive_command: archiveCommand({repository: repo, stack: STACK, entry: ENTRY, node: process.execPath}),
    archive_timeout: '0',
  })
  await pg.query('CREATE TABLE samples (id bigserial PRIMARY KEY, v double precision)')
  await insert(20_000)
  // a file written just before the full (mtime inside the safety margin) and one from long ago
  fs.writeFileSync(path.join(pg.dataDir, TOUCHED), 'A'.repeat(4096))
  fs.writeFileSync(path.join(pg.dataDir, OLD), 'old'.repeat(1000))
  spawnSync('touch', ['-d', '2020-01-01T00:00:00Z', path.join(pg.dataDir, OLD)])
}, 240_000)

afterAll(async () => {
  for (const dir of started) stopRestored(dir)
  await pg?.stop()
})

describe('a chain full → incr → incr', () => {
  it('stores only what changed and restores inside each link with exact rows', async () => {
    const touchedStat = fs.statSync(path.join(pg.dataDir, TOUCHED), {bigint: true})
    manifests.full = baseOk('full')
    await insert(1000)
    await pg.query("SELECT pg_create_restore_point('in-full')")
    await insert(500)
    // the same size, the mtime put back exactly: only the checksum rule can see the change
    fs.writeFileSync(path.join(pg.dataDir, TOUCHED), 'B'.repeat(4096))
    const sec = touchedStat.mtimeNs / 1_000_000_000n
    const nsec = (touchedStat.mtimeNs % 1_000_000_000n).toString().padStart(9, '0')
    expect(spawnSync('touch', ['-d', `@${sec}.${nsec}`, path.join(pg.dataDir, TOUCHED)]).status).toBe(0)
    expect(fs.statSync(path.join(pg.dataDir, TOUCHED), {bigint: true}).mtimeNs).toBe(touchedStat.mtimeNs)

    manifests.incr1 = baseOk('incr')
    await insert(700)
    await pg.query("SELECT pg_create_restore_point('in-incr1')")
    manifests.incr2 = baseOk('incr')
    await insert(300)
    await pg.query("SELECT pg_create_restore_point('in-incr2')")
    const check = cli(['wal', 'check', '--repo', repo, '--stack', STACK], {env: {DATABASE_URL: pg.url()}})
    expect(check.code).toBe(0)

    const b = (m: BackupManifest) => m.base as Record<string, unknown>
    expect(b(manifests.full)).toMatchObject({method: 'files', type: 'full', references: []})
    expect(b(manifests.incr1)).toMatchObject({type: 'incr', prior: manifests.full.id, references: [manifests.full.id]})
    expect(b(manifests.incr2)).toMatchObject({type: 'incr', prior: manifests.incr1.id})
    // it references the full (unchanged catalogs) and maybe incr1 (blocks not changed since)
    expect(b(manifests.incr2).references).toContain(manifests.full.id)
    expect([manifests.full.id, manifests.incr1.id]).toEqual(
      expect.arrayContaining(b(manifests.incr2).references as string[]),
    )
    // an incr stores a small fraction of the full
    expect(b(manifests.incr1).storedBytes as number).toBeLessThan((b(manifests.full).storedBytes as number) / 2)

    // the checksum rule caught the touched file; the old file was referenced without being read
    const storage = new LocalStorage(repo)
    const list = fileListSchema.parse(
      JSON.parse((await storage.getBytes(partKey(STACK, manifests.incr1.id, 'pg_data.files.json'))).toString()),
    )
    expect(list.files.find((f) => f.path === TOUCHED)!.blocks[0].ref).toBe(manifests.incr1.id)
    expect(list.files.find((f) => f.path === OLD)!.blocks[0].ref).toBe(manifests.full.id)

    for (const [link, point, rows] of [
      ['full', 'in-full', 21_000],
      ['incr1', 'in-incr1', 22_200],
      ['incr2', 'in-incr2', 22_500],
    ] as const) {
      const {result, port, dataDir} = await restoreAt(link, manifests[link].id, {'target-name': point})
      expect(result.recovery?.stoppedAt).toMatch(new RegExp(`restore point "${point}"`))
      expect(await count(port)).toBe(rows)
      if (link === 'incr1') expect(fs.readFileSync(path.join(dataDir, TOUCHED), 'utf8')).toBe('B'.repeat(4096))
      if (link === 'full') expect(fs.readFileSync(path.join(dataDir, TOUCHED), 'utf8')).toBe('A'.repeat(4096))
      stopRestored(dataDir)
    }
  }, 600_000)
})

describe('kill -9 of backup base --type incr', () => {
  it('leaves nothing restorable listed at any kill point, and the next run succeeds', async () => {
    const before = (await complete()).map((m) => m.id)
    const faults = pg.serverDir('faults')
    for (const point of [
      'backup.base-files.after-start',
      'backup.base-files.block-stored',
      'backup.base-files.before-manifest',
    ]) {
      await insert(100)
      await runToKillPoint(point, baseArgs('incr'), {
        bareEnv: true,
        env: {DATABASE_URL: pg.url()},
        user: pg.osUser,
        faultDir: faults,
      })
      expect((await complete()).map((m) => m.id)).toEqual(before)
    }
    // the killed sessions' backups were aborted by the server: a new one starts, takes the stale lock
    manifests.incr3 = baseOk('incr')
    expect((manifests.incr3.base as Record<string, unknown>).prior).toBe(manifests.incr2.id)
    const {port, dataDir} = await restoreAt('after-kill', manifests.incr3.id, {latest: true})
    expect(await count(port)).toBe(22_800)
    stopRestored(dataDir)
  }, 600_000)
})

describe('verify, a damaged chain, prune', () => {
  it('verifies the whole chain, names a damaged block, refuses an incr on it; prune keeps referenced backups', async () => {
    // as the server's OS user, like every command that writes the repository
    const ok = cli(['backup', 'verify', manifests.incr3.id, '--repo', repo, '--json'], {asServer: true})
    expect(ok.code, ok.stderr).toBe(0)
    expect(JSON.parse(ok.stdout).chain.backups.length).toBeGreaterThanOrEqual(2)

    // flip a byte in a block the full holds and incr3 references
    const storage = new LocalStorage(repo)
    const list = fileListSchema.parse(
      JSON.parse((await storage.getBytes(partKey(STACK, manifests.incr3.id, 'pg_data.files.json'))).toString()),
    )
    const victim = list.files.find(
      (f) => f.blocks.length > 0 && f.blocks[0].ref === manifests.full.id && f.size > 8192,
    )!
    const object = path.join(
      repo,
      STACK,
      'backups',
      manifests.full.id,
      'pg_data',
      `${victim.path}.b0.${victim.blocks[0].c === 'zstd' ? 'zst' : 'gz'}`,
    )
    const bytes = fs.readFileSync(object)
    bytes[bytes.length >> 1] ^= 0xff
    fs.writeFileSync(object, bytes)
    const bad = cli(['backup', 'verify', manifests.incr3.id, '--repo', repo], {asServer: true})
    expect(bad.code).toBe(1)
    expect(bad.stderr).toContain(`${victim.path} block 0 in ${manifests.full.id}`)
    const refused = base('incr')
    expect(refused.code).not.toBe(0)
    expect(refused.stdout + refused.stderr).toMatch(/BASE_PRIOR_FAILED|failed verification/)
    expect((await complete()).length).toBe(4)

    // a new full; keep-last 2 keeps it and incr3 — and the chain incr3 references
    manifests.full2 = baseOk('full')
    const policy = ['--keep-days', '0', '--daily', '0', '--weekly', '0', '--monthly', '0', '--yes', '--repo', repo]
    const keep2 = cli(['backup', 'prune', '--keep-last', '2', ...policy, '--json'], {asServer: true})
    expect(keep2.code, keep2.stderr).toBe(0)
    const ids = (await complete()).map((m) => m.id).sort()
    // exactly the two newest and the backups holding blocks incr3 needs (the full among them); an
    // older link whose blocks incr3 no longer needs goes
    const refs = (manifests.incr3.base as Record<string, unknown>).references as string[]
    expect(refs).toContain(manifests.full.id)
    expect(ids).toEqual([...new Set([manifests.incr3.id, manifests.full2.id, ...refs])].sort())
    expect(JSON.stringify(JSON.parse(keep2.stdout).kept)).toContain(`referenced by ${manifests.incr3.id}`)
    const keep1 = cli(['backup', 'prune', '--keep-last', '1', ...policy], {asServer: true})
    expect(keep1.code, keep1.stderr).toBe(0)
    expect((await complete()).map((m) => m.id)).toEqual([manifests.full2.id])
    expect(fs.existsSync(path.join(repo, STACK, 'backups', manifests.full.id))).toBe(false)
  }, 600_000)
})
