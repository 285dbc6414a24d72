/**
 * S3 parity (issue 14, item 3): the backup / restore / PITR / prune / verify paths run on a local
 * directory and on an S3 repository (s3rver in its own process) through the built CLI, with the
 * same assertions for both. Data is small on purpose: what differs between the stores is the
 * storage driver, not the volume. Needs `npm run build` (archive_command runs bin/run.js).
 */
import {chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync} from 'node:fs'
import {tmpdir} from 'node:os'
import path from 'node:path'

import {S3Client} from '@aws-sdk/client-s3'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'

import {LocalStorage} from '../../src/repository/local-storage.js'
import {listBackups, partKey} from '../../src/repository/manifest.js'
import {listArchive} from '../../src/wal/archive.js'
import {parseS3Location, S3Storage} from '../../src/repository/s3-storage.js'
import type {RepositoryStorage} from '../../src/repository/storage.js'
import {
  dbHash,
  freePort,
  runCli,
  runToKillPoint,
  sharedPostgres,
  startS3,
  treeHash,
  type Reached,
  type S3Server,
} from '../support/index.js'
import {startArchivingCluster, type ArchivingCluster} from '../support/pitr.js'

const KINDS = ['local', 's3'] as const
type Kind = (typeof KINDS)[number]

const pg = sharedPostgres()
let s3: S3Server
let dir: string
let dbUrl: string
let source: string

/** The repository URL of `kind` for one test (its own prefix / folder). */
const repoOf = (kind: Kind, name: string) =>
  kind === 'local' ? path.join(dir, `repo-${name}`) : `s3://${s3.bucket}/${name}`

/** The same repository through charge-ops' own driver (to tamper with or look into it as any store). */
function storageOf(kind: Kind, repo: string): RepositoryStorage {
  return kind === 'local'
    ? new LocalStorage(repo)
    : new S3Storage(new S3Client(s3.clientConfig()), parseS3Location(repo))
}

// S3 credentials through the environment (AWS_*), as a cron job or an operator's shell has them
const cliEnv = (kind: Kind, extra: Record<string, string> = {}) => ({
  HOME: dir,
  DATABASE_URL: dbUrl,
  CHARGE_OPS_STATE_DIR: path.join(dir, 'state'),
  ...(kind === 's3' ? s3.env : {}),
  ...extra,
})

const cli = (kind: Kind, args: string[], extra: Record<string, string> = {}) =>
  runCli(args, {bareEnv: true, cwd: dir, env: cliEnv(kind, extra)})

/** The CLI (as cli() runs it) SIGKILLed at a kill point: asserts it got there and died there; the point's marker. */
async function killAt(kind: Kind, point: string, args: string[]): Promise<Reached> {
  const faultDir = path.join(dir, 'faults')
  mkdirSync(faultDir, {recursive: true})
  return (await runToKillPoint(point, args, {bareEnv: true, cwd: dir, env: cliEnv(kind), faultDir})).reached
}

/** retention that keeps only the newest backup of each kind */
const KEEP_ONE = ['--keep-last', '1', '--keep-days', '0', '--daily', '0', '--weekly', '0', '--monthly', '0']

const json = (r: {code: number | null; stdout: string; out: string}) => {
  expect(r.code, r.out).toBe(0)
  return JSON.parse(r.stdout)
}

beforeAll(async () => {
  // its own process: the CLI runs through spawnSync, which blocks this one
  s3 = await startS3({process: true})
  dir = mkdtempSync(path.join(tmpdir(), 'co-s3-parity-'))
  dbUrl = await pg.createDatabase()
  source = new URL(dbUrl).pathname.slice(1)
  await pg.query(
    `CREATE TABLE sessions (id serial PRIMARY KEY, station text NOT NULL, kwh numeric(8,3), started timestamptz);
     INSERT INTO sessions (station, kwh, started) SELECT 'st-' || (g % 17), g * 0.125, '2026-01-01'::timestamptz + g * interval '1 minute' FROM generate_series(1, 3000) g;
     CREATE TABLE notes (id int PRIMARY KEY, body text);
     INSERT INTO notes SELECT g, md5(g::text) FROM generate_series(1, 200) g;`,
    source,
  )
}, 120_000)

afterAll(async () => {
  await s3?.stop()
  if (dir) rmSync(dir, {recursive: true, force: true})
})

