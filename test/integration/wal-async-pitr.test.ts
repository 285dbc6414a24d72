/**
 * The asynchronous WAL forms on a real PostgreSQL 15 cluster: archive_command = `wal push --async
 * --process-max 2` run by PostgreSQL as its own OS user, with the repository made unwritable and
 * then writable again (no segment lost: `wal check` passes and the PITR to the end is exact), and
 * a recovery whose restore_command prefetches (`restore pitr` with walPrefetch) giving exact rows
 * with later segments served from the spool. Needs `npm run build`.
 */
import {spawnSync} from 'node:child_process'
import fs from 'node:fs'
import path from 'node:path'

import {afterAll, beforeAll, describe, expect, it} from 'vitest'

import {silentLogger} from '../../src/output/logger.js'
import {LocalStorage} from '../../src/repository/local-storage.js'
import {restorePitr} from '../../src/restore/pitr.js'
import {parseTarget} from '../../src/restore/pitr-target.js'
import {archiveCommand} from '../../src/wal/command-lines.js'
import {
  ENTRY,
  freePort,
  killPointEnv,
  readReached,
  runCli,
  startPostgres,
  waitUntil,
  type PgCluster,
} from '../support/index.js'

const STACK = 'a'

let pg: PgCluster
let repo: string
const restored: string[] = []

/** the built CLI; `asServer` runs it as the server's OS user (as cron / archive_command would) */
const cli = (args: string[], options: {env?: Record<string, string>; asServer?: boolean} = {}) =>
  runCli(args, {bareEnv: true, env: options.env, user: options.asServer ? pg.osUser : undefined, timeout: 120_000})

async function insertAndSwitch(rows: number, switches: number) {
  for (let i = 0; i < switches; i++) {
    await pg.query(`INSERT INTO samples (v) SELECT g FROM generate_series(1, ${Math.ceil(rows / switches)}) g`)
    await pg.query('SELECT pg_switch_wal()')
  }
}

const backlog = async () =>
  Number(
    (
      await pg.query<{n: string}>("SELECT count(*)::text AS n FROM pg_ls_archive_statusdir() WHERE name LIKE '%.ready'")
    )[0].n,
  )

beforeAll(async () => {
  pg = await startPostgres({name: 'walasync'})
  repo = pg.serverDir('repo')
  await pg.restart({
    archive_mode: 'on',
    wal_level: 'replica',
    archive_command: archiveCommand({
      repository: repo,
      stack: STACK,
      entry: ENTRY,
      node: process.execPath,
      asyncProcessMax: 2,
      queueMax: '48MB',
    }),
    archive_timeout: '0',
  })
  await pg.query('CREATE TABLE samples (id bigserial PRIMARY KEY, v int NOT NULL)')
  const base = cli(['backup', 'base', '--repo', repo, '--stack', STACK], {
    asServer: true,
    env: {DATABASE_URL: pg.url()},
  })
  expect(base.stderr + base.stdout).toMatch(/base backup .* complete/)
  expect(base.code).toBe(0)
}, 240_000)

afterAll(async () => {
  for (const dataDir of restored) {
    if (fs.existsSync(path.join(dataDir, 'postmaster.pid')))
      spawnSync(path.join(pg.binDir, 'pg_ctl'), ['stop', '-D', dataDir, '-m', 'immediate', '-w'], {
        uid: pg.osUser?.uid,
        gid: pg.osUser?.gid,
      })
  }
  await pg?.stop()
})

describe('wal push --async as archive_command', () => {
  it('loses no segment while the repository is unwritable, then catches up', async () => {
    await insertAndSwitch(2000, 3)
    expect(cli(['wal', 'check', '--repo', repo, '--stack', STACK], {env: {DATABASE_URL: pg.url()}}).code).toBe(0)

    const timeline = path.join(repo, STACK, 'wal', '00000001')
    const mode = fs.statSync(timeline).mode & 0o777
    const failedBefore = Number(
      (await pg.query<{n: string}>('SELECT failed_count::text AS n FROM pg_stat_archiver'))[0].n,
    )
    fs.chmodSync(timeline, 0o500) // the postgres user can no longer add objects
    try {
      await insertAndSwitch(3000, 5)
      await waitUntil(
        async () =>
          Number((await pg.query<{n: string}>('SELECT failed_count::text AS n FROM pg_stat_archiver'))[0].n) >
            failedBefore && (await backlog()) >= 5,
        {timeoutMs: 60_000, what: 'archive_command failing with a backlog'},
      )
      // nothing recorded as archived while the repository refuses
      const spool = path.join(pg.dataDir, 'charge-ops-spool', 'push')
      const records = fs.existsSync(spool)
        ? fs.readdirSync(spool, {recursive: true}).filter((f) => String(f).endsWith('.ok'))
        : []
      // a record only ever names a segment the repository holds: none for the segments written since
      // it refuses. (One from before can remain: the push-ahead worker finished a segment the archiver
      // had pushed itself and was not asked for again — true, and swept once the segment is recycled.)
      for (const record of records) {
        const {key} = JSON.parse(fs.readFileSync(path.join(spool, String(record)), 'utf8')) as {key: string}
        expect(fs.existsSync(path.join(repo, key)), `${String(record)} names ${key}`).toBe(true)
      }
      const check = cli(['wal', 'check', '--repo', repo, '--stack', STACK, '--timeout', '3'], {
        env: {DATABASE_URL: pg.url()},
      })
      expect(check.code).not.toBe(0)
      expect(check.stderr).toMatch(/archive_command is failing/)
      expect(check.stderr).toMatch(/segment\(s\) wait in pg_wal \(\.ready\)/)
      // past archive_command's --queue-max 48MB (3 segments) every call says so in the server log,
      // and capacity judges the backlog against that limit (critical at 3); nothing is dropped
      await insertAndSwitch(300, 3)
      await waitUntil(async () => (await backlog()) >= 8, {timeoutMs: 30_000, what: 'a backlog of 8'})
      await waitUntil(
        async () =>
          /WARNING: \d+ WAL segment\(s\) \([^)]+\) wait in pg_wal for archiving, over --queue-max 48/.test(
            fs.readFileSync(pg.logFile, 'utf8'),
          ),
        {timeoutMs: 90_000, what: 'the queue warning in the server log'},
      )
      const capacity = cli(['capacity', '--only', 'postgresql', '--json', '--no-history'], {
        env: {DATABASE_URL: pg.url()},
      })
      const measure = JSON.parse(capacity.stdout).checks.find((c: {id: string}) => c.id === 'pg.archive_ready_backlog')
      expect(measure, capacity.stderr).toMatchObject({status: 'critical', thresholds: {warning: 1, critical: 3}})
      expect(measure.message).toMatch(/--queue-max is 3 segment/)
      expect(measure.value).toBeGreaterThanOrEqual(8)
    } finally {
      fs.chmodSync(timeline, mode)
    }
    // after 3 failures in a row the archiver sleeps up to a minute; a reload wakes it (SIGHUP sets its latch)
    await waitUntil(async () => (await pg.query('SELECT pg_reload_conf()'), (await backlog()) === 0), {
      timeoutMs: 60_000,
      intervalMs: 500,
      what: 'the archiver catching up',
    })
    const check = cli(['wal', 'check', '--repo', repo, '--stack', STACK], {env: {DATABASE_URL: pg.url()}})
    expect(check.stderr).not.toMatch(/error/i)
    // the segment the check switched to may still be marked ready while its push returns
    expect(check.stdout).toMatch(/; [01] segment\(s\) waiting \(\.ready\)/)
    expect(check.code).toBe(0)
  }, 150_000)
})

