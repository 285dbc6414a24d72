/**
 * Physical backups under faults (issue 14, item 4), on real clusters through the built CLI:
 *  - kill -9 of `backup base` (native engine) at its kill points, on a local and an S3 repository:
 *    the point reached, pg_basebackup and zstd dead with it, nothing restorable listed, the lock
 *    naming the dead run, the server's backup ended; the rerun takes the lock over and PITR from
 *    its backup gives exactly the rows at the target; prune removes what the kills left;
 *  - a second real cluster archiving into the first one's stack: refused (WAL_CLUSTER_MISMATCH,
 *    exit 2), the first cluster's segment of the same name untouched, its base backup refused too.
 * Needs `npm run build` (archive_command runs bin/run.js).
 */
import {createHash} from 'node:crypto'
import fs from 'node:fs'
import path from 'node:path'

import {afterAll, beforeAll, describe, expect, it} from 'vitest'

import {S3Client} from '@aws-sdk/client-s3'

import {LocalStorage} from '../../src/repository/local-storage.js'
import {parseS3Location, S3Storage} from '../../src/repository/s3-storage.js'
import {archiveCommand} from '../../src/wal/command-lines.js'
import {
  freePort,
  pidAlive,
  runCli,
  runToKillPoint,
  startPostgres,
  startS3,
  waitUntil,
  type PgCluster,
  type S3Server,
} from '../support/index.js'
import {ENTRY, startArchivingCluster, type ArchivingCluster} from '../support/pitr.js'

const KINDS = ['local', 's3'] as const

const ids = (from: number, to: number) => Array.from({length: to - from + 1}, (_, i) => from + i).join(',')