describe.each(KINDS)('logical backups on a %s repository', (kind) => {
  it('backup db → restore db: identical rows; verify --restore-drill passes; a flipped byte is named by verify and refused by restore', async () => {
    const repo = repoOf(kind, 'db')
    const backup = json(cli(kind, ['backup', 'db', '--repo', repo, '--json']))
    const target = `parity_${kind}_${Date.now().toString(36)}`
    json(cli(kind, ['restore', 'db', backup.id, '--repo', repo, '--target-db', target, '--json']))
    expect(await dbHash(pg, target)).toBe(await dbHash(pg, source))

    const verified = json(cli(kind, ['backup', 'verify', backup.id, '--repo', repo, '--restore-drill', '--json']))
    expect(verified.ok).toBe(true)

    // a flipped byte in the stored dump, written through the store's own API
    const storage = storageOf(kind, repo)
    const key = partKey('charge-analysis', backup.id, 'db.dump.zst')
    const bytes = await storage.getBytes(key)
    bytes[Math.floor(bytes.length / 2)] ^= 0x01
    await storage.put(key, bytes)
    const bad = cli(kind, ['backup', 'verify', backup.id, '--repo', repo, '--json'])
    expect(bad.code, bad.out).toBe(1)
    expect(JSON.parse(bad.stdout).error).toMatchObject({code: 'VERIFY_FAILED', data: {parts: ['db.dump.zst']}})
    const refused = cli(kind, ['restore', 'db', backup.id, '--repo', repo, '--target-db', `${target}_bad`, '--json'])
    expect(refused.code, refused.out).toBe(1)
    expect(JSON.parse(refused.stdout).error.code).toBe('CHECKSUM_MISMATCH')
  }, 180_000)

  it('backup files → restore files: identical files', async () => {
    const repo = repoOf(kind, 'files')
    const uploads = path.join(dir, `uploads-${kind}`)
    mkdirSync(path.join(uploads, '2026', '02'), {recursive: true})
    for (let i = 0; i < 30; i++)
      writeFileSync(path.join(uploads, '2026', '02', `s${i}.csv`), `t,v\n${i},${400 + i}\n`.repeat(100 + i))
    writeFileSync(path.join(uploads, 'private.csv'), 'mode kept')
    chmodSync(path.join(uploads, 'private.csv'), 0o600)
    const filesEnv = {UPLOADS_DIR: uploads, CHROMA_PERSIST_DIRECTORY: ''}
    const before = treeHash(uploads)
    const backup = json(cli(kind, ['backup', 'files', '--repo', repo, '--json'], filesEnv))
    expect(backup.files.uploads.fileCount).toBe(31)
    rmSync(path.join(uploads, '2026', '02', 's3.csv'))
    writeFileSync(path.join(uploads, '2026', '02', 's4.csv'), 'changed after the backup')
    writeFileSync(path.join(uploads, 'new.csv'), 'not in the backup')
    json(cli(kind, ['restore', 'files', backup.id, '--repo', repo, '--yes', '--json'], filesEnv))
    expect(treeHash(uploads)).toBe(before)
  }, 180_000)

  it("backup prune keeps the newest, deletes the older backup and a dead run's parts; killed at backup.prune.manifest-deleted it leaves the older one incomplete (not listed, not restorable), the lock naming it; the rerun finishes; the kept backup restores", async () => {
    const repo = repoOf(kind, 'prune')
    const storage = storageOf(kind, repo)
    const older = json(cli(kind, ['backup', 'db', '--repo', repo, '--json']))
    const newer = json(cli(kind, ['backup', 'db', '--repo', repo, '--json']))
    // what a killed run leaves on any store: a part whose manifest was never written
    await storage.put(partKey('charge-analysis', '20200101T000000Z-db-dead', 'db.dump.zst'), 'partial')
    const dry = json(cli(kind, ['backup', 'prune', '--repo', repo, ...KEEP_ONE, '--dry-run', '--json']))
    expect(dry.deleted.map((d: {id: string}) => d.id)).toEqual([older.id])
    expect((await listBackups(storage, 'charge-analysis')).complete.map((b) => b.id).sort()).toEqual(
      [older.id, newer.id].sort(),
    )
    // killed between deleting the older backup's manifest and its parts
    const marker = await killAt(kind, 'backup.prune.manifest-deleted', [
      'backup',
      'prune',
      '--repo',
      repo,
      ...KEEP_ONE,
      '--yes',
      '--quiet',
    ])
    expect(marker.id).toBe(older.id)
    const half = await listBackups(storage, 'charge-analysis', {includeIncomplete: true})
    expect(
      half.complete.map((b) => b.id),
      'a half-pruned backup is never listed as complete',
    ).toEqual([newer.id])
    expect(half.incomplete.map((i) => i.id).sort()).toEqual(['20200101T000000Z-db-dead', older.id].sort())
    expect((await storage.list(`charge-analysis/backups/${older.id}/`)).map((o) => o.key)).toEqual([
      partKey('charge-analysis', older.id, 'db.dump.zst'),
    ])
    const refused = cli(kind, [
      'restore',
      'db',
      older.id,
      '--repo',
      repo,
      '--target-db',
      `parity_half_${kind}`,
      '--json',
    ])
    expect(refused.code, refused.out).toBe(2)
    expect(JSON.parse(refused.stdout).error.code, 'nor restorable').toBe('BACKUP_NOT_FOUND')
    expect(JSON.parse((await storage.getBytes('charge-analysis/locks/backup.lock')).toString())).toMatchObject({
      pid: marker.pid,
      command: 'backup prune',
    })

    // the rerun takes the dead run's lock over and finishes the deletion
    const pruned = json(cli(kind, ['backup', 'prune', '--repo', repo, ...KEEP_ONE, '--yes', '--json']))
    expect(pruned.deleted).toEqual([])
    expect(pruned.incompleteRemoved.map((d: {id: string}) => d.id).sort()).toEqual(
      ['20200101T000000Z-db-dead', older.id].sort(),
    )
    expect(await storage.exists('charge-analysis/locks/backup.lock'), 'the rerun released the lock it took over').toBe(
      false,
    )
    const left = await listBackups(storage, 'charge-analysis', {includeIncomplete: true})
    expect(left.complete.map((b) => b.id)).toEqual([newer.id])
    expect(left.incomplete).toEqual([])
    expect(await storage.list(`charge-analysis/backups/${older.id}/`)).toEqual([])
    const target = `parity_prune_${kind}_${Date.now().toString(36)}`
    json(cli(kind, ['restore', 'db', 'latest', '--repo', repo, '--target-db', target, '--json']))
    expect(await dbHash(pg, target)).toBe(await dbHash(pg, source))
  }, 180_000)
})

