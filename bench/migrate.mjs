#!/usr/bin/env node
// Times `migrate up` of the whole service/migrations history on an empty database against the
// 2 s budget (issue 2). Starts a private PostgreSQL 15 with test/support (initdb + pg_ctl), runs the
// engine in-process and through the built CLI (bin/run.js: includes Node + oclif start-up), prints
// the figures, stops the server. Usage: npm run build && node --import tsx bench/migrate.mjs [--runs 5]
import {spawnSync} from 'node:child_process'
import {existsSync, readdirSync} from 'node:fs'

const runs = Number(process.argv[process.argv.indexOf('--runs') + 1]) || 5
const BUDGET_MS = 2000
const dir =
  existsSync('service/migrations') && readdirSync('service/migrations').some((f) => f.endsWith('.sql'))
    ? 'service/migrations'
    : 'test/fixtures/migrations/basic'

const {startPostgres} = await import('../test/support/postgres.ts')
const {migrateUp} = await import('../src/migrate/index.ts')
const pg = await startPostgres({name: 'bench-migrate'})
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]
try {
  const engine = []
  const cli = []
  let count = 0
  for (let i = 0; i < runs; i++) {
    const url = await pg.createDatabase()
    const t0 = performance.now()
    const result = await migrateUp({databaseUrl: url, migrationsDir: dir})
    engine.push(performance.now() - t0)
    count = result.applied.length
    if (existsSync('dist/commands/migrate/up.js')) {
      const url2 = await pg.createDatabase()
      const t1 = performance.now()
      const r = spawnSync(process.execPath, ['bin/run.js', 'migrate', 'up', '--dir', dir, '--quiet'], {
        env: {...process.env, MIGRATION_DATABASE_URL: url2, CI: 'true'},
        encoding: 'utf8',
      })
      if (r.status !== 0) throw new Error(`charge-ops migrate up failed: ${r.stderr}`)
      cli.push(performance.now() - t1)
    }
  }
  const fmt = (ms) => `${Math.round(ms)} ms`
  console.log(`migrate up of ${count} migrations (${dir}) on an empty database, ${runs} runs, PostgreSQL 15 local:`)
  console.log(
    `  engine (in-process):      median ${fmt(median(engine))}, max ${fmt(Math.max(...engine))}  = ${(median(engine) / BUDGET_MS).toFixed(3)} of the 2 s budget`,
  )
  if (cli.length > 0)
    console.log(
      `  CLI (node bin/run.js):    median ${fmt(median(cli))}, max ${fmt(Math.max(...cli))}  = ${(median(cli) / BUDGET_MS).toFixed(3)} of the 2 s budget`,
    )
  else console.log('  CLI: not measured (run npm run build first)')
  const worst = Math.max(...engine, ...cli)
  console.log(
    worst <= BUDGET_MS
      ? `  within budget (worst ${fmt(worst)} <= 2000 ms)`
      : `  OVER BUDGET (worst ${fmt(worst)} > 2000 ms)`,
  )
  if (worst > BUDGET_MS) process.exitCode = 1
} finally {
  await pg.stop()
}
