/**
 * The native physical engine end to end on a real cluster with archive_mode on, archive_command
 * = the built `charge-ops wal push` run by PostgreSQL as its own OS user:
 * exactness of --target-time, timelines, a hole in the archive, a corrupted segment, and the
 * data-directory safety rules. Needs `npm run build` (archive_command runs bin/run.js).
 */
import {spawnSync} from 'node:child_process'
import fs from 'node:fs'
import path from 'node:path'

import {afterAll, beforeAll, describe, expect, it} from 'vitest'

import {silentLogger} from '../../src/output/logger.js'
import {LocalStorage} from '../../src/repository/local-storage.js'
import {PARTIAL_CONTROL, RESTORE_MARK, restorePitr} from '../../src/restore/pitr.js'
import {parseTarget} from '../../src/restore/pitr-target.js'
import {freePort, pauseAt, runToKillPoint, type PgCluster} from '../support/index.js'
import {ENTRY, ROOT, startArchivingCluster, type ArchivingCluster} from '../support/pitr.js'

const STACK = 't'

let cluster: ArchivingCluster
let pg: PgCluster
let repo: string
const cli: ArchivingCluster['cli'] = (args, options) => cluster.cli(args, {timeoutMs: 180_000, ...options})

const queryPort = <R>(port: number, sql: string) => cluster.query<R>(port, sql)
const stopRestored = (dataDir: string) => cluster.stopServer(dataDir)

async function restore(
  dir: string,
  target: Parameters<typeof parseTarget>[0],
  extra: {archive?: 'keep' | 'off'; repository?: string} = {},
) {
  const dataDir = path.join(pg.serverDir('restores'), dir)
  const port = await freePort()
  cluster.started.push(dataDir)
  const result = await restorePitr({
    storage: new LocalStorage(extra.repository ?? repo),
    stack: STACK,
    repository: extra.repository ?? repo,
    target: parseTarget(target),
    dataDir,
    archive: extra.archive ?? 'off',
    start: {port, timeoutSec: 120},
    logger: silentLogger,
    entry: ENTRY,
  })
  return {result, port, dataDir}
}

beforeAll(async () => {
  cluster = await startArchivingCluster({
    name: 'pitr',
    stack: STACK,
    settings: {archive_timeout: '0'},
    schema: 'CREATE TABLE samples (id bigserial PRIMARY KEY, committed_at timestamptz NOT NULL)',
  })
  ;({pg, repo} = cluster)
  expect(cluster.base!.stderr + cluster.base!.stdout).toMatch(/base backup .* complete/)
}, 240_000)

afterAll(async () => {
  await cluster?.stop()
})

