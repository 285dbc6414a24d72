/**
 * db vacuum / reindex / slow-queries against a real PostgreSQL 15 with pg_stat_statements
 * preloaded (a private cluster: the shared one has no preload).
 */
import pg from 'pg'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'

import {reindex} from '../../src/maintenance/reindex.js'
import {slowQueries} from '../../src/maintenance/slow-queries.js'
import {vacuum} from '../../src/maintenance/vacuum.js'
import {sharedPostgres, startPostgres, type PgCluster} from '../support/index.js'

let cluster: PgCluster
let url: string
const db = 'maint'

async function waitFor<T>(fn: () => Promise<T>, ok: (v: T) => boolean, what: string, timeoutMs = 10_000): Promise<T> {
  const until = Date.now() + timeoutMs
  for (;;) {
    const v = await fn()
    if (ok(v)) return v
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`)
    await new Promise((r) => setTimeout(r, 100))
  }
}

const deadTuples = async (table: string) =>
  Number(
    (
      await cluster.query<{n: string}>(`SELECT n_dead_tup AS n FROM pg_stat_user_tables WHERE relname = '${table}'`, db)
    )[0]?.n ?? 0,
  )

beforeAll(async () => {
  cluster = await startPostgres({
    name: 'maintenance',
    conf: {shared_preload_libraries: 'pg_stat_statements', autovacuum: 'off'},
  })
  url = await cluster.createDatabase(db)
  await cluster.query('CREATE EXTENSION pg_stat_statements', db)
})

afterAll(async () => {
  await cluster?.stop()
})

describe('db vacuum', () => {
  it('picks the table whose rows were mostly deleted and reports what it reclaimed', async () => {
    await cluster.query(
      `CREATE TABLE samples (id int PRIMARY KEY, payload text);
       INSERT INTO samples SELECT g, repeat('x', 200) FROM generate_series(1, 60000) g;
       CREATE TABLE quiet (id int PRIMARY KEY, v text);
       INSERT INTO quiet SELECT g, 'v' FROM generate_series(1, 5000) g;
       ANALYZE samples; ANALYZE quiet;`,
      db,
    )
    await cluster.query('DELETE FROM samples WHERE id > 3000', db)
    await waitFor(
      () => deadTuples('samples'),
      (n) => n >= 57_000,
      'dead tuples in the statistics',
    )

    const plan = await vacuum({databaseUrl: url, dryRun: true})
    expect(plan.tables.map((t) => t.table)).toEqual(['public.samples'])
    expect(plan.tables[0].deadTuples).toBe(57_000)
    expect(plan.tables[0].reason).toMatch(/dead tuples/)

    const progress: string[] = []
    const result = await vacuum({databaseUrl: url, onProgress: (_t, text) => progress.push(text)})
    expect(result.tables).toHaveLength(1)
    const t = result.tables[0]
    expect(t.ok).toBe(true)
    expect(t.deadTuplesAfter).toBe(0)
    // the deleted rows were at the end of the heap: plain VACUUM truncates them away
    expect(t.reclaimedBytes).toBeGreaterThan(5 * 1024 * 1024)
    expect(t.bytesAfter).toBe(t.bytes - t.reclaimedBytes!)
    expect(result.deadTuplesRemoved).toBe(57_000)

    // nothing left to do on a second run
    expect((await vacuum({databaseUrl: url, dryRun: true})).tables).toEqual([])
  })

  it('--full rewrites the table and returns interleaved free space to the OS', async () => {
    await cluster.query(
      `CREATE TABLE sparse (id int PRIMARY KEY, payload text);
       INSERT INTO sparse SELECT g, repeat('y', 300) FROM generate_series(1, 30000) g;
       ANALYZE sparse;`,
      db,
    )
    await cluster.query('DELETE FROM sparse WHERE id % 10 <> 0', db)
    const before = Number((await cluster.query<{b: string}>("SELECT pg_total_relation_size('sparse') AS b", db))[0].b)
    const result = await vacuum({databaseUrl: url, table: 'sparse', full: true, lockTimeout: '2s'})
    expect(result.mode).toBe('full')
    const after = Number((await cluster.query<{b: string}>("SELECT pg_total_relation_size('sparse') AS b", db))[0].b)
    expect(result.tables[0].reclaimedBytes).toBe(before - after)
    expect(after).toBeLessThan(before / 3)
  })

  it('--full gives up within lock_timeout instead of queueing behind a long transaction', async () => {
    const blocker = new pg.Client({connectionString: url})
    await blocker.connect()
    try {
      await blocker.query('BEGIN; SELECT count(*) FROM quiet')
      const result = await vacuum({databaseUrl: url, table: 'quiet', full: true, lockTimeout: '300ms'})
      expect(result.tables[0].ok).toBe(false)
      expect(result.tables[0].error).toMatch(/lock_timeout 300ms/)
    } finally {
      await blocker.query('ROLLBACK').catch(() => {})
      await blocker.end()
    }
  })

  it('an unknown table is a usage error', async () => {
    await expect(vacuum({databaseUrl: url, table: 'nope'})).rejects.toMatchObject({
      exitCode: 2,
      code: 'NO_SUCH_RELATION',
    })
  })
})

describe('db reindex', () => {
  it('fixes the invalid index a cancelled CREATE INDEX CONCURRENTLY left, and drops _ccnew leftovers', async () => {
    await cluster.query(
      `CREATE TABLE readings (id int PRIMARY KEY, session int, v int);
       INSERT INTO readings SELECT g, g % 100, g % 7 FROM generate_series(1, 20000) g;`,
      db,
    )
    // 1. a cancelled CREATE INDEX CONCURRENTLY: it waits for the open writer, we cancel it
    const writer = new pg.Client({connectionString: url})
    const builder = new pg.Client({connectionString: url})
    await writer.connect()
    await builder.connect()
    try {
      await writer.query('BEGIN; INSERT INTO readings VALUES (100001, 1, 1)')
      const builderPid = (await builder.query<{pid: number}>('SELECT pg_backend_pid() AS pid')).rows[0].pid
      const build = builder.query('CREATE INDEX CONCURRENTLY readings_session_idx ON readings (session)').then(
        () => 'finished',
        (e: {code?: string}) => e.code,
      )
      await waitFor(
        () =>
          cluster.query<{w: string | null}>(
            `SELECT wait_event_type AS w FROM pg_stat_activity WHERE pid = ${builderPid}`,
            db,
          ),
        (rows) => rows[0]?.w === 'Lock',
        'CREATE INDEX CONCURRENTLY to wait',
      )
      await cluster.query(`SELECT pg_cancel_backend(${builderPid})`, db)
      expect(await build).toBe('57014')
    } finally {
      await writer.query('ROLLBACK').catch(() => {})
      await writer.end()
      await builder.end()
    }
    // 2. a failed REINDEX CONCURRENTLY of an invalid unique index leaves readings_v_key_ccnew
    await cluster.query('CREATE UNIQUE INDEX CONCURRENTLY readings_v_key ON readings (v)', db).catch(() => {})
    await cluster.query('REINDEX INDEX CONCURRENTLY readings_v_key', db).catch(() => {})
    const state = async () =>
      Object.fromEntries(
        (
          await cluster.query<{name: string; valid: boolean}>(
            "SELECT indexrelid::regclass::text AS name, indisvalid AS valid FROM pg_index WHERE indrelid = 'readings'::regclass",
            db,
          )
        ).map((r) => [r.name, r.valid]),
      )
    expect(await state()).toEqual({
      readings_pkey: true,
      readings_session_idx: false,
      readings_v_key: false,
      readings_v_key_ccnew: false,
    })

    const plan = await reindex({databaseUrl: url, table: 'readings', dryRun: true})
    expect(plan.items.map((i) => [i.name, i.action])).toEqual([
      ['readings_v_key_ccnew', 'drop-leftover'],
      ['readings_session_idx', 'reindex'],
      ['readings_v_key', 'reindex'],
    ])

    // while duplicates remain the unique index cannot be rebuilt: reported, and its new leftover removed
    const first = await reindex({databaseUrl: url, table: 'readings'})
    expect(first.concurrently).toBe(true)
    const byName = Object.fromEntries(first.items.map((i) => [i.name, i]))
    expect(byName.readings_v_key_ccnew.ok).toBe(true)
    expect(byName.readings_session_idx.ok).toBe(true)
    expect(byName.readings_v_key.ok).toBe(false)
    expect(byName.readings_v_key.error).toMatch(/remove the duplicate rows/)
    expect(await state()).toEqual({readings_pkey: true, readings_session_idx: true, readings_v_key: false})

    await cluster.query('DELETE FROM readings WHERE id > 7', db)
    const second = await reindex({databaseUrl: url, table: 'readings'})
    expect(second.items.map((i) => [i.name, i.ok])).toEqual([['readings_v_key', true]])
    expect(await state()).toEqual({readings_pkey: true, readings_session_idx: true, readings_v_key: true})
    expect((await reindex({databaseUrl: url, table: 'readings', dryRun: true})).items).toEqual([])
  })
})

describe('db slow-queries', () => {
  it('ranks recorded statements by mean time and by calls, masks passwords, resets', async () => {
    await cluster.query('SELECT pg_stat_statements_reset()', db)
    for (let i = 0; i < 3; i++) await cluster.query('SELECT pg_sleep(0.15)', db)
    const c = new pg.Client({connectionString: url})
    await c.connect()
    for (let i = 0; i < 40; i++) await c.query('SELECT count(*) FROM readings WHERE session = $1', [i])
    await c.query("CREATE ROLE slowq_probe LOGIN PASSWORD 'Sup3rSecretValue'")
    await c.end()

    const byMean = await slowQueries({databaseUrl: url, order: 'mean', limit: 5})
    expect(byMean.queries[0].query).toContain('pg_sleep')
    expect(byMean.queries[0].calls).toBe(3)
    expect(byMean.queries[0].meanMs).toBeGreaterThan(140)
    const byCalls = await slowQueries({databaseUrl: url, order: 'calls', limit: 5})
    expect(byCalls.queries[0].query).toMatch(/FROM readings WHERE session = \$1/)
    expect(byCalls.queries[0].calls).toBe(40)
    const all = await slowQueries({databaseUrl: url, order: 'total', limit: 100, reset: true})
    expect(JSON.stringify(all)).not.toContain('Sup3rSecretValue')
    expect(all.queries.some((q) => /CREATE ROLE slowq_probe LOGIN PASSWORD '\*\*\*\*\*\*'/.test(q.query))).toBe(true)
    expect(all.reset).toBe(true)
    const after = await slowQueries({databaseUrl: url, order: 'calls', limit: 100})
    expect(after.queries.find((q) => q.query.includes('pg_sleep'))).toBeUndefined()
  })

  it('says exactly how to enable pg_stat_statements when it is missing', async () => {
    const plain = await sharedPostgres().createDatabase()
    const error = await slowQueries({databaseUrl: plain}).catch((e: unknown) => e)
    expect(error).toMatchObject({exitCode: 2, code: 'PG_STAT_STATEMENTS_MISSING'})
    const hint = (error as {hint: string}).hint
    expect(hint).toContain("shared_preload_libraries = 'pg_stat_statements'")
    expect(hint).toContain('restart PostgreSQL')
    expect(hint).toContain('CREATE EXTENSION IF NOT EXISTS pg_stat_statements')
  })

  it("works for the service's own unprivileged role, which may not read shared_preload_libraries", async () => {
    await cluster.query(`DROP ROLE IF EXISTS slowq_app; CREATE ROLE slowq_app LOGIN PASSWORD 'app-pw'`, db)
    const asApp = new URL(url)
    asApp.username = 'slowq_app'
    asApp.password = 'app-pw'
    const c = new pg.Client({connectionString: asApp.toString()})
    await c.connect()
    await c.query('SELECT 42 AS answer_for_slowq')
    await c.end()
    const result = await slowQueries({databaseUrl: asApp.toString(), order: 'calls', limit: 100})
    expect(result.queries.some((q) => q.query.includes('answer_for_slowq'))).toBe(true)

    // and without the extension, that role still gets the steps rather than a permission error
    const shared = sharedPostgres()
    const plain = await shared.createDatabase()
    await shared.query(`DROP ROLE IF EXISTS slowq_app2; CREATE ROLE slowq_app2 LOGIN PASSWORD 'app-pw'`)
    const weak = new URL(plain)
    weak.username = 'slowq_app2'
    weak.password = 'app-pw'
    const error = await slowQueries({databaseUrl: weak.toString()}).catch((e: unknown) => e)
    expect(error).toMatchObject({exitCode: 2, code: 'PG_STAT_STATEMENTS_MISSING'})
    expect((error as {hint: string}).hint).toContain("shared_preload_libraries = 'pg_stat_statements'")
  })
})