describe('S3 credentials from --aws-env-file on the logical commands (none in the environment)', () => {
  it('backup db → backup list → restore db read the keys and the endpoint from the 0600 file: identical rows; a file others can read is refused', async () => {
    const envFile = path.join(dir, 's3-creds.env')
    writeFileSync(
      envFile,
      Object.entries(s3.env)
        .map(([k, v]) => `${k}=${v}\n`)
        .join(''),
      {mode: 0o600},
    )
    const repo = repoOf('s3', 'env-file')
    // cli('local', …): no AWS_* at all in the child's environment — without the file there would
    // not even be an endpoint to reach
    const backup = json(cli('local', ['backup', 'db', '--repo', repo, '--aws-env-file', envFile, '--json']))
    expect(
      json(cli('local', ['backup', 'list', '--repo', repo, '--aws-env-file', envFile, '--json'])).backups.map(
        (b: {id: string}) => b.id,
      ),
    ).toEqual([backup.id])
    const target = `parity_envfile_${Date.now().toString(36)}`
    const restored = cli('local', [
      'restore',
      'db',
      backup.id,
      '--repo',
      repo,
      '--aws-env-file',
      envFile,
      '--target-db',
      target,
      '--json',
    ])
    expect(restored.code, restored.out).toBe(0)
    expect(restored.out, 'no key printed').not.toContain(s3.secretAccessKey)
    expect(await dbHash(pg, target)).toBe(await dbHash(pg, source))

    chmodSync(envFile, 0o644)
    const loose = cli('local', ['backup', 'files', '--repo', repo, '--aws-env-file', envFile, '--json'], {
      UPLOADS_DIR: dir,
    })
    expect(loose.code, loose.out).toBe(2)
    expect(JSON.parse(loose.stdout).error.code).toBe('AWS_ENV_FILE_MODE')
  }, 180_000)
})

