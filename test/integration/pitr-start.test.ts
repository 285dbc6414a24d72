/**
 * `restore pitr --start` decides success from the server itself: a client that connects while
 * the copy recovers (its "FATAL: the database system is …" lines in the log) is no failure; the
 * recovery log lives beside the data directory, not inside it (where base backups would copy it);
 * a server that stops because its target was not reached is reported as such, from its own log.
 * Real clusters; the source runs with hot_standby = off so that the copy refuses every connection
 * until it has promoted (the widest window for a probing client).
 */
import fs from 'node:fs'
import path from 'node:path'

import {afterAll, beforeAll, describe, expect, it} from 'vitest'

import {silentLogger} from '../../src/output/logger.js'
import {LocalStorage} from '../../src/repository/local-storage.js'
import {restorePitr, startAndAwaitRecovery, targetOwner} from '../../src/restore/pitr.js'
import {parseTarget} from '../../src/restore/pitr-target.js'
import {freePort, type PgCluster} from '../support/index.js'
import {ENTRY, startArchivingCluster, type ArchivingCluster} from '../support/pitr.js'

const STACK = 'st'

let cluster: ArchivingCluster
let pg: PgCluster
let repo: string
let started: string[]
const cli: ArchivingCluster['cli'] = (args, options) => cluster.cli(args, options)

/** A client that keeps connecting to `port` (like a monitoring probe or a pooler) until stopped. */
function probe(port: number) {
  const errors: string[] = []
  let stop = false
  const done = (async () => {
    const {default: pgLib} = await import('pg')
    while (!stop) {
      const c = new pgLib.Client({
        host: '127.0.0.1',
        port,
        user: pg.user,
        password: pg.password,
        database: 'postgres',
        connectionTimeoutMillis: 2000,
      })
      c.on('error', () => {})
      try {
        await c.connect()
        await c.end()
      } catch (error) {
        errors.push(String((error as {code?: string}).code ?? (error as Error).message))
      }
      await new Promise((r) => setTimeout(r, 40))
    }
  })()
  return {errors, stop: async () => ((stop = true), await done)}
}

beforeAll(async () => {
  cluster = await startArchivingCluster({
    name: 'pitr-start',
    stack: STACK,
    settings: {hot_standby: 'off'},
    schema: 'CREATE TABLE t (id int PRIMARY KEY, at timestamptz NOT NULL DEFAULT clock_timestamp())',
  })
  ;({pg, repo, started} = cluster)
  // a few segments to replay: the copy stays in recovery for a while
  for (let i = 1; i <= 4; i++) await pg.query(`INSERT INTO t (id) VALUES (${i}); SELECT pg_switch_wal()`)
  const check = cli(['wal', 'check', '--repo', repo, '--stack', STACK], {env: {DATABASE_URL: pg.url()}})
  expect(check.code, check.stderr).toBe(0)
}, 240_000)

afterAll(async () => {
  await cluster?.stop()
})

