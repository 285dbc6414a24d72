#!/usr/bin/env node
// bench/capacity (issue 6): `capacity` on a database with 2,000 tables and 6,000 indexes finishes in
// ≤ 2 s, and no check issues a query per table. Starts a private PostgreSQL 15 (test/support),
// creates the tables in one DO block, runs the check collection in-process (PostgreSQL checks and
// the whole stack as configured) and through the built CLI, and prints wall time vs the budget and
// the number of queries issued — the same on an empty database and on 2,000 tables, or a check
// would be querying per table. Usage: npm run build && node --import tsx bench/capacity.mjs [--tables 2000] [--runs 3]
import {spawnSync} from 'node:child_process'
import {existsSync, mkdtempSync, rmSync, writeFileSync} from 'node:fs'
import {tmpdir} from 'node:os'
import {join} from 'node:path'

const arg = (name, dflt) => (process.argv.includes(name) ? Number(process.argv[process.argv.indexOf(name) + 1]) : dflt)
const TABLES = arg('--tables', 2000)
const RUNS = arg('--runs', 3)
const BUDGET_MS = 2000

const {startPostgres} = await import('../test/support/postgres.ts')
const {runCapacity} = await import('../src/capacity/index.ts')
const {loadSettings} = await import('../src/config/settings.ts')
const {silentLogger} = await import('../src/output/logger.ts')

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]
const pg = await startPostgres({name: 'bench-capacity', conf: {max_locks_per_transaction: '256'}})
const dir = mkdtempSync(join(tmpdir(), 'bench-capacity-'))
try {
  const emptyUrl = await pg.createDatabase('empty')
  const url = await pg.createDatabase('wide')
  const t0 = performance.now()
  await pg.query(
    `DO $$ BEGIN
       FOR i IN 1..${TABLES} LOOP
         EXECUTE format('CREATE TABLE t_%s (id bigserial PRIMARY KEY, session_id int, recorded_at timestamptz, v double precision)', i);
         EXECUTE format('CREATE INDEX t_%s_session_idx ON t_%s (session_id)', i, i);
         EXECUTE format('CREATE INDEX t_%s_recorded_idx ON t_%s (recorded_at)', i, i);
       END LOOP;
     END $$`,
    'wide',
  )
  await pg.query('INSERT INTO t_1 (session_id, recorded_at, v) SELECT g % 50, now(), random() FROM generate_series(1, 50000) g; ANALYZE', 'wide')
  const counts = (await pg.query("SELECT (SELECT count(*) FROM pg_class WHERE relkind = 'r' AND relnamespace = 'public'::regnamespace) AS tables, (SELECT count(*) FROM pg_class WHERE relkind = 'i' AND relnamespace = 'public'::regnamespace) AS indexes", 'wide'))[0]
  console.log(`setup: ${counts.tables} tables, ${counts.indexes} indexes in ${((performance.now() - t0) / 1000).toFixed(1)} s`)

  writeFileSync(join(dir, 'charge-ops.yaml'), 'stack: bench\n')
  const settingsFor = (databaseUrl) => loadSettings({cwd: dir, env: {DATABASE_URL: databaseUrl, CHARGE_OPS_STATE_DIR: join(dir, 'state')}})

  const measure = async (databaseUrl, components) => {
    const times = []
    let report
    for (let i = 0; i < RUNS; i++) {
      const s = performance.now()
      report = await runCapacity({settings: settingsFor(databaseUrl), logger: silentLogger, components, recordHistory: false})
      times.push(performance.now() - s)
    }
    return {ms: median(times), queries: report.queries, checks: report.checks.length, unknown: report.checks.filter((c) => c.status === 'unknown').map((c) => c.id)}
  }
  const empty = await measure(emptyUrl, ['postgresql', 'sizing'])
  const wide = await measure(url, ['postgresql', 'sizing'])
  const whole = await measure(url, undefined)
  console.log(`in-process, PostgreSQL checks, empty database: ${empty.ms.toFixed(0)} ms, ${empty.queries} queries, ${empty.checks} results`)
  console.log(`in-process, PostgreSQL checks, ${TABLES} tables:     ${wide.ms.toFixed(0)} ms, ${wide.queries} queries, ${wide.checks} results (${(wide.ms / BUDGET_MS).toFixed(2)} of the 2 s budget)`)
  console.log(`in-process, whole stack as configured:        ${whole.ms.toFixed(0)} ms, ${whole.queries} queries (Redis / Chroma not configured here: ${whole.unknown.join(', ')})`)
  console.log(`queries per table: ${wide.queries === empty.queries ? 'none (same count on 0 and ' + TABLES + ' tables)' : `DIFFERENT: ${empty.queries} vs ${wide.queries}`}`)
  if (wide.unknown.length > 0) console.log(`unknown checks: ${wide.unknown.join(', ')}`)

  if (existsSync('dist/commands/capacity.js')) {
    const cli = []
    let exit
    for (let i = 0; i < RUNS; i++) {
      const s = performance.now()
      const r = spawnSync(process.execPath, ['bin/run.js', 'capacity', '--only', 'postgresql,sizing', '--json', '--no-history'], {env: {...process.env, DATABASE_URL: url, CHARGE_OPS_CONFIG: join(dir, 'charge-ops.yaml'), CHARGE_OPS_STATE_DIR: join(dir, 'state'), CI: 'true'}, encoding: 'utf8'})
      cli.push(performance.now() - s)
      exit = r.status
      if (r.status !== 0 && r.status !== 1) console.log(r.stderr)
    }
    console.log(`CLI (bin/run.js capacity --only postgresql,sizing --json), ${TABLES} tables: ${median(cli).toFixed(0)} ms wall incl. Node + oclif start-up, exit ${exit} (${(median(cli) / BUDGET_MS).toFixed(2)} of the budget)`)
  } else {
    console.log('CLI: dist/commands/capacity.js missing — run `npm run build` first')
  }
  const ok = wide.ms <= BUDGET_MS && wide.queries === empty.queries
  console.log(ok ? 'PASS' : 'FAIL')
  process.exitCode = ok ? 0 : 1
} finally {
  await pg.stop()
  rmSync(dir, {recursive: true, force: true})
}
