import {cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync} from 'node:fs'
import {tmpdir} from 'node:os'
import {join} from 'node:path'

import pg from 'pg'
import {afterAll, describe, expect, it} from 'vitest'

import {
  baselineMigrations,
  migrateDown,
  migrateUp,
  migrationHistory,
  migrationStatus,
  repairMigrations,
  validateMigrations,
} from '../../src/migrate/index.js'
import {MIGRATION_LOCK_KEY} from '../../src/migrate/lock.js'
import {sharedPostgres} from '../support/index.js'

const FIXTURES = 'test/fixtures/migrations'
const temps: string[] = []
afterAll(() => temps.forEach((d) => rmSync(d, {recursive: true, force: true})))

function fixtureCopy(name: string): string {
  const dir = mkdtempSync(join(tmpdir(), 'charge-ops-migrate-'))
  temps.push(dir)
  cpSync(join(FIXTURES, name), dir, {recursive: true})
  return dir
}

function dirWith(files: Record<string, string>): string {
  const dir = mkdtempSync(join(tmpdir(), 'charge-ops-migrate-'))
  temps.push(dir)
  for (const [name, text] of Object.entries(files)) writeFileSync(join(dir, name), text)
  return dir
}

async function withDb<T>(url: string, fn: (c: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({connectionString: url})
  await client.connect()
  try {
    return await fn(client)
  } finally {
    await client.end()
  }
}

const rowsOf = (url: string, sql: string, params: unknown[] = []) =>
  withDb(url, async (c) => (await c.query(sql, params)).rows)

/** Everything that makes up the public schema: tables, columns, constraints, indexes, functions. */
async function schemaSnapshot(url: string) {
  return withDb(url, async (c) => {
    const q = async (sql: string) => (await c.query(sql)).rows
    return {
      columns: await q(
        `SELECT table_name, column_name, data_type, is_nullable, column_default FROM information_schema.columns WHERE table_schema = 'public' AND table_name <> 'charge_ops_migrations' ORDER BY 1, 2`,
      ),
      constraints: await q(
        `SELECT conrelid::regclass::text AS t, conname, pg_get_constraintdef(oid) AS def FROM pg_constraint WHERE connamespace = 'public'::regnamespace ORDER BY 1, 2`,
      ),
      indexes: await q(
        `SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = 'public' AND tablename <> 'charge_ops_migrations' ORDER BY 1`,
      ),
      functions: await q(
        `SELECT proname, pg_get_functiondef(oid) AS def FROM pg_proc WHERE pronamespace = 'public'::regnamespace ORDER BY 1`,
      ),
    }
  })
}

describe('migrate engine', () => {
  it('applies every migration once, records version, checksum, time and who, and reports the state', async () => {
    const url = await sharedPostgres().createDatabase()
    const dir = `${FIXTURES}/basic`
    const result = await migrateUp({databaseUrl: url, migrationsDir: dir, appliedBy: 'ci@test'})
    expect(result.applied.map((a) => a.version)).toEqual(['0001', '0002', '0003'])
    expect(result.current).toBe('0003')
    const history = await migrationHistory({databaseUrl: url})
    expect(history.map((h) => [h.version, h.name, h.appliedBy, h.success])).toEqual([
      ['0001', 'initial', 'ci@test', true],
      ['0002', 'add_findings', 'ci@test', true],
      ['0003', 'index_sessions', 'ci@test', true],
    ])
    const {createHash} = await import('node:crypto')
    expect(history[0].checksum).toBe(
      createHash('sha256')
        .update(readFileSync(`${dir}/0001_initial.sql`, 'utf8'))
        .digest('hex'),
    )
    // the dollar-quoted function body with semicolons arrived whole
    const [{e}] = await rowsOf(url, `SELECT session_energy(1) AS e`)
    expect(e).toBe(0)
    const again = await migrateUp({databaseUrl: url, migrationsDir: dir})
    expect(again.applied).toEqual([])
    const status = await migrationStatus({databaseUrl: url, migrationsDir: dir})
    expect(status).toMatchObject({current: '0003', pending: 0, drift: 0})
    expect(status.migrations.map((m) => m.state)).toEqual(['applied', 'applied', 'applied'])
  })

  it('two runners at once: each migration is applied exactly once, the other waits', async () => {
    const url = await sharedPostgres().createDatabase()
    const dir = dirWith({
      '0001_slow.sql':
        '-- charge-ops:up\nCREATE TABLE t1 (id int);\nSELECT pg_sleep(0.5);\n-- charge-ops:down\nDROP TABLE t1;\n',
      '0002_counter.sql':
        '-- charge-ops:up\nCREATE TABLE t2 (id int);\nINSERT INTO t2 VALUES (1);\n-- charge-ops:down\nDROP TABLE t2;\n',
    })
    const results = await Promise.all([
      migrateUp({databaseUrl: url, migrationsDir: dir, lockWait: 20_000}),
      migrateUp({databaseUrl: url, migrationsDir: dir, lockWait: 20_000}),
    ])
    expect(results.map((r) => r.applied.length).sort()).toEqual([0, 2])
    expect(await rowsOf(url, 'SELECT count(*)::int AS n FROM t2')).toEqual([{n: 1}])
    expect(await rowsOf(url, 'SELECT version FROM charge_ops_migrations ORDER BY 1')).toEqual([
      {version: '0001'},
      {version: '0002'},
    ])
  })

  it('a held lock fails at once with exit 4 naming the holder; --lock-wait gives up after its time', async () => {
    const url = await sharedPostgres().createDatabase()
    await withDb(url, async (holder) => {
      await holder.query(`SET application_name = 'other-runner'`)
      await holder.query('SELECT pg_advisory_lock($1::bigint)', [MIGRATION_LOCK_KEY])
      const [{pid}] = (await holder.query('SELECT pg_backend_pid() AS pid')).rows
      const error = await migrateUp({databaseUrl: url, migrationsDir: `${FIXTURES}/basic`}).catch((e) => e)
      expect(error).toMatchObject({code: 'LOCK_HELD', exitCode: 4})
      expect(error.message).toContain(`pid ${pid}`)
      expect(error.message).toContain('other-runner')
      const t0 = Date.now()
      await expect(
        migrateUp({databaseUrl: url, migrationsDir: `${FIXTURES}/basic`, lockWait: 600}),
      ).rejects.toMatchObject({code: 'LOCK_HELD'})
      expect(Date.now() - t0).toBeGreaterThanOrEqual(550)
      expect(await rowsOf(url, `SELECT to_regclass('charge_ops_migrations') AS t`)).toEqual([{t: null}])
    })
  })

  it('a failing migration leaves no partial change and names the file, line and statement', async () => {
    const url = await sharedPostgres().createDatabase()
    const error = await migrateUp({databaseUrl: url, migrationsDir: `${FIXTURES}/failing`}).catch((e) => e)
    expect(error).toMatchObject({code: 'MIGRATION_FAILED', exitCode: 6})
    expect(error.message).toContain('0002_half_broken.sql')
    expect(error.message).toContain('at line 7')
    expect(error.message).toContain('no_such_table')
    expect(error.details).toMatchObject({version: '0002', line: 7, sqlState: '42P01', rolledBack: true})
    // 0001 stays (its own transaction); nothing of 0002: no table, no column, no row
    expect(await rowsOf(url, `SELECT to_regclass('vehicles') AS t`)).toEqual([{t: null}])
    expect(
      await rowsOf(
        url,
        `SELECT column_name FROM information_schema.columns WHERE table_name = 'charging_sessions' AND column_name = 'model'`,
      ),
    ).toEqual([])
    expect(await rowsOf(url, 'SELECT version FROM charge_ops_migrations')).toEqual([{version: '0001'}])
  })

  it('a syntax error is located by its position inside a multi-line statement', async () => {
    const url = await sharedPostgres().createDatabase()
    const dir = dirWith({
      '0001_typo.sql':
        '-- header\n-- charge-ops:up\nCREATE TABLE a (id int);\nCREATE TABLE b (\n  id int,\n  name txet\n);\n',
    })
    const error = await migrateUp({databaseUrl: url, migrationsDir: dir}).catch((e) => e)
    expect(error.details).toMatchObject({line: 6, rolledBack: true})
    expect(await rowsOf(url, `SELECT to_regclass('a') AS t`)).toEqual([{t: null}])
  })

  it('an edited applied migration is detected; up refuses (exit 3); repair records the new checksum', async () => {
    const url = await sharedPostgres().createDatabase()
    const dir = fixtureCopy('basic')
    await migrateUp({databaseUrl: url, migrationsDir: dir, to: '0002'})
    writeFileSync(
      join(dir, '0002_add_findings.sql'),
      readFileSync(join(dir, '0002_add_findings.sql'), 'utf8').replace('numeric(10, 3)', 'numeric(12, 3)'),
    )
    const validation = await validateMigrations({databaseUrl: url, migrationsDir: dir})
    expect(validation.ok).toBe(false)
    expect(validation.problems.map((p) => [p.kind, p.version])).toEqual([['changed', '0002']])
    await expect(migrateUp({databaseUrl: url, migrationsDir: dir})).rejects.toMatchObject({
      code: 'MIGRATION_CHANGED',
      exitCode: 3,
    })
    const status = await migrationStatus({databaseUrl: url, migrationsDir: dir})
    expect(status).toMatchObject({drift: 1, pending: 1})
    // CRLF line endings alone are not an edit
    writeFileSync(
      join(dir, '0001_initial.sql'),
      readFileSync(join(dir, '0001_initial.sql'), 'utf8').replaceAll('\n', '\r\n'),
    )
    const repaired = await repairMigrations({databaseUrl: url, migrationsDir: dir})
    expect(repaired.actions.map((a) => [a.action, a.version])).toEqual([['update-checksum', '0002']])
    expect((await validateMigrations({databaseUrl: url, migrationsDir: dir})).ok).toBe(true)
    // a missing applied file is reported too
    rmSync(join(dir, '0001_initial.sql'))
    const missing = await validateMigrations({databaseUrl: url, migrationsDir: dir})
    expect(missing.problems.map((p) => [p.kind, p.version])).toEqual([['missing', '0001']])
  })

  it('runs a no-transaction migration (CREATE INDEX CONCURRENTLY) and records it', async () => {
    const url = await sharedPostgres().createDatabase()
    await migrateUp({databaseUrl: url, migrationsDir: `${FIXTURES}/basic`})
    const indexes = await rowsOf(
      url,
      `SELECT c.relname, i.indisvalid FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid WHERE c.relname IN ('charging_sessions_vehicle_idx', 'findings_session_idx') ORDER BY 1`,
    )
    expect(indexes).toEqual([
      {relname: 'charging_sessions_vehicle_idx', indisvalid: true},
      {relname: 'findings_session_idx', indisvalid: true},
    ])
    expect(await rowsOf(url, `SELECT success FROM charge_ops_migrations WHERE version = '0003'`)).toEqual([
      {success: true},
    ])
  })

  it('a failed no-transaction migration is recorded as failed; up refuses until repair', async () => {
    const url = await sharedPostgres().createDatabase()
    const files = {
      '0001_t.sql':
        '-- charge-ops:up\nCREATE TABLE t (id int);\nINSERT INTO t VALUES (1), (1);\n-- charge-ops:down\nDROP TABLE t;\n',
      '0002_idx.sql':
        '-- charge-ops:no-transaction\n-- charge-ops:up\nCREATE INDEX CONCURRENTLY IF NOT EXISTS t_plain ON t (id);\nCREATE UNIQUE INDEX CONCURRENTLY t_uniq ON t (id);\n-- charge-ops:down\nDROP INDEX CONCURRENTLY IF EXISTS t_uniq;\n',
    }
    const dir = dirWith(files)
    const error = await migrateUp({databaseUrl: url, migrationsDir: dir}).catch((e) => e)
    expect(error).toMatchObject({code: 'MIGRATION_FAILED_PARTIAL', exitCode: 1})
    expect(error.details).toMatchObject({line: 4, rolledBack: false})
    expect(await rowsOf(url, `SELECT version, success FROM charge_ops_migrations ORDER BY 1`)).toEqual([
      {version: '0001', success: true},
      {version: '0002', success: false},
    ])
    await expect(migrateUp({databaseUrl: url, migrationsDir: dir})).rejects.toMatchObject({
      code: 'MIGRATION_FAILED',
      exitCode: 3,
    })
    // the operator fixes the data and the invalid index, then repairs and reruns
    await rowsOf(url, `DELETE FROM t WHERE ctid <> (SELECT min(ctid) FROM t)`)
    await rowsOf(url, 'DROP INDEX t_uniq')
    expect((await repairMigrations({databaseUrl: url, migrationsDir: dir})).actions.map((a) => a.action)).toEqual([
      'remove-failed',
    ])
    const rerun = await migrateUp({databaseUrl: url, migrationsDir: dir})
    expect(rerun.applied.map((a) => a.version)).toEqual(['0002'])
    expect(await rowsOf(url, `SELECT indisvalid FROM pg_index WHERE indexrelid = 't_uniq'::regclass`)).toEqual([
      {indisvalid: true},
    ])
  })

  it('down then up returns the same schema', async () => {
    const url = await sharedPostgres().createDatabase()
    const dir = `${FIXTURES}/basic`
    await migrateUp({databaseUrl: url, migrationsDir: dir})
    const before = await schemaSnapshot(url)
    expect(before.columns.length).toBeGreaterThan(5)
    const one = await migrateDown({databaseUrl: url, migrationsDir: dir})
    expect(one.applied.map((a) => a.version)).toEqual(['0003'])
    expect(one.current).toBe('0002')
    const all = await migrateDown({databaseUrl: url, migrationsDir: dir, to: '0'})
    expect(all.applied.map((a) => a.version)).toEqual(['0002', '0001'])
    expect((await schemaSnapshot(url)).columns).toEqual([])
    await migrateUp({databaseUrl: url, migrationsDir: dir})
    expect(await schemaSnapshot(url)).toEqual(before)
    const twoSteps = await migrateDown({databaseUrl: url, migrationsDir: dir, steps: 2})
    expect(twoSteps.applied.map((a) => a.version)).toEqual(['0003', '0002'])
    await migrateUp({databaseUrl: url, migrationsDir: dir})
    expect(await schemaSnapshot(url)).toEqual(before)
  })

  it('refuses to revert an irreversible migration, and reverts nothing of the batch', async () => {
    const url = await sharedPostgres().createDatabase()
    const dir = dirWith({
      '0001_a.sql': '-- charge-ops:up\nCREATE TABLE a (id int);\n',
      '0002_b.sql': '-- charge-ops:up\nCREATE TABLE b (id int);\n-- charge-ops:down\nDROP TABLE b;\n',
    })
    await migrateUp({databaseUrl: url, migrationsDir: dir})
    await expect(migrateDown({databaseUrl: url, migrationsDir: dir, to: '0'})).rejects.toMatchObject({
      code: 'MIGRATION_IRREVERSIBLE',
      exitCode: 2,
    })
    expect(await rowsOf(url, `SELECT to_regclass('b')::text AS t`)).toEqual([{t: 'b'}])
  })

  it('dry run shows the plan and SQL and changes nothing', async () => {
    const url = await sharedPostgres().createDatabase()
    const result = await migrateUp({databaseUrl: url, migrationsDir: `${FIXTURES}/basic`, dryRun: true, to: '0002'})
    expect(result.plan.map((p) => p.version)).toEqual(['0001', '0002'])
    expect(result.plan[0].sql).toContain('CREATE TABLE charging_sessions')
    expect(result.plan[1].lockTimeoutMs).toBe(5000)
    expect(result.applied).toEqual([])
    expect(await rowsOf(url, `SELECT count(*)::int AS n FROM pg_tables WHERE schemaname = 'public'`)).toEqual([{n: 0}])
  })

  it('lock_timeout set per migration stops a migration stuck behind another session', async () => {
    const url = await sharedPostgres().createDatabase()
    const dir = dirWith({
      '0001_t.sql': '-- charge-ops:up\nCREATE TABLE busy (id int);\n-- charge-ops:down\nDROP TABLE busy;\n',
      '0002_alter.sql':
        '-- charge-ops:lock-timeout 300ms\n-- charge-ops:up\nALTER TABLE busy ADD COLUMN note text;\n-- charge-ops:down\nALTER TABLE busy DROP COLUMN note;\n',
    })
    await migrateUp({databaseUrl: url, migrationsDir: dir, to: '0001'})
    await withDb(url, async (other) => {
      await other.query('BEGIN')
      await other.query('LOCK TABLE busy IN ACCESS SHARE MODE')
      const t0 = Date.now()
      const error = await migrateUp({databaseUrl: url, migrationsDir: dir}).catch((e) => e)
      expect(Date.now() - t0).toBeLessThan(5000)
      expect(error.details).toMatchObject({sqlState: '55P03', line: 3})
      expect(error.hint).toContain('lock_timeout')
      await other.query('ROLLBACK')
    })
    expect((await migrateUp({databaseUrl: url, migrationsDir: dir})).applied.map((a) => a.version)).toEqual(['0002'])
  })

  it("an extension's objects (pg_stat_statements' views) do not make the schema look foreign", async () => {
    const url = await sharedPostgres().createDatabase()
    await withDb(url, (c) => c.query('CREATE EXTENSION pg_stat_statements'))
    const up = await migrateUp({databaseUrl: url, migrationsDir: `${FIXTURES}/basic`})
    expect(up.applied.map((a) => a.version)).toEqual(['0001', '0002', '0003'])
  })

  it('baseline marks an existing schema; up then runs only later migrations', async () => {
    const url = await sharedPostgres().createDatabase()
    const dir = `${FIXTURES}/basic`
    // a schema built outside charge-ops: migrate refuses to run over it
    const upSql = (file: string) => readFileSync(join(dir, file), 'utf8').split('-- charge-ops:down')[0]
    await withDb(url, async (c) => {
      await c.query(upSql('0001_initial.sql'))
      await c.query(upSql('0002_add_findings.sql'))
    })
    await expect(migrateUp({databaseUrl: url, migrationsDir: dir})).rejects.toMatchObject({
      code: 'SCHEMA_NOT_EMPTY',
      exitCode: 3,
    })
    const baseline = await baselineMigrations({databaseUrl: url, migrationsDir: dir, version: '0002'})
    expect(baseline.marked.map((m) => m.version)).toEqual(['0001', '0002'])
    const up = await migrateUp({databaseUrl: url, migrationsDir: dir})
    expect(up.applied.map((a) => a.version)).toEqual(['0003'])
    const status = await migrationStatus({databaseUrl: url, migrationsDir: dir})
    expect(status.migrations.map((m) => m.state)).toEqual(['baseline', 'baseline', 'applied'])
    await expect(baselineMigrations({databaseUrl: url, migrationsDir: dir, version: '0002'})).rejects.toMatchObject({
      code: 'HISTORY_NOT_EMPTY',
    })
  })

  it('applies the bundled service migrations and reverts them all', async () => {
    const url = await sharedPostgres().createDatabase()
    const up = await migrateUp({databaseUrl: url, migrationsDir: 'service/migrations'})
    expect(up.applied.length).toBeGreaterThan(0)
    expect(up.pending).toBe(0)
    const down = await migrateDown({databaseUrl: url, migrationsDir: 'service/migrations', to: '0'})
    expect(down.applied.map((a) => a.version)).toEqual(up.applied.map((a) => a.version).reverse())
    expect(await rowsOf(url, `SELECT tablename FROM pg_tables WHERE schemaname = 'public'`)).toEqual([
      {tablename: 'charge_ops_migrations'},
    ])
  })
})

describe('migrate engine: failures at COMMIT', () => {
  it('a deferred constraint failing at COMMIT is reported as a rolled-back migration (exit 6)', async () => {
    const url = await sharedPostgres().createDatabase()
    const dir = dirWith({
      '0001_deferred.sql':
        '-- charge-ops:up\nCREATE TABLE p (id int PRIMARY KEY);\nCREATE TABLE c (p int REFERENCES p (id) DEFERRABLE INITIALLY DEFERRED);\nINSERT INTO c VALUES (42);\n-- charge-ops:down\nDROP TABLE c;\nDROP TABLE p;\n',
    })
    const error = await migrateUp({databaseUrl: url, migrationsDir: dir}).catch((e) => e)
    expect(error).toMatchObject({code: 'MIGRATION_FAILED', exitCode: 6})
    expect(error.details).toMatchObject({statement: 'COMMIT', sqlState: '23503', rolledBack: true})
    expect(await rowsOf(url, `SELECT to_regclass('p') AS t`)).toEqual([{t: null}])
  })
})