describe('restore pitr --start', () => {
  it('is not failed by clients connecting during recovery; the log lives outside the data directory', async () => {
    const dataDir = path.join(pg.serverDir('restores'), 'probed')
    const port = await freePort()
    started.push(dataDir)
    const client = probe(port)
    let result
    try {
      result = await restorePitr({
        storage: new LocalStorage(repo),
        stack: STACK,
        repository: repo,
        target: parseTarget({latest: true}),
        dataDir,
        archive: 'off',
        start: {port, timeoutSec: 120},
        databaseUrl: pg.url(),
        logger: silentLogger,
        entry: ENTRY,
      })
    } finally {
      await client.stop()
    }
    // the probe really was refused during recovery, and the server logged it as FATAL
    expect(client.errors).toContain('57P03')
    const log = fs.readFileSync(result.recovery!.logFile, 'utf8')
    expect(log).toMatch(
      /FATAL: {2}the database system is (starting up|not accepting connections|not yet accepting connections)/,
    )
    expect(result.recovery).toMatchObject({timeline: 2, confirmedBy: 'connection'})
    expect((await pg.query<{n: string}>('SELECT count(*)::text AS n FROM t'))[0].n).toBe('4')
    const {default: pgLib} = await import('pg')
    const c = new pgLib.Client({host: '127.0.0.1', port, user: pg.user, password: pg.password, database: 'postgres'})
    await c.connect()
    expect((await c.query('SELECT count(*)::int AS n, pg_is_in_recovery() AS r FROM t')).rows[0]).toEqual({
      n: 4,
      r: false,
    })
    await c.end()
    // beside the data directory, never inside it (a base backup of this server would copy it)
    expect(path.dirname(result.recovery!.logFile)).toBe(path.dirname(dataDir))
    expect(path.basename(result.recovery!.logFile)).toMatch(/^probed\.recovery-\d{8}T\d{6}Z\.log$/)
    expect(fs.existsSync(path.join(dataDir, 'log', 'charge-ops-recovery.log'))).toBe(false)
  }, 180_000)

  it('without --start, refuses a target after the last archived commit though a newer segment was archived after it', async () => {
    // a commit, then the target, then a segment switch (no commit): the newest segment's archive
    // time lies after the target but nothing recovery could stop before does — PostgreSQL would run
    // out of WAL and refuse to promote, so the restore must not report success (it did: exit 0)
    await pg.query('INSERT INTO t (id) VALUES (100)')
    const [{at, target}] = await pg.query<{at: string; target: string}>(
      'SELECT to_char((SELECT at FROM t WHERE id = 100) AT TIME ZONE \'UTC\', \'YYYY-MM-DD"T"HH24:MI:SS.US"Z"\') AS at, to_char(clock_timestamp() AT TIME ZONE \'UTC\', \'YYYY-MM-DD"T"HH24:MI:SS.US"Z"\') AS target',
    )
    const check = cli(['wal', 'check', '--repo', repo, '--stack', STACK], {env: {DATABASE_URL: pg.url()}})
    expect(check.code, check.stderr).toBe(0)
    const dataDir = path.join(pg.serverDir('restores'), 'beyond-commit')
    const r = cli(
      [
        'restore',
        'pitr',
        '--target-time',
        target,
        '--data-dir',
        dataDir,
        '--repo',
        repo,
        '--stack',
        STACK,
        '--yes',
        '--archive',
        'off',
      ],
      {asServer: true},
    )
    expect(r.code, r.stderr).toBe(1)
    expect(r.stderr).toMatch(
      /lies beyond the archived WAL: its last commit is \d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{6}\+00/,
    )
    expect(r.stderr).toMatch(/wal check/)
    expect(r.stderr).not.toMatch(/\n\s+at /)
    expect(fs.existsSync(dataDir)).toBe(false)
    // the same archive answers a target just before that commit: the check refuses only what cannot be reached
    const {checkArchiveFor} = await import('../../src/restore/pitr.js')
    const {listBackups} = await import('../../src/repository/manifest.js')
    const storage = new LocalStorage(repo)
    const [base] = (await listBackups(storage, STACK, {kind: 'base'})).complete
    await expect(checkArchiveFor(storage, STACK, base, parseTarget({'target-time': at}))).resolves.toMatchObject({
      timeline: 1,
    })
  }, 180_000)

  it("reports a server that stopped short of its target as PITR_TARGET_NOT_REACHED, from this start's own log", async () => {
    const dataDir = path.join(pg.serverDir('restores'), 'short')
    const port = await freePort()
    started.push(dataDir)
    await restorePitr({
      storage: new LocalStorage(repo),
      stack: STACK,
      repository: repo,
      target: parseTarget({latest: true}),
      dataDir,
      archive: 'off',
      port,
      logger: silentLogger,
      entry: ENTRY,
    })
    // a target no archived commit reaches: PostgreSQL 15 refuses to promote and stops
    fs.appendFileSync(
      path.join(dataDir, 'postgresql.auto.conf'),
      `recovery_target_time = '${new Date(Date.now() + 3_600_000).toISOString().replace('T', ' ').replace('Z', '+00')}'\nrecovery_target_action = 'promote'\n`,
    )
    const owner = await targetOwner(dataDir, true)
    const failing = startAndAwaitRecovery(dataDir, port, 120, owner, silentLogger, {databaseUrl: pg.url()})
    await expect(failing).rejects.toMatchObject({code: 'PITR_TARGET_NOT_REACHED', exitCode: 1})
    expect(fs.existsSync(path.join(dataDir, 'postmaster.pid'))).toBe(false)
  }, 180_000)
})