describe('restore pitr --target-time', () => {
  it('recovers exactly the rows committed at or before each target', async () => {
    // a workload committing one row every ~50 ms, autocommit
    const {default: pgLib} = await import('pg')
    const c = new pgLib.Client({host: pg.host, port: pg.port, user: pg.user, password: pg.password})
    await c.connect()
    const until = Date.now() + 6000
    let n = 0
    while (Date.now() < until) {
      await c.query('INSERT INTO samples (committed_at) VALUES (clock_timestamp())')
      if (++n % 25 === 0) await c.query('SELECT pg_switch_wal()') // several segments in the archive
      await new Promise((r) => setTimeout(r, 50))
    }
    await c.end()
    const check = cli(['wal', 'check', '--repo', repo, '--stack', STACK, '--timeout', '60'], {
      env: {DATABASE_URL: pg.url()},
    })
    expect(check.stderr).not.toMatch(/error/i)
    expect(check.stdout).toMatch(/archived after/)
    expect(check.code).toBe(0)

    // targets in the middle of gaps of at least 40 ms between consecutive commits
    const gaps = await pg.query<{target: string; before: string}>(`
      WITH g AS (SELECT id, committed_at, lead(committed_at) OVER (ORDER BY id) AS nxt FROM samples)
      SELECT to_char((committed_at + (nxt - committed_at) / 2) AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') AS target, id::text AS before
      FROM g WHERE nxt - committed_at >= interval '40 ms' ORDER BY id`)
    expect(gaps.length).toBeGreaterThan(20)
    const picks = [gaps[Math.floor(gaps.length * 0.2)], gaps[Math.floor(gaps.length * 0.7)]]
    for (const [i, pick] of picks.entries()) {
      const {result, port} = await restore(`exact-${i}`, {'target-time': pick.target})
      expect(result.recovery?.stoppedAt).toMatch(/recovery stopping before commit/)
      // the restore_command runs charge-ops' fetch entry directly (no CLI start-up per segment)
      expect(result.restoreCommand).toBe(
        `${process.execPath} ${path.join(ROOT, 'dist/src/wal/fetch-main.js')} %f %p --repo ${repo} --stack ${STACK}`,
      )
      const expected = await pg.query<{ids: string}>(
        `SELECT coalesce(string_agg(id::text, ',' ORDER BY id), '') AS ids FROM samples WHERE committed_at <= '${pick.target}'`,
      )
      const got = await queryPort<{ids: string}>(
        port,
        `SELECT coalesce(string_agg(id::text, ',' ORDER BY id), '') AS ids FROM samples`,
      )
      expect(got[0].ids).toBe(expected[0].ids)
      expect(got[0].ids.split(',').at(-1)).toBe(pick.before)
      const inRecovery = await queryPort<{r: boolean}>(port, 'SELECT pg_is_in_recovery() AS r')
      expect(inRecovery[0].r).toBe(false)
    }
  }, 300_000)

  it('recovers to a named restore point', async () => {
    await pg.query("INSERT INTO samples (committed_at) VALUES ('1999-01-01')")
    await pg.query("SELECT pg_create_restore_point('before-cleanup')")
    await pg.query("DELETE FROM samples WHERE committed_at = '1999-01-01'")
    const check = cli(['wal', 'check', '--repo', repo, '--stack', STACK], {env: {DATABASE_URL: pg.url()}})
    expect(check.code).toBe(0)
    const {result, port} = await restore('named', {'target-name': 'before-cleanup'})
    expect(result.recovery?.stoppedAt).toMatch(/recovery stopping at restore point "before-cleanup"/)
    const rows = await queryPort<{n: string}>(
      port,
      "SELECT count(*) AS n FROM samples WHERE committed_at = '1999-01-01'",
    )
    expect(rows[0].n).toBe('1')
    expect(
      (await pg.query<{n: string}>("SELECT count(*) AS n FROM samples WHERE committed_at = '1999-01-01'"))[0].n,
    ).toBe('0')
  }, 120_000)

  it('fails without promoting when the target lies beyond the archived WAL', async () => {
    const future = new Date(Date.now() + 3_600_000).toISOString()
    await expect(restore('beyond', {'target-time': future})).rejects.toThrow(/beyond the archived WAL/)
  }, 120_000)
})

describe('timelines', () => {
  it('recovers, writes on the new timeline, and recovers again across the switch', async () => {
    const first = await restore('tl-1', {latest: true}, {archive: 'keep'})
    expect(first.result.recovery?.timeline).toBe(2)
    await queryPort(first.port, "INSERT INTO samples (committed_at) VALUES ('2000-01-01')")
    await queryPort(first.port, 'SELECT pg_switch_wal()')
    const check = cli(['wal', 'check', '--repo', repo, '--stack', STACK], {
      env: {
        DATABASE_URL: `postgresql://${pg.user}:${encodeURIComponent(pg.password)}@127.0.0.1:${first.port}/postgres`,
      },
    })
    expect(check.code).toBe(0)
    expect(fs.existsSync(path.join(repo, STACK, 'wal', '00000002', '00000002.history.zst'))).toBe(true)
    stopRestored(first.dataDir)

    const second = await restore('tl-2', {latest: true}, {archive: 'off'})
    expect(second.result.archive.timeline).toBe(2)
    const rows = await queryPort<{n: string}>(
      second.port,
      "SELECT count(*) AS n FROM samples WHERE committed_at = '2000-01-01'",
    )
    expect(rows[0].n).toBe('1')
    stopRestored(second.dataDir)
  }, 300_000)
})