describe.each(KINDS)('kill -9 of backup base on a %s repository', (kind) => {
  let s3: S3Server | undefined
  let cluster: ArchivingCluster
  let faults: string
  const env = () => ({DATABASE_URL: cluster.pg.url(), ...(kind === 's3' ? s3!.env : {})})
  /** list / prune / restore as the server's user (the local repository is its); S3 credentials from the environment */
  const repoCli = (args: string[]) => {
    const r = cluster.cli([...args, '--repo', cluster.repo, '--stack', cluster.stack, '--json'], {
      asServer: true,
      env: env(),
    })
    expect(r.code, r.stdout + r.stderr).toBe(0)
    return JSON.parse(r.stdout)
  }

  /** backup base as the server's user with CHARGE_OPS_KILL_AT=point; returns the point's marker */
  const killAt = async (point: string) =>
    (
      await runToKillPoint(point, ['backup', 'base', ...cluster.loc, '--wal-timeout', '60'], {
        bareEnv: true,
        env: {DATABASE_URL: cluster.pg.url()},
        user: cluster.pg.osUser,
        faultDir: faults,
      })
    ).reached

  const lockOwner = async () => {
    const storage =
      kind === 's3'
        ? new S3Storage(new S3Client(s3!.clientConfig()), parseS3Location(cluster.repo))
        : new LocalStorage(cluster.repo)
    return JSON.parse((await storage.getBytes(`${cluster.stack}/locks/backup.lock`)).toString())
  }
  const backupSessions = async () =>
    Number(
      (
        await cluster.pg.query<{n: string}>(
          `SELECT count(*) AS n FROM pg_stat_activity WHERE application_name LIKE 'charge-ops backup base %'`,
        )
      )[0].n,
    )

  beforeAll(async () => {
    if (kind === 's3') {
      s3 = await startS3({process: true})
    }
    cluster = await startArchivingCluster({
      name: `base-kill-${kind}`,
      stack: 'bk',
      s3,
      baseBackup: false,
      settings: {archive_timeout: '0'},
      schema: 'CREATE TABLE readings (id int PRIMARY KEY)',
    })
    faults = cluster.pg.serverDir('faults')
  }, 240_000)
  afterAll(async () => {
    await cluster?.stop()
    await s3?.stop()
  })

  it('backup.base.streaming, then backup.base.before-manifest: nothing restorable listed, children dead, lock owned by the dead run, server backup ended; prune removes the leftovers; the rerun gives exact PITR', async () => {
    await cluster.pg.query('INSERT INTO readings SELECT generate_series(1, 10)')

    // 1. killed while pg_basebackup | zstd stream the part into the repository
    const streaming = await killAt('backup.base.streaming')
    expect(streaming.children).toHaveLength(2)
    await waitUntil(async () => streaming.children!.every((pid) => !pidAlive(pid)), {
      what: 'pg_basebackup and zstd to die with their parent',
      timeoutMs: 2000,
      intervalMs: 25,
    })
    await waitUntil(async () => (await backupSessions()) === 0, {
      what: "the server to end the killed run's backup (its walsender gone)",
      timeoutMs: 15_000,
      intervalMs: 50,
    })
    let listing = repoCli(['backup', 'list', '--all'])
    expect(listing.backups).toEqual([])
    expect(listing.incomplete.map((i: {id: string}) => i.id)).not.toContain(streaming.id) // no part was completed
    if (kind === 'local') expect(listing.temporary.map((t: {pid?: number}) => t.pid)).toEqual([streaming.pid]) // the part's temp file, named by its dead writer
    expect(await lockOwner()).toMatchObject({pid: streaming.pid, command: 'backup base'})

    // 2. killed with the part stored and its WAL archived, before the manifest
    const beforeManifest = await killAt('backup.base.before-manifest')
    listing = repoCli(['backup', 'list', '--all'])
    expect(listing.backups, 'a base backup without its manifest is not restorable').toEqual([])
    expect(listing.incomplete.map((i: {id: string}) => i.id)).toEqual([beforeManifest.id])
    expect(await lockOwner()).toMatchObject({pid: beforeManifest.pid, command: 'backup base'})
    const noBase = cluster.cli(
      [
        'restore',
        'pitr',
        '--latest',
        '--data-dir',
        path.join(cluster.pg.serverDir('restores'), 'none'),
        ...cluster.loc,
        '--archive',
        'off',
        '--yes',
        '--json',
      ],
      {asServer: true},
    )
    expect(noBase.code, noBase.stdout + noBase.stderr).toBe(2)
    expect(JSON.parse(noBase.stdout).error.code).toBe('PITR_NO_BASE')
    expect(fs.existsSync(path.join(cluster.pg.serverDir('restores'), 'none'))).toBe(false)

    // 3. the rerun takes the dead run's lock over; PITR from its backup is exact
    const rerun = cluster.cli(['backup', 'base', ...cluster.loc, '--wal-timeout', '60', '--json'], {
      asServer: true,
      env: {DATABASE_URL: cluster.pg.url()},
    })
    expect(rerun.code, rerun.stderr).toBe(0)
    const baseId = JSON.parse(rerun.stdout).id
    await cluster.pg.query('INSERT INTO readings SELECT generate_series(11, 20)')
    const [{t: target}] = await cluster.pg.query<{t: string}>(
      `SELECT to_char(clock_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') AS t`,
    )
    await cluster.pg.query('INSERT INTO readings SELECT generate_series(21, 25)')
    const check = cluster.cli(['wal', 'check', ...cluster.loc, '--timeout', '60'], {
      env: {DATABASE_URL: cluster.pg.url()},
    })
    expect(check.code, check.stderr).toBe(0)
    const dataDir = path.join(cluster.pg.serverDir('restores'), 'after-kills')
    const port = await freePort()
    cluster.started.push(dataDir)
    const restored = cluster.cli(
      [
        'restore',
        'pitr',
        '--target-time',
        target,
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
    expect(restored.code, restored.stdout + restored.stderr).toBe(0)
    expect(JSON.parse(restored.stdout).backupId).toBe(baseId)
    expect(
      (await cluster.query<{ids: string}>(port, `SELECT string_agg(id::text, ',' ORDER BY id) AS ids FROM readings`))[0]
        .ids,
    ).toBe(ids(1, 20))
    cluster.stopServer(dataDir)

    // 4. prune removes what the killed runs left; the complete backup stays
    const pruned = repoCli(['backup', 'prune', '--yes'])
    expect(pruned.incompleteRemoved.map((i: {id: string}) => i.id)).toEqual([beforeManifest.id])
    if (kind === 'local') expect(pruned.temporaryRemoved).toHaveLength(1)
    listing = repoCli(['backup', 'list', '--all'])
    expect(listing.backups.map((b: {id: string}) => b.id)).toEqual([baseId])
    expect(listing.incomplete).toEqual([])
  }, 420_000)
})

describe("a second real cluster archiving into the first one's stack", () => {
  let first: ArchivingCluster
  let second: PgCluster

  beforeAll(async () => {
    first = await startArchivingCluster({
      name: 'sysid-first',
      stack: 'shared',
      settings: {archive_timeout: '0'},
      schema: 'CREATE TABLE a (id int)',
    })
    second = await startPostgres({name: 'sysid-second'})
  }, 240_000)
  afterAll(async () => {
    await second?.stop()
    await first?.stop()
  })

  it("is refused with WAL_CLUSTER_MISMATCH (exit 2): nothing written, the first cluster's segment of the same name untouched; its base backup is refused too", async () => {
    const walDir = path.join(first.repo, 'shared', 'wal', '00000001')
    const stored = fs
      .readdirSync(walDir)
      .filter((f) => /^[0-9A-F]{24}\.zst$/.test(f))
      .sort()
    expect(stored.length).toBeGreaterThan(0)
    const digest = (f: string) =>
      createHash('sha256')
        .update(fs.readFileSync(path.join(walDir, f)))
        .digest('hex')
    const before = Object.fromEntries(fs.readdirSync(walDir).map((f) => [f, digest(f)]))

    // the second cluster's archive_command names the first one's repository and stack (a restored
    // copy or a re-initialised server someone forgot to re-point)
    await second.restart({
      archive_mode: 'on',
      wal_level: 'replica',
      archive_command: archiveCommand({repository: first.repo, stack: 'shared', entry: ENTRY, node: process.execPath}),
    })
    const [{sysid: secondId}] = await second.query<{sysid: string}>(
      'SELECT system_identifier::text AS sysid FROM pg_control_system()',
    )
    await second.query('CREATE TABLE b (id int); INSERT INTO b VALUES (1); SELECT pg_switch_wal()')
    await waitUntil(
      async () =>
        Number((await second.query<{n: string}>('SELECT failed_count::text AS n FROM pg_stat_archiver'))[0].n) > 0,
      {what: 'the second server to fail archiving', timeoutMs: 60_000},
    )
    const [{wal}] = await second.query<{wal: string}>('SELECT last_failed_wal AS wal FROM pg_stat_archiver')
    expect(wal).toMatch(/^00000001[0-9A-F]{16}$/)
    expect(`${wal}.zst` in before, `the first cluster archived ${wal} too: the refusal protects it`).toBe(true)

    // the same push by hand, as the server's user, tells why
    const push = runCli(['wal', 'push', `pg_wal/${wal}`, '--repo', first.repo, '--stack', 'shared', '--json'], {
      cwd: second.dataDir,
      bareEnv: true,
      user: second.osUser,
    })
    expect(push.code, push.stderr).toBe(2)
    expect(JSON.parse(push.stdout).error).toMatchObject({code: 'WAL_CLUSTER_MISMATCH', exitCode: 2})
    expect(JSON.parse(push.stdout).error.message).toContain(`system identifier ${secondId}`)
    expect(
      Object.fromEntries(fs.readdirSync(walDir).map((f) => [f, digest(f)])),
      'nothing written, nothing overwritten',
    ).toEqual(before)

    const base = first.cli(['backup', 'base', '--repo', first.repo, '--stack', 'shared', '--json'], {
      asServer: true,
      env: {DATABASE_URL: second.url()},
    })
    expect(base.code, base.stderr).toBe(2)
    expect(JSON.parse(base.stdout).error.code).toBe('WAL_CLUSTER_MISMATCH')
    expect(Object.fromEntries(fs.readdirSync(walDir).map((f) => [f, digest(f)]))).toEqual(before)
  }, 240_000)
})
