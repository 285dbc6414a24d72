#!/usr/bin/env node
// bench/capacity (issue 6): `capacity` on a database with 2,000 tables and 6,000 indexes finishes in
// ≤ 2 s, and no check issues a query per table. Starts a private PostgreSQL 15 (test/support),
// creates the tables in one DO block, runs the check collection in-process (PostgreSQL checks and
// the whole stack as configured) and through the built CLI, and prints wall time vs the budget and
// the number of queries issued — the same on an empty database and on 2,000 tables, or a check
// would be querying per table. The whole-stack run adds Redis, Chroma (test/support), 200 upload
// files and a local repository holding a verified db backup written by the backup engine. Usage: npm run build && node --import tsx bench/capacity.mjs [--tables 2000] [--runs 3]
import {spawnSync} from 'node:child_process'
import {existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync} from 'node:fs'
import {tmpdir} from 'node:os'
import {join} from 'node:path'

const arg = (name, dflt) => (process.argv.includes(name) ? Number(process.argv[process.argv.indexOf(name) + 1]) : dflt)
const TABLES = arg('--tables', 2000)
const RUNS = arg('--runs', 3)
const BUDGET_MS = 2000

const {startPostgres} = await import('../test/support/postgres.ts')
const {startRedis} = await import('../test/support/redis.ts')
const {startChroma} = await import('../test/support/chroma.ts')
const {openBackupContext} = await import('../src/backup/context.ts')
const {backupDatabase} = await import('../src/backup/db.ts')
const {verifyBackup} = await import('../src/backup/verify.ts')
const {runCapacity} = await import('../src/capacity/index.ts')
const {loadSettings} = await import('../src/config/settings.ts')
const {silentLogger} = await import('../src/output/logger.ts')

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]
const pg = await startPostgres({name: 'bench-capacity', conf: {max_locks_per_transaction: '256'}})
const redis = await startRedis({password: 'bench-redis-pw'})
const chroma = await startChroma()
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
  await pg.query(
    'INSERT INTO t_1 (session_id, recorded_at, v) SELECT g % 50, now(), random() FROM generate_series(1, 50000) g; ANALYZE',
    'wide',
  )
  const counts = (
    await pg.query(
      "SELECT (SELECT count(*) FROM pg_class WHERE relkind = 'r' AND relnamespace = 'public'::regnamespace) AS tables, (SELECT count(*) FROM pg_class WHERE relkind = 'i' AND relnamespace = 'public'::regnamespace) AS indexes",
      'wide',
    )
  )[0]
  console.log(
    `setup: ${counts.tables} tables, ${counts.indexes} indexes in ${((performance.now() - t0) / 1000).toFixed(1)} s`,
  )

  // the whole stack: Redis, Chroma (one collection), uploads, a local repository with a verified db backup
  writeFileSync(join(dir, 'charge-ops.yaml'), `stack: bench\nbackup:\n  repository: ${join(dir, 'repo')}\n`)
  mkdirSync(join(dir, 'uploads', '2026'), {recursive: true})
  for (let i = 0; i < 200; i++) writeFileSync(join(dir, 'uploads', '2026', `s${i}.csv`), 'timestamp,voltage_v\n')
  const stackEnv = {REDIS_URL: redis.url, CHROMA_URL: chroma.url, UPLOADS_DIR: join(dir, 'uploads')}
  const settingsFor = (databaseUrl, extra = {}) =>
    loadSettings({cwd: dir, env: {DATABASE_URL: databaseUrl, CHARGE_OPS_STATE_DIR: join(dir, 'state'), ...extra}})
  await fetch(`${chroma.url}/api/v2/tenants/default_tenant/databases/default_database/collections`, {
    method: 'POST',
    headers: {'content-type': 'application/json'},
    body: JSON.stringify({name: 'charging_knowledge'}),
  })
  const backupCtx = await openBackupContext({settings: settingsFor(emptyUrl), logger: silentLogger})
  await verifyBackup(backupCtx, (await backupDatabase(backupCtx)).id)

  const measure = async (databaseUrl, components, extra) => {
    const times = []
    let report
    for (let i = 0; i < RUNS; i++) {
      const s = performance.now()
      report = await runCapacity({
        settings: settingsFor(databaseUrl, extra),
        logger: silentLogger,
        components,
        recordHistory: false,
      })
      times.push(performance.now() - s)
    }
    return {
      ms: median(times),
      queries: report.queries,
      checks: report.checks.length,
      unknown: report.checks.filter((c) => c.status === 'unknown').map((c) => c.id),
    }
  }
  const empty = await measure(emptyUrl, ['postgresql', 'sizing'])
  const wide = await measure(url, ['postgresql', 'sizing'])
  const whole = await measure(url, undefined, stackEnv)
  console.log(
    `in-process, PostgreSQL checks, empty database: ${empty.ms.toFixed(0)} ms, ${empty.queries} queries, ${empty.checks} results`,
  )
  console.log(
    `in-process, PostgreSQL checks, ${TABLES} tables:     ${wide.ms.toFixed(0)} ms, ${wide.queries} queries, ${wide.checks} results (${(wide.ms / BUDGET_MS).toFixed(2)} of the 2 s budget)`,
  )
  console.log(
    `in-process, whole stack (PostgreSQL ${TABLES} tables, Redis, Chroma, 200 uploads, local repository): ${whole.ms.toFixed(0)} ms, ${whole.queries} queries, ${whole.checks} results${whole.unknown.length ? ` (unknown: ${whole.unknown.join(', ')})` : ''}`,
  )
  console.log(
    `queries per table: ${wide.queries === empty.queries ? 'none (same count on 0 and ' + TABLES + ' tables)' : `DIFFERENT: ${empty.queries} vs ${wide.queries}`}`,
  )
  if (wide.unknown.length > 0) console.log(`unknown checks: ${wide.unknown.join(', ')}`)

  if (existsSync('dist/commands/capacity.js')) {
    const cliRun = (args, extra = {}) => {
      const times = []
      let exit
      let notOk = []
      for (let i = 0; i < RUNS; i++) {
        const s = performance.now()
        const r = spawnSync(process.execPath, ['bin/run.js', 'capacity', ...args, '--json', '--no-history'], {
          env: {
            ...process.env,
            DATABASE_URL: url,
            CHARGE_OPS_CONFIG: join(dir, 'charge-ops.yaml'),
            CHARGE_OPS_STATE_DIR: join(dir, 'state'),
            CI: 'true',
            ...extra,
          },
          encoding: 'utf8',
        })
        times.push(performance.now() - s)
        exit = r.status
        if (r.status !== 0 && r.status !== 1) console.log(r.stderr)
        else
          notOk = JSON.parse(r.stdout)
            .checks.filter((c) => c.status !== 'ok')
            .map((c) => `${c.id}${c.labels?.kind ? `[${c.labels.kind}]` : ''} ${c.status}`)
      }
      return {ms: median(times), exit, notOk}
    }
    const pgOnly = cliRun(['--only', 'postgresql,sizing'])
    console.log(
      `CLI (bin/run.js capacity --only postgresql,sizing --json), ${TABLES} tables: ${pgOnly.ms.toFixed(0)} ms wall incl. Node + oclif start-up, exit ${pgOnly.exit} (${(pgOnly.ms / BUDGET_MS).toFixed(2)} of the budget)`,
    )
    const all = cliRun([], stackEnv)
    console.log(
      `CLI (bin/run.js capacity --json), whole stack:             ${all.ms.toFixed(0)} ms wall, exit ${all.exit} (${(all.ms / BUDGET_MS).toFixed(2)} of the budget)${all.notOk.length ? `; not ok: ${all.notOk.join(', ')}` : ''}`,
    )
  } else {
    console.log('CLI: dist/commands/capacity.js missing — run `npm run build` first')
  }
  const ok = wide.ms <= BUDGET_MS && whole.ms <= BUDGET_MS && wide.queries === empty.queries
  console.log(ok ? 'PASS' : 'FAIL')
  process.exitCode = ok ? 0 : 1
} finally {
  await chroma.stop()
  await redis.stop()
  await pg.stop()
  rmSync(dir, {recursive: true, force: true})
}
