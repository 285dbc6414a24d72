/**
 * The built CLI (`npm run build` first): exit codes, --json shapes, stderr vs stdout, no password
 * in any output, and two real processes competing for the migration lock.
 */
import {spawn} from 'node:child_process'
import {mkdirSync, mkdtempSync, rmSync, writeFileSync} from 'node:fs'
import {tmpdir} from 'node:os'
import {join} from 'node:path'

import pg from 'pg'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'

import {lockHolder} from '../../src/migrate/lock.js'
import {runToKillPoint, sharedPostgres, waitUntil} from '../support/index.js'

interface Result {
  code: number | null
  stdout: string
  stderr: string
}

const BIN = join(process.cwd(), 'bin/run.js')

function cli(args: string[], env: Record<string, string> = {}, cwd = process.cwd()): Promise<Result> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [BIN, ...args], {
      env: {PATH: process.env.PATH, HOME: process.env.HOME, CI: 'true', ...env},
      cwd,
    })
    let stdout = ''
    let stderr = ''
    child.stdout.on('data', (d) => (stdout += d))
    child.stderr.on('data', (d) => (stderr += d))
    child.on('error', reject)
    child.on('close', (code) => resolve({code, stdout, stderr}))
  })
}

/** A CLI run whose stderr can be watched while it runs. */
function cliLive(args: string[], env: Record<string, string> = {}): {result: Promise<Result>; stderr: () => string} {
  let stderr = ''
  const result = new Promise<Result>((resolve, reject) => {
    const child = spawn(process.execPath, [BIN, ...args], {
      env: {PATH: process.env.PATH, HOME: process.env.HOME, CI: 'true', ...env},
    })
    let stdout = ''
    child.stdout.on('data', (d) => (stdout += d))
    child.stderr.on('data', (d) => (stderr += d))
    child.on('error', reject)
    child.on('close', (code) => resolve({code, stdout, stderr}))
  })
  return {result, stderr: () => stderr}
}

let dir: string
let url: string
let password: string

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'charge-ops-migrate-e2e-'))
  writeFileSync(
    join(dir, '0001_sessions.sql'),
    '-- charge-ops:up\nCREATE TABLE sessions (id bigint PRIMARY KEY);\n-- charge-ops:down\nDROP TABLE sessions;\n',
  )
  // 0002 waits on a gate (an advisory lock) the concurrency test holds: the first run keeps the
  // migration lock exactly as long as the test wants, however slowly the other CLIs start
  writeFileSync(
    join(dir, '0002_slow.sql'),
    '-- charge-ops:lock-timeout 120s\n-- charge-ops:up\nCREATE TABLE slow (id int);\nSELECT pg_advisory_xact_lock(4242);\n-- charge-ops:down\nDROP TABLE slow;\n',
  )
  url = await sharedPostgres().createDatabase()
  password = sharedPostgres().password
})
afterAll(() => rmSync(dir, {recursive: true, force: true}))