describe.each(KINDS)('PITR on a %s repository (archive_command = wal push into it)', (kind) => {
  let cluster: ArchivingCluster

  beforeAll(async () => {
    cluster = await startArchivingCluster({
      name: `parity-${kind}`,
      stack: 'pitr',
      s3: kind === 's3' ? s3 : undefined,
      settings: {archive_timeout: '0'},
      schema: 'CREATE TABLE readings (id int PRIMARY KEY, at timestamptz NOT NULL DEFAULT clock_timestamp())',
    })
  }, 240_000)
  afterAll(async () => {
    await cluster?.stop()
  })

  /** restore pitr through the CLI as the server's user, started; the restored rows' ids */
  async function restoreAt(name: string, target: string[]): Promise<string> {
    const dataDir = path.join(cluster.pg.serverDir('restores'), name)
    const port = await freePort()
    cluster.started.push(dataDir)
    const r = cluster.cli(
      [
        'restore',
        'pitr',
        ...target,
        '--data-dir',
        dataDir,
        ...cluster.loc,
        '--archive',
        'off',
        '--start',
        '--port',
        String(port),
        '--database-url',
        cluster.pg.url(),
        '--yes',
        '--json',
      ],
      {asServer: true},
    )
    expect(r.code, r.stdout + r.stderr).toBe(0)
    expect(JSON.parse(r.stdout).restoreCommand).toContain(
      kind === 's3' ? `--aws-env-file ${cluster.awsEnvFile}` : `--repo ${cluster.repo}`,
    )
    const [row] = await cluster.query<{ids: string}>(
      port,
      `SELECT coalesce(string_agg(id::text, ',' ORDER BY id), '') AS ids FROM readings`,
    )
    cluster.stopServer(dataDir)
    return row.ids
  }

  const insert = async (from: number, to: number) => {
    for (let i = from; i <= to; i++) await cluster.pg.query(`INSERT INTO readings (id) VALUES (${i})`)
    await cluster.pg.query('SELECT pg_switch_wal()')
  }
  const now = async () =>
    (
      await cluster.pg.query<{t: string}>(
        `SELECT to_char(clock_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') AS t`,
      )
    )[0].t
  // backup list / prune / verify: the S3 credentials from the environment, as in a shell (the
  // --aws-env-file of these commands: 'S3 credentials from --aws-env-file' above)
  const repoCli = (args: string[]) => {
    const r = cluster.cli([...args, '--repo', cluster.repo, '--stack', cluster.stack, '--json'], {
      asServer: true,
      env: {DATABASE_URL: cluster.pg.url(), ...(kind === 's3' ? s3.env : {})},
    })
    expect(r.code, r.stdout + r.stderr).toBe(0)
    return JSON.parse(r.stdout)
  }
  /** a repository command as the server's user (S3: --aws-env-file), SIGKILLed at `point`: asserts it got there; the point's marker */
  const killAt = async (point: string, args: string[]): Promise<Reached> =>
    (
      await runToKillPoint(point, [...args, ...cluster.loc], {
        bareEnv: true,
        user: cluster.pg.osUser,
        faultDir: cluster.pg.serverDir('faults'),
      })
    ).reached
  const walCheck = () => {
    const c = cluster.cli(['wal', 'check', ...cluster.loc, '--timeout', '60'], {env: {DATABASE_URL: cluster.pg.url()}})
    expect(c.code, c.stdout + c.stderr).toBe(0)
  }

  it('backup base + archived WAL → restore pitr: exactly the rows at the target; backup prune / wal prune killed at their kill points lose nothing a kept base needs, their reruns finish; after prune removed the older base, PITR from the newer is exact too; verify checks the base', async () => {
    const firstBase = repoCli(['backup', 'list']).backups.find((b: {kind: string}) => b.kind === 'base')
    expect(firstBase, 'the setup took a base backup').toBeDefined()
    await insert(1, 20)
    const target = await now()
    await insert(21, 30)
    walCheck()
    expect(await restoreAt('at-target', ['--target-time', target])).toBe(
      Array.from({length: 20}, (_, i) => i + 1).join(','),
    )

    // a second base backup, then prune keeping only it: the WAL it needs stays, PITR from it is exact
    const second = cluster.cli(['backup', 'base', ...cluster.loc, '--wal-timeout', '60', '--json'], {
      asServer: true,
      env: {DATABASE_URL: cluster.pg.url()},
    })
    expect(second.code, second.stderr).toBe(0)
    const secondId = JSON.parse(second.stdout).id
    await insert(31, 40)
    const target2 = await now()
    await insert(41, 45)
    walCheck()
    const archive = storageOf(kind, cluster.repo)
    const segments = async () =>
      (await listArchive(archive, cluster.stack))
        .filter((f) => f.kind !== 'history')
        .map((f) => f.name)
        .sort()
    const lockOwner = async () => JSON.parse((await archive.getBytes(`${cluster.stack}/locks/backup.lock`)).toString())
    const beforePrune = await segments()

    // 1. backup prune killed with the first base's manifest deleted, its parts not yet: no longer
    //    listed, not restorable, the lock names the dead run
    const halfPruned = await killAt('backup.prune.manifest-deleted', ['backup', 'prune', ...KEEP_ONE, '--yes'])
    expect(halfPruned.id).toBe(firstBase.id)
    const listing = repoCli(['backup', 'list', '--all'])
    expect(
      listing.backups.map((b: {id: string}) => b.id),
      'a half-pruned base backup is never listed as complete',
    ).toEqual([secondId])
    expect(listing.incomplete.map((i: {id: string}) => i.id)).toEqual([firstBase.id])
    const notRestorable = cluster.cli(
      [
        'restore',
        'pitr',
        '--latest',
        '--backup',
        firstBase.id,
        '--data-dir',
        path.join(cluster.pg.serverDir('restores'), 'half-pruned'),
        ...cluster.loc,
        '--yes',
        '--json',
      ],
      {asServer: true},
    )
    expect(notRestorable.code, notRestorable.stdout + notRestorable.stderr).toBe(2)
    expect(JSON.parse(notRestorable.stdout).error.code).toBe('BACKUP_NOT_FOUND')
    expect(await lockOwner()).toMatchObject({pid: halfPruned.pid, command: 'backup prune'})
    expect(await segments(), 'no WAL deleted yet').toEqual(beforePrune)

    // 2. wal prune (the first base no longer complete: it keeps from the second one's start) killed
    //    with the oldest segment deleted: the rest of the older ones left, no hole, every segment
    //    from the kept base's start on still there
    const walKill = await killAt('wal.prune.oldest-deleted', ['wal', 'prune', '--yes'])
    const left = walKill.left as string[]
    expect(left.length, 'the kill landed mid-way: more WAL was planned for deletion').toBeGreaterThan(0)
    expect(walKill.deleted).toBe(beforePrune[0])
    const afterKill = await segments()
    expect(afterKill).toEqual(beforePrune.slice(1))
    expect(afterKill.slice(0, left.length), 'what is left of the doomed WAL is the oldest run').toEqual(
      [...left].sort(),
    )
    expect(await lockOwner()).toMatchObject({pid: walKill.pid, command: 'wal prune'})

    // 3. the reruns take the lock over: wal prune deletes the rest of its plan, backup prune the
    //    half-pruned base; the second base and its WAL are all that is left
    const walRerun = cluster.cli(['wal', 'prune', ...cluster.loc, '--yes', '--json'], {asServer: true})
    expect(walRerun.code, walRerun.stdout + walRerun.stderr).toBe(0)
    expect(JSON.parse(walRerun.stdout).deleted.sort()).toEqual([...left].sort())
    expect(await segments()).toEqual(beforePrune.slice(1 + left.length))
    const pruned = repoCli(['backup', 'prune', ...KEEP_ONE, '--yes'])
    expect(pruned.incompleteRemoved.map((d: {id: string}) => d.id)).toEqual([firstBase.id])
    expect(pruned.wal.deleted).toBe(0)
    expect(await archive.exists(`${cluster.stack}/locks/backup.lock`)).toBe(false)
    expect(repoCli(['backup', 'list', '--all']).backups.map((b: {id: string}) => b.id)).toEqual([secondId])
    expect(await restoreAt('after-prune', ['--target-time', target2])).toBe(
      Array.from({length: 40}, (_, i) => i + 1).join(','),
    )

    expect(repoCli(['backup', 'verify', secondId]).ok).toBe(true)
  }, 420_000)
})