describe('archive faults', () => {
  it('refuses a hole in the archive, naming the missing segment', async () => {
    const copy = pg.serverDir('repo-hole')
    fs.cpSync(repo, copy, {recursive: true})
    const tl1 = path.join(copy, STACK, 'wal', '00000001')
    const segs = fs
      .readdirSync(tl1)
      .filter((f) => /^[0-9A-F]{24}\.zst$/.test(f))
      .sort()
    expect(segs.length).toBeGreaterThan(3)
    const victim = segs[Math.floor(segs.length / 2)]
    fs.rmSync(path.join(tl1, victim))
    const dataDir = path.join(pg.serverDir('restores'), 'hole')
    await expect(
      restorePitr({
        storage: new LocalStorage(copy),
        stack: STACK,
        repository: copy,
        target: parseTarget({latest: true}),
        dataDir,
        archive: 'off',
        targetTimeline: '1',
        logger: silentLogger,
        entry: ENTRY,
      }),
    ).rejects.toThrow(new RegExp(`WAL segment ${victim.replace('.zst', '')} is missing`))
    expect(fs.existsSync(dataDir)).toBe(false)
  }, 120_000)

  it('stops recovery on a corrupted segment (checksum) instead of promoting', async () => {
    const copy = pg.serverDir('repo-corrupt')
    fs.cpSync(repo, copy, {recursive: true})
    if (pg.osUser) spawnSync('chown', ['-R', `${pg.osUser.uid}:${pg.osUser.gid}`, copy])
    const tl1 = path.join(copy, STACK, 'wal', '00000001')
    const segs = fs
      .readdirSync(tl1)
      .filter((f) => /^[0-9A-F]{24}\.zst$/.test(f))
      .sort()
    const victim = segs.at(-2)!
    const {decodeWal} = await import('../../src/wal/codec.js')
    const file = path.join(tl1, victim)
    const body = fs.readFileSync(file)
    const data = await decodeWal(body, victim.replace('.zst', ''))
    data[data.length - 100] ^= 0xff // a flipped bit in the last page
    const zstd = spawnSync('zstd', ['-q', '-1', '-c'], {input: data})
    const headerLength = 8 + body.readUInt32LE(4)
    fs.writeFileSync(file, Buffer.concat([body.subarray(0, headerLength), zstd.stdout]))
    const fetch = cli([
      'wal',
      'fetch',
      victim.replace('.zst', ''),
      path.join(pg.baseDir, 'x'),
      '--repo',
      copy,
      '--stack',
      STACK,
    ])
    expect(fetch.code).toBe(126)
    expect(fetch.stderr).toMatch(new RegExp(`${victim.replace('.zst', '')}.*checksum mismatch`))
    await expect(restore('corrupt', {latest: true}, {repository: copy})).rejects.toThrow(
      new RegExp(`could not restore file "${victim.replace('.zst', '')}"`),
    )
  }, 120_000)
})