describe('restore pitr with a prefetching restore_command', () => {
  const rows = async (port: number) => {
    const {default: pgLib} = await import('pg')
    const c = new pgLib.Client({host: '127.0.0.1', port, user: pg.user, password: pg.password, database: 'postgres'})
    await c.connect()
    try {
      return (await c.query('SELECT count(*)::text AS n, sum(v)::text AS s FROM samples')).rows[0]
    } finally {
      await c.end()
    }
  }
  async function recoverWith(name: string, env: Record<string, string> = {}) {
    await pg.query('SELECT pg_switch_wal()')
    expect(cli(['wal', 'check', '--repo', repo, '--stack', STACK], {env: {DATABASE_URL: pg.url()}}).code).toBe(0)
    const expected = (
      await pg.query<{n: string; s: string}>('SELECT count(*)::text AS n, sum(v)::text AS s FROM samples')
    )[0]
    const dataDir = path.join(pg.serverDir('restores'), name)
    restored.push(dataDir)
    const port = await freePort()
    // the server started for recovery inherits this environment, and so do its restore_commands
    Object.assign(process.env, env)
    try {
      const result = await restorePitr({
        storage: new LocalStorage(repo),
        stack: STACK,
        repository: repo,
        target: parseTarget({latest: true}),
        dataDir,
        archive: 'off',
        start: {port, timeoutSec: 120},
        logger: silentLogger,
        entry: ENTRY,
        walPrefetch: 4,
      })
      expect(await rows(port)).toEqual(expected)
      return result
    } finally {
      for (const key of Object.keys(env)) delete process.env[key]
    }
  }

  it('recovers exactly, later segments handed over from the spool by the shell fast path', async () => {
    const result = await recoverWith('prefetch')
    expect(result.restoreCommand).toMatch(
      /^\{ read b <\/proc\/sys\/kernel\/random\/boot_id; \} 2>\/dev\/null; f=charge-ops-spool\/fetch\/[0-9a-f]{16}\.\$b\/%f; test -f "\$f" && mv -f "\$f" %p \|\| exec .*fetch-main\.js %f %p --repo .* --prefetch 4$/,
    )
    expect(result.archive.segments).toBeGreaterThanOrEqual(8)
    // the prefetcher says in the server log what it did when it stopped (recovery over)
    const log = result.recovery!.logFile
    await waitUntil(
      async () =>
        /prefetch \(timeline 1\): (recovery ended|the spool was removed); \d+ segment\(s\) prefetched, \d+ handed over/.test(
          fs.readFileSync(log, 'utf8'),
        ),
      {timeoutMs: 10_000, what: 'the prefetcher stopping'},
    )
    const handed = Number(/(\d+) handed over from the spool/.exec(fs.readFileSync(log, 'utf8'))![1])
    expect(handed).toBeGreaterThanOrEqual(3)
    // recovery is over: the fetch spool is gone
    expect(fs.existsSync(path.join(result.dataDir, 'charge-ops-spool', 'fetch'))).toBe(false)
  }, 150_000)

  it('a prefetcher killed mid-segment costs only speed: exact rows, nothing partial handed over', async () => {
    const faults = pg.serverDir('faults-prefetch')
    await insertAndSwitch(1000, 4)
    // every prefetcher dies with a half-written temp at its first segment
    await recoverWith('prefetch-killed', killPointEnv('wal.prefetch.mid-segment', faults))
    const reached = readReached(faults, 'wal.prefetch.mid-segment')
    expect(reached.name).toMatch(/^00000001[0-9A-F]{16}$/)
  }, 150_000)
})
