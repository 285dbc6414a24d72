/**
 * The two capacity findings that paged someone at night, against real PostgreSQL:
 *  - growth from two runs a minute apart around a bulk load ("17.1 GiB/day", CRITICAL): growth is
 *    now fitted over hours of kept history and says the window; minutes of history claim nothing;
 *  - a table never vacuumed, half of it dead rows, was `OK` ("never vacuumed"): now critical.
 */
import {mkdirSync, mkdtempSync, rmSync, writeFileSync} from 'node:fs'
import {tmpdir} from 'node:os'
import {join} from 'node:path'

import pg from 'pg'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'

import {runCapacity} from '../../src/capacity/index.js'
import {HISTORY_FILE} from '../../src/capacity/history.js'
import {renderPrometheus, type Report} from '../../src/capacity/render.js'
import {loadSettings, type Settings} from '../../src/config/settings.js'
import {silentLogger} from '../../src/output/logger.js'
import {sharedPostgres, waitUntil} from '../support/index.js'

let dir: string
let url: string
let settings: Settings
const find = (r: Report, id: string) => r.checks.find((c) => c.id === id)
const capacity = (recordHistory = false) =>
  runCapacity({settings, logger: silentLogger, components: ['postgresql'], recordHistory})
const writeHistory = (samples: {at: string; databaseBytes: number}[]) =>
  writeFileSync(join(dir, 'state', HISTORY_FILE), JSON.stringify({version: 1, samples}))

/** One statement per call: VACUUM refuses to run inside the implicit transaction of a multi-statement query. */
async function sql(...statements: string[]): Promise<void> {
  const client = new pg.Client({connectionString: url})
  await client.connect()
  try {
    for (const s of statements) await client.query(s)
    // make this backend's counters visible to the checks now, not at its next periodic flush
    await client.query('SELECT pg_stat_force_next_flush()')
  } finally {
    await client.end()
  }
}

beforeAll(async () => {
  url = await sharedPostgres().createDatabase()
  dir = mkdtempSync(join(tmpdir(), 'capacity-growth-'))
  mkdirSync(join(dir, 'state'))
  writeFileSync(join(dir, 'charge-ops.yaml'), 'stack: growth\n')
  settings = loadSettings({cwd: dir, env: {DATABASE_URL: url, CHARGE_OPS_STATE_DIR: join(dir, 'state')}})
})

afterAll(() => {
  if (dir) rmSync(dir, {recursive: true, force: true})
})

describe('pg.days_until_full: growth from a window that means something', () => {
  it('two runs a minute apart around a bulk load claim no growth, and say what is missing', async () => {
    const before = find(await capacity(true), 'pg.database_size_bytes')!.value!
    // the next run a minute "later", after a bulk load: the sample just written is 60 s old
    writeHistory([{at: new Date(Date.now() - 60_000).toISOString(), databaseBytes: before}])
    await sql(
      'CREATE TABLE bulk AS SELECT g AS id, repeat(md5(g::text), 8) AS payload FROM generate_series(1, 40000) g',
    )
    const report = await capacity()
    const size = find(report, 'pg.database_size_bytes')!.value!
    expect(size - before).toBeGreaterThan(5 * 1024 ** 2)
    expect(find(report, 'pg.growth_bytes_per_day')).toMatchObject({
      value: null,
      message: expect.stringMatching(/needs capacity history spanning 6 h to fit growth; the kept samples span 0 h/),
    })
    expect(find(report, 'pg.days_until_full')).toMatchObject({status: 'ok', value: null})
  })

  it('a week of kept history: the fit spreads the load over the window and names it', async () => {
    const size = find(await capacity(), 'pg.database_size_bytes')!.value!
    const day = 86_400_000
    // daily samples: the database grew 1 MiB a day, then the bulk load landed just now
    writeHistory(
      Array.from({length: 7}, (_, i) => ({
        at: new Date(Date.now() - (7 - i) * day + 3_600_000).toISOString(),
        databaseBytes: size - 12 * 1024 ** 2 + i * 1024 ** 2,
      })),
    )
    const report = await capacity()
    const growth = find(report, 'pg.growth_bytes_per_day')!
    expect(growth.message).toMatch(/\/day, fitted over 7\.0d \(8 points since /)
    expect(growth.value).toBeGreaterThan(1024 ** 2)
    expect(growth.value).toBeLessThan(5 * 1024 ** 2)
    expect(find(report, 'pg.growth_window_seconds')!.value).toBeGreaterThan(6.9 * 86_400)
    const full = find(report, 'pg.days_until_full')!
    expect(full.message).toMatch(/free at .*\/day, fitted over 7\.0d/)
    expect(full.value).toBeGreaterThan(30)
    expect(full.status).toBe('ok')
    const prom = renderPrometheus(report)
    expect(prom).toMatch(/^charge_ops_pg_growth_window_seconds 6\d{5}$/m)
    expect(prom).toMatch(/^charge_ops_pg_data_disk_full_in_seconds \d+/m)
  })
})

type Row = {table: string; status: string; never: boolean; dead: number}
const tableRow = async (table: string) => {
  const c = find(await capacity(), 'pg.vacuum_age_days')!
  return {check: c, row: (c.details as {tables: Row[]} | undefined)?.tables.find((t) => t.table === table)}
}

describe('pg.vacuum_age_days: a never-vacuumed table full of dead rows', () => {
  it('is critical, naming the dead rows; after VACUUM it is ok', async () => {
    // autovacuum off for this table only, so "never vacuumed" stays true while the test looks
    await sql(
      'CREATE TABLE never_vacuumed (id int, v text) WITH (autovacuum_enabled = false)',
      "INSERT INTO never_vacuumed SELECT g, 'x' FROM generate_series(1, 100000) g",
      'DELETE FROM never_vacuumed WHERE id <= 60000',
    )
    let seen: Awaited<ReturnType<typeof tableRow>> | undefined
    await waitUntil(async () => (seen = await tableRow('public.never_vacuumed')).row?.dead === 60000, {
      timeoutMs: 20_000,
      intervalMs: 250,
      what: 'the dead rows in pg_stat_user_tables',
    })
    expect(seen!.row).toMatchObject({status: 'critical', never: true})
    expect(seen!.check).toMatchObject({
      status: 'critical',
      message: expect.stringMatching(/^public\.never_vacuumed: never vacuumed.*60000 dead, .*60 % of its rows dead/),
    })
    expect(seen!.check.remedy).toMatch(/charge-ops db vacuum/)

    await sql('VACUUM never_vacuumed')
    await waitUntil(async () => (await tableRow('public.never_vacuumed')).row?.never === false, {
      timeoutMs: 20_000,
      intervalMs: 250,
      what: 'the vacuum in pg_stat_user_tables',
    })
    expect((await tableRow('public.never_vacuumed')).check.status).toBe('ok')
  })

  it('below autovacuum trigger (50 + 20 % of live rows) a never-vacuumed table stays ok', async () => {
    await sql(
      'CREATE TABLE lightly (id int) WITH (autovacuum_enabled = false)',
      'INSERT INTO lightly SELECT generate_series(1, 100000)',
      'DELETE FROM lightly WHERE id <= 1500',
    )
    let row: Row | undefined
    await waitUntil(async () => (row = (await tableRow('public.lightly')).row)?.dead === 1500, {
      timeoutMs: 20_000,
      intervalMs: 250,
      what: 'the dead rows of public.lightly',
    })
    expect(row).toMatchObject({status: 'ok', never: true})
  })
})