describe('base backup faults', () => {
  it("a flipped byte in the base part is PITR_BASE_CORRUPT (not zstd's words) and MISMATCH in backup verify", async () => {
    const copy = pg.serverDir('repo-base-corrupt')
    fs.cpSync(repo, copy, {recursive: true})
    if (pg.osUser) spawnSync('chown', ['-R', `${pg.osUser.uid}:${pg.osUser.gid}`, copy])
    const {listBackups, partKey} = await import('../../src/repository/manifest.js')
    const [base] = (await listBackups(new LocalStorage(copy), STACK, {kind: 'base'})).complete
    const part = path.join(copy, ...partKey(STACK, base.id, 'base.tar.zst').split('/'))
    const bytes = fs.readFileSync(part)
    bytes[Math.floor(bytes.length / 2)] ^= 0xff
    fs.writeFileSync(part, bytes)
    const dataDir = path.join(pg.serverDir('restores'), 'base-corrupt')
    const r = cli(
      [
        'restore',
        'pitr',
        '--latest',
        '--data-dir',
        dataDir,
        '--repo',
        copy,
        '--stack',
        STACK,
        '--archive',
        'off',
        '--yes',
        '--json',
      ],
      {asServer: true},
    )
    expect(r.code, r.stderr).toBe(1)
    expect(JSON.parse(r.stdout)).toMatchObject({error: {code: 'PITR_BASE_CORRUPT', exitCode: 1}})
    expect(r.stdout + r.stderr).not.toMatch(/Decoding error|doesn't match checksum|\n\s+at /)
    expect(fs.existsSync(path.join(dataDir, 'global', 'pg_control'))).toBe(false)
    const verify = cli(['backup', 'verify', base.id, '--repo', copy, '--stack', STACK])
    expect(verify.code).toBe(1)
    expect(verify.stdout).toMatch(/MISMATCH\s+base\.tar\.zst/)
  }, 120_000)
})

describe('data directory safety', () => {
  it('refuses a non-empty or running data directory and changes nothing', async () => {
    const before = fs.readdirSync(pg.dataDir).sort()
    const running = restorePitr({
      storage: new LocalStorage(repo),
      stack: STACK,
      repository: repo,
      target: parseTarget({latest: true}),
      dataDir: pg.dataDir,
      logger: silentLogger,
    })
    await expect(running).rejects.toThrow(/postmaster\.pid exists/)
    expect(fs.readdirSync(pg.dataDir).sort()).toEqual(before)
    const nonEmpty = pg.serverDir('non-empty')
    fs.writeFileSync(path.join(nonEmpty, 'keep.txt'), 'x')
    await expect(
      restorePitr({
        storage: new LocalStorage(repo),
        stack: STACK,
        repository: repo,
        target: parseTarget({latest: true}),
        dataDir: nonEmpty,
        logger: silentLogger,
      }),
    ).rejects.toThrow(/is not empty/)
    expect(fs.readdirSync(nonEmpty)).toEqual(['keep.txt'])
  }, 120_000)
})

describe('restore pitr killed at its kill points', () => {
  it('restore.pitr.extracted (paused: a second restore into the directory is refused; then killed), restore.pitr.before-start: the directory cannot start / never started, the mark names the dead run; the rerun clears it and recovers exactly the rows at the target', async () => {
    const [{ids: atPoint}] = await pg.query<{ids: string}>(
      `SELECT string_agg(id::text, ',' ORDER BY id) AS ids FROM samples`,
    )
    await pg.query("SELECT pg_create_restore_point('before-kills')")
    await pg.query('INSERT INTO samples (committed_at) VALUES (clock_timestamp())') // after the target: must not come back
    expect(
      cli(['wal', 'check', '--repo', repo, '--stack', STACK, '--timeout', '60'], {env: {DATABASE_URL: pg.url()}}).code,
    ).toBe(0)
    const faults = pg.serverDir('faults')
    const dataDir = path.join(pg.serverDir('restores'), 'killed')
    const port = await freePort()
    cluster.started.push(dataDir)
    // timeline 1: the timelines case above archived a timeline 2 that branched off before the point
    const args = [
      'restore',
      'pitr',
      '--target-name',
      'before-kills',
      '--target-timeline',
      '1',
      '--data-dir',
      dataDir,
      '--repo',
      repo,
      '--stack',
      STACK,
      '--archive',
      'off',
      '--start',
      '--port',
      String(port),
      '--database-url',
      pg.url(),
      '--yes',
      '--json',
    ]
    const asServer = {bareEnv: true, user: pg.osUser, faultDir: faults}
    const markOwner = () => JSON.parse(fs.readFileSync(path.join(dataDir, RESTORE_MARK), 'utf8')).owner
    const exists = (p: string) => fs.existsSync(path.join(dataDir, p))

    // 1. paused with the base extracted: a second restore into the same directory is refused and
    //    changes nothing; then the paused run is SIGKILLed there
    const paused = pauseAt('restore.pitr.extracted', args, asServer)
    await paused.reached()
    const concurrent = cli(args, {asServer: true})
    expect(concurrent.code, concurrent.stdout + concurrent.stderr).toBe(2)
    expect(JSON.parse(concurrent.stdout).error).toMatchObject({
      code: 'PITR_DATADIR_NOT_EMPTY',
      data: {owner: {pid: paused.child.pid}},
    })
    expect(exists(PARTIAL_CONTROL), "the running restore's files untouched").toBe(true)
    paused.child.kill('SIGKILL')
    expect((await paused.exited).signal).toBe('SIGKILL')
    expect(exists(PARTIAL_CONTROL) && exists('base'), 'the base is written').toBe(true)
    expect(exists('global/pg_control'), 'without pg_control it cannot be started').toBe(false)
    expect(exists('recovery.signal')).toBe(false)
    expect(markOwner()).toMatchObject({pid: paused.child.pid, command: 'restore pitr'})

    // 2. the rerun clears the dead run's directory, restores again; killed with everything in place
    const killed = await runToKillPoint('restore.pitr.before-start', args, asServer)
    expect(killed.stderr).toMatch(
      new RegExp(`unfinished restore left by \`restore pitr\` \\(pid ${paused.child.pid}\\b.*cleared`),
    )
    expect(exists('global/pg_control') && exists('recovery.signal'), 'complete and startable').toBe(true)
    expect(exists(PARTIAL_CONTROL)).toBe(false)
    expect(fs.readFileSync(path.join(dataDir, 'postgresql.auto.conf'), 'utf8')).toContain(
      "recovery_target_name = 'before-kills'",
    )
    expect(exists('postmaster.pid'), 'no server was started on it').toBe(false)
    expect(markOwner()).toMatchObject({pid: killed.reached.pid, command: 'restore pitr'})

    // 3. the rerun restores again and recovers: exactly the rows at the target, no mark left
    const rerun = cli(args, {asServer: true})
    expect(rerun.code, rerun.stdout + rerun.stderr).toBe(0)
    expect(JSON.parse(rerun.stdout).recovery.stoppedAt).toMatch(/recovery stopping at restore point "before-kills"/)
    expect(exists(RESTORE_MARK)).toBe(false)
    expect(
      (await queryPort<{ids: string}>(port, `SELECT string_agg(id::text, ',' ORDER BY id) AS ids FROM samples`))[0].ids,
    ).toBe(atPoint)
    stopRestored(dataDir)
  }, 300_000)
})