describe('charge-ops migrate (built CLI)', () => {
  it('status --exit-code exits 3 while migrations are pending, with a JSON error', async () => {
    const r = await cli(['migrate', 'status', '--exit-code', '--json', '--dir', dir], {MIGRATION_DATABASE_URL: url})
    expect(r.code).toBe(3)
    const body = JSON.parse(r.stdout)
    expect(body.error).toMatchObject({code: 'MIGRATIONS_PENDING', exitCode: 3})
    expect(body.error.data.pending).toBe(2)
    expect(r.stdout + r.stderr).not.toContain(password)
  })

  it('--dry-run prints the plan and SQL and changes nothing', async () => {
    const r = await cli(['migrate', 'up', '--dry-run', '--dir', dir, '--database-url', url])
    expect(r.code, r.stderr + r.stdout).toBe(0)
    expect(r.stdout).toContain('dry run: would apply 2 migrations')
    expect(r.stdout).toContain('CREATE TABLE sessions (id bigint PRIMARY KEY);')
    const rows = await sharedPostgres().query(
      `SELECT to_regclass('charge_ops_migrations') AS t`,
      new URL(url).pathname.slice(1),
    )
    expect(rows).toEqual([{t: null}])
  })

  it('two processes at once: one applies, one without --lock-wait exits 4 naming the holder, one with --lock-wait waits and finds nothing to do', async () => {
    const env = {MIGRATION_DATABASE_URL: url}
    const db = new URL(url).pathname.slice(1)
    const gate = new pg.Client({connectionString: url})
    await gate.connect()
    let first: Promise<Result> | undefined
    let second: Result
    let third: Result
    try {
      await gate.query('SELECT pg_advisory_lock(4242)')
      first = cli(['migrate', 'up', '--dir', dir, '--json'], env)
      // the first run holds the migration lock once it waits at the gate
      await waitUntil(
        async () =>
          (
            await sharedPostgres().query<{n: string}>(
              `SELECT count(*) AS n FROM pg_stat_activity WHERE datname = $1 AND wait_event_type = 'Lock' AND query LIKE '%pg_advisory_xact_lock(4242)%'`,
              'postgres',
              [db],
            )
          )[0]!.n !== '0',
        {timeoutMs: 30_000, intervalMs: 20, what: 'the first migrate up to wait at the gate'},
      )
      second = await cli(['migrate', 'up', '--dir', dir], env)
      // without --json: its "waiting for the migration lock" line on stderr says it really waited
      const waiting = cliLive(['migrate', 'up', '--dir', dir, '--lock-wait', '60s'], env)
      await waitUntil(async () => /waiting for the migration lock held by pid \d+/.test(waiting.stderr()), {
        timeoutMs: 30_000,
        what: 'the --lock-wait run to wait for the lock',
      })
      await gate.query('SELECT pg_advisory_unlock(4242)')
      third = await waiting.result
    } finally {
      await gate.end()
    }
    const one = await first
    expect(one.code).toBe(0)
    expect(JSON.parse(one.stdout).applied.map((a: {version: string}) => a.version)).toEqual(['0001', '0002'])
    expect(second.code).toBe(4)
    expect(second.stderr).toMatch(/another migration run holds the migration lock: pid \d+ \(charge-ops migrate/)
    expect(second.stderr).toContain('--lock-wait')
    expect(second.stdout).toBe('')
    expect(third.code).toBe(0)
    expect(third.stdout.trim()).toBe('up to date (at 0002)')
    const rows = await sharedPostgres().query(
      `SELECT version FROM charge_ops_migrations ORDER BY 1`,
      new URL(url).pathname.slice(1),
    )
    expect(rows).toEqual([{version: '0001'}, {version: '0002'}])
  }, 150_000)

  it('status, current and history report the applied state; status --exit-code now exits 0', async () => {
    const status = await cli(['migrate', 'status', '--exit-code', '--dir', dir, '--database-url', url])
    expect(status.code).toBe(0)
    expect(status.stdout).toMatch(/0002\s+slow\s+applied/)
    const current = await cli(['migrate', 'current', '--json', '--dir', dir, '--database-url', url])
    expect(JSON.parse(current.stdout)).toEqual({current: '0002', name: 'slow', pending: 0})
    const history = await cli(['migrate', 'history', '--json', '--database-url', url])
    expect(
      JSON.parse(history.stdout).migrations.map((m: {version: string; success: boolean}) => [m.version, m.success]),
    ).toEqual([
      ['0001', true],
      ['0002', true],
    ])
  })

  it('down needs --yes when not interactive (exit 2), then reverts one step', async () => {
    const refused = await cli(['migrate', 'down', '--dir', dir, '--database-url', url])
    expect(refused.code).toBe(2)
    expect(refused.stderr).toContain('--yes')
    const done = await cli(['migrate', 'down', '--yes', '--json', '--dir', dir, '--database-url', url])
    expect(done.code).toBe(0)
    expect(JSON.parse(done.stdout)).toMatchObject({direction: 'down', current: '0001', applied: [{version: '0002'}]})
  })

  it('validate exits 1 on an edited applied migration and explains the fix', async () => {
    writeFileSync(
      join(dir, '0001_sessions.sql'),
      '-- charge-ops:up\nCREATE TABLE sessions (id bigint PRIMARY KEY, extra text);\n-- charge-ops:down\nDROP TABLE sessions;\n',
    )
    const r = await cli(['migrate', 'validate', '--json', '--dir', dir, '--database-url', url])
    expect(r.code).toBe(1)
    expect(JSON.parse(r.stdout).problems).toEqual([expect.objectContaining({kind: 'changed', version: '0001'})])
    const up = await cli(['migrate', 'up', '--dir', dir, '--database-url', url])
    expect(up.code).toBe(3)
    expect(up.stderr).toContain('was edited after it was applied')
    expect(up.stderr).not.toContain('    at ') // no stack without --verbose
  })

  it('create numbers the next file; lint exits 1 on errors with JSON findings', async () => {
    const created = await cli(['migrate', 'create', 'Add sessions index', '--no-transaction', '--dir', dir, '--json'])
    expect(JSON.parse(created.stdout)).toMatchObject({version: '0003', name: 'add_sessions_index'})
    const lint = await cli(['migrate', 'lint', '--json', '--dir', 'test/fixtures/migrations/lint'])
    expect(lint.code).toBe(1)
    expect(JSON.parse(lint.stdout)).toMatchObject({errors: 5, warnings: 1})
  })

  it('a missing database URL is a usage error with a hint', async () => {
    // run from an empty directory: no charge-ops.yaml, no .env, no DATABASE_URL
    const r = await cli(['migrate', 'status', '--dir', dir], {}, dir)
    expect(r.code).toBe(2)
    expect(r.stderr).toContain('the database URL is not configured')
    expect(r.stderr).toContain('--database-url')
  })
})

describe('charge-ops migrate killed at its kill points (built CLI)', () => {
  let root: string
  let migrations: string
  let faults: string
  let url: string
  let db: string
  /** the schema after 0, 1, 2 and 3 migrations, from uninterrupted runs on another database */
  const reference: string[] = []
  const env = () => ({MIGRATION_DATABASE_URL: url})
  const up = () => ['migrate', 'up', '--dir', migrations, '--lock-timeout', '0', '--json']

  /** Columns, indexes and constraints of the application's schema (not the history table): equal iff the schemas are. */
  async function schemaOf(database: string): Promise<string> {
    const [{h}] = await sharedPostgres().query<{h: string}>(
      `SELECT md5(coalesce(string_agg(x, E'\n' ORDER BY x), '')) AS h FROM (
         SELECT format('col %s.%s %s %s %s', table_name, column_name, data_type, is_nullable, column_default) AS x FROM information_schema.columns WHERE table_schema = 'public' AND table_name <> 'charge_ops_migrations'
         UNION ALL SELECT format('idx %s', indexdef) FROM pg_indexes WHERE schemaname = 'public' AND tablename <> 'charge_ops_migrations'
         UNION ALL SELECT format('con %s %s', conrelid::regclass::text, pg_get_constraintdef(oid)) FROM pg_constraint WHERE connamespace = 'public'::regnamespace AND conrelid::regclass::text <> 'charge_ops_migrations') s`,
      database,
    )
    return h
  }
  const history = async () =>
    (
      await sharedPostgres().query<{version: string; success: boolean}>(
        'SELECT version, success FROM charge_ops_migrations ORDER BY version',
        db,
      )
    ).map((r) => `${r.version}${r.success ? '' : ' failed'}`)
  const holder = async () => {
    const client = new pg.Client({connectionString: url})
    await client.connect()
    try {
      return await lockHolder(client)
    } finally {
      await client.end()
    }
  }
  /** the dead run's server session gone (PostgreSQL noticed the closed socket and rolled back) */
  const sessionGone = (pid: number) =>
    waitUntil(
      async () =>
        (
          await sharedPostgres().query<{n: string}>(
            `SELECT count(*) AS n FROM pg_stat_activity WHERE application_name LIKE $1`,
            'postgres',
            [`charge-ops migrate (pid ${pid} on %`],
          )
        )[0].n === '0',
      {
        timeoutMs: 30_000,
        intervalMs: 25,
        what: `the session of the killed run (pid ${pid}) to end`,
      },
    )

  const killAt = async (point: string, args: string[]) =>
    (await runToKillPoint(point, args, {bareEnv: true, env: {CI: 'true', ...env()}, faultDir: faults})).reached

  beforeAll(async () => {
    root = mkdtempSync(join(tmpdir(), 'charge-ops-migrate-kill-'))
    migrations = join(root, 'migrations')
    faults = join(root, 'faults')
    mkdirSync(migrations)
    mkdirSync(faults)
    writeFileSync(
      join(migrations, '0001_stations.sql'),
      '-- charge-ops:up\nCREATE TABLE stations (id int PRIMARY KEY, name text NOT NULL);\n-- charge-ops:down\nDROP TABLE stations;\n',
    )
    // 0002 first passes a gate (an advisory lock the test may hold): a statement that runs for as
    // long as the test wants, like a long CREATE INDEX
    writeFileSync(
      join(migrations, '0002_readings.sql'),
      '-- charge-ops:up\nSELECT pg_advisory_xact_lock(4343);\nCREATE TABLE readings (id bigint PRIMARY KEY, station int NOT NULL REFERENCES stations, kwh numeric(8,3));\nCREATE INDEX readings_station ON readings (station);\n-- charge-ops:down\nDROP TABLE readings;\n',
    )
    writeFileSync(
      join(migrations, '0003_region.sql'),
      '-- charge-ops:up\nALTER TABLE stations ADD COLUMN region text;\n-- charge-ops:down\nALTER TABLE stations DROP COLUMN region;\n',
    )
    const refUrl = await sharedPostgres().createDatabase()
    const refDb = new URL(refUrl).pathname.slice(1)
    reference.push(await schemaOf(refDb))
    for (const to of ['0001', '0002', '0003']) {
      const r = await cli(['migrate', 'up', '--to', to, '--dir', migrations, '--database-url', refUrl])
      expect(r.code, r.stderr).toBe(0)
      reference.push(await schemaOf(refDb))
    }
    expect(new Set(reference).size, 'each migration changes the schema').toBe(4)
    url = await sharedPostgres().createDatabase()
    db = new URL(url).pathname.slice(1)
  }, 120_000)
  afterAll(() => rmSync(root, {recursive: true, force: true}))

  it("migrate up: killed between migrations / before COMMIT the history matches the schema and no lock is left; killed with a statement running, the session lives on holding the lock and the rerun takes it over; the final schema = an uninterrupted run's", async () => {
    // 1. between two migrations: 0001 committed and recorded, nothing of 0002
    const between = await killAt('migrate.up.committed', up())
    expect(between.version).toBe('0001')
    await sessionGone(between.pid)
    expect(await history()).toEqual(['0001'])
    expect(await schemaOf(db)).toBe(reference[1])
    expect(await holder()).toBeUndefined()

    // 2. inside 0002's transaction, its statements and history row written, before COMMIT
    const inside = await killAt('migrate.up.before-commit', up())
    expect(inside.version).toBe('0002')
    await sessionGone(inside.pid)
    expect(await history(), 'rolled back whole: no record').toEqual(['0001'])
    expect(await schemaOf(db), 'and no table').toBe(reference[1])
    expect(await holder()).toBeUndefined()

    // 3. with 0002's first statement running on the server (held at the gate)
    const gate = new pg.Client({connectionString: url})
    await gate.connect()
    try {
      await gate.query('SELECT pg_advisory_lock(4343)')
      const running = await killAt('migrate.up.statement-sent', up())
      expect(running).toMatchObject({version: '0002', statement: 1})
      // the dead run's session lives on, inside 0002's transaction, and holds the migration lock
      expect((await holder())?.applicationName).toContain(`charge-ops migrate (pid ${running.pid} on `)
      expect(await history()).toEqual(['0001'])
      // the rerun ends that session and takes the lock over (before: exit 4, "another migration run
      // holds the migration lock", until the statement ended); it then waits at the gate itself
      const rerun = cliLive(up(), env())
      let exited = false
      void rerun.result.then(() => (exited = true))
      await waitUntil(
        async () => {
          const waiting = await sharedPostgres().query<{app: string}>(
            `SELECT application_name AS app FROM pg_stat_activity WHERE datname = $1 AND wait_event_type = 'Lock' AND query LIKE '%pg_advisory_xact_lock(4343)%'`,
            'postgres',
            [db],
          )
          return waiting.length === 1 && !waiting[0].app.includes(`(pid ${running.pid} `)
        },
        {
          timeoutMs: 30_000,
          intervalMs: 25,
          what: 'the rerun to take the lock over and reach the gate',
          abort: () => (exited ? `the rerun exited: ${rerun.stderr()}` : undefined),
        },
      )
      await sessionGone(running.pid)
      await gate.query('SELECT pg_advisory_unlock(4343)')
      const done = await rerun.result
      expect(done.code, done.stderr).toBe(0)
      expect(JSON.parse(done.stdout).applied.map((a: {version: string}) => a.version)).toEqual(['0002', '0003'])
      expect(done.stderr).toMatch(new RegExp(`no longer runs \\(pid ${running.pid}, killed\\?\\).*took the lock over`))
    } finally {
      await gate.end()
    }
    expect(await history()).toEqual(['0001', '0002', '0003'])
    expect(await schemaOf(db), 'the same schema as an uninterrupted run').toBe(reference[3])
    expect(await holder()).toBeUndefined()
  }, 180_000)

  it("migrate down / repair: killed between reverts / before COMMIT the history matches the schema; the reruns finish, and migrate up reaches the uninterrupted run's schema again", async () => {
    expect((await cli(up(), env())).code).toBe(0) // at 0003 (also when run on its own)
    const down = (steps: number) => [
      'migrate',
      'down',
      '--steps',
      String(steps),
      '--yes',
      '--json',
      '--dir',
      migrations,
    ]

    const between = await killAt('migrate.down.committed', down(2))
    expect(between.version).toBe('0003')
    await sessionGone(between.pid)
    expect(await history()).toEqual(['0001', '0002'])
    expect(await schemaOf(db)).toBe(reference[2])

    const inside = await killAt('migrate.down.before-commit', down(1))
    expect(inside.version).toBe('0002')
    await sessionGone(inside.pid)
    expect(await history(), 'the revert rolled back whole').toEqual(['0001', '0002'])
    expect(await schemaOf(db)).toBe(reference[2])
    const reverted = await cli(down(1), env())
    expect(reverted.code, reverted.stderr).toBe(0)
    expect(await history()).toEqual(['0001'])
    expect(await schemaOf(db)).toBe(reference[1])

    // repair of a cosmetic edit to an applied migration, killed before its COMMIT: nothing recorded
    writeFileSync(
      join(migrations, '0001_stations.sql'),
      '-- charge-ops:up\n-- the stations of the network\nCREATE TABLE stations (id int PRIMARY KEY, name text NOT NULL);\n-- charge-ops:down\nDROP TABLE stations;\n',
    )
    const checksum = async () =>
      (
        await sharedPostgres().query<{c: string}>(
          `SELECT checksum AS c FROM charge_ops_migrations WHERE version = '0001'`,
          db,
        )
      )[0].c
    const before = await checksum()
    const killedRepair = await killAt('migrate.repair.before-commit', [
      'migrate',
      'repair',
      '--yes',
      '--json',
      '--dir',
      migrations,
    ])
    expect(killedRepair.actions).toBe(1)
    await sessionGone(killedRepair.pid)
    expect(await checksum()).toBe(before)
    const refused = await cli(up(), env())
    expect(refused.code).toBe(3)
    expect(JSON.parse(refused.stdout).error.code).toBe('MIGRATION_CHANGED')
    const repaired = await cli(['migrate', 'repair', '--yes', '--json', '--dir', migrations], env())
    expect(repaired.code, repaired.stderr).toBe(0)
    expect(JSON.parse(repaired.stdout).actions).toEqual([
      expect.objectContaining({action: 'update-checksum', version: '0001'}),
    ])

    const again = await cli(up(), env())
    expect(again.code, again.stderr).toBe(0)
    expect(await history()).toEqual(['0001', '0002', '0003'])
    expect(await schemaOf(db)).toBe(reference[3])
  }, 180_000)
})
