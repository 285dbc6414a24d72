#!/usr/bin/env node
// bench/base-incremental (issue 17). On a charging-samples database (default 2.2 GB):
//   1. `backup base --type full --jobs 2` vs `pg_basebackup -D dir -Ft -z -X none` (the same data): ≤ 0.8×;
//   2. +1 % rows, then `backup base --type incr`: stored bytes ≤ 3 % of the full's, wall ≤ 0.15× the full's.
// Every ratio is measured in this run; the load average is printed (the machine is shared).
// Usage: npm run build && node bench/base-incremental.mjs [--size-gb 2.2] [--keep DIR]
import {spawnSync} from 'node:child_process'
import {chmodSync, chownSync, mkdirSync, mkdtempSync, readdirSync, rmSync, statSync} from 'node:fs'
import {loadavg} from 'node:os'
import {join, resolve} from 'node:path'

import {generateChargingSamples, insertChunkSql} from './lib/charging-samples.mjs'
import {startBenchCluster} from './lib/postgres.mjs'

const arg = (name, dflt) => (process.argv.includes(name) ? process.argv[process.argv.indexOf(name) + 1] : dflt)
const SIZE = Number(arg('--size-gb', '2.2')) * 1e9
const ROOT = resolve(import.meta.dirname, '..')
const ENTRY = join(ROOT, 'bin/run.js')
const log = (line) => process.stderr.write(`${line}\n`)
const load = () =>
  loadavg()
    .map((l) => l.toFixed(2))
    .join(' ')

const keep = arg('--keep')
const work = keep ? resolve(keep) : mkdtempSync('/tmp/charge-ops-bench-incr-')
chmodSync(work, 0o755)
const user =
  process.getuid?.() === 0 && spawnSync('id', ['-u', 'postgres']).status === 0
    ? {
        uid: Number(spawnSync('id', ['-u', 'postgres'], {encoding: 'utf8'}).stdout),
        gid: Number(spawnSync('id', ['-g', 'postgres'], {encoding: 'utf8'}).stdout),
      }
    : undefined
const repo = join(work, 'repo')
const tarDir = join(work, 'pg_basebackup')
rmSync(repo, {recursive: true, force: true})
mkdirSync(repo, {recursive: true})
if (user) chownSync(repo, user.uid, user.gid)
// The data's generation is not archived (archive_command 'true'): its ~2.5 GB of WAL would only fill
// the disk and load the machine; the measured backups run with charge-ops' archive_command (a reload).
const archiveCommand = `${process.execPath} ${ENTRY} wal push %p --repo ${repo} --stack bench`
const pg = await startBenchCluster({
  dir: work,
  log,
  conf: {archive_mode: 'on', archive_command: 'true', max_wal_size: '1GB', checkpoint_timeout: '30min'},
})
const asServer = user ? {uid: user.uid, gid: user.gid} : {}
const cli = (args) => {
  const t = performance.now()
  const r = spawnSync(process.execPath, [ENTRY, ...args], {
    encoding: 'utf8',
    env: {PATH: process.env.PATH, HOME: '/tmp', CI: 'true', DATABASE_URL: pg.url('postgres')},
    ...asServer,
    cwd: '/tmp',
    maxBuffer: 64 << 20,
  })
  if (r.status !== 0) throw new Error(`charge-ops ${args.join(' ')} failed (${r.status}):\n${r.stderr}`)
  return {ms: performance.now() - t, manifest: JSON.parse(r.stdout)}
}
try {
  const data = await generateChargingSamples(pg, {db: 'charge_analysis', bytes: SIZE, log})
  log(
    `data: ${data.rows} rows, table ${(data.tableBytes / 1e9).toFixed(2)} GB, database ${(data.databaseBytes / 1e9).toFixed(2)} GB`,
  )
  // Hint bits and freeze settled before either backup: rows a previous run (--keep) appended are
  // otherwise hinted by the first scan after the full — old pages rewritten that the incr would
  // count as changed, a cost of the bench, not of the +1 % rows. (A no-op on fresh data.)
  // Free space inside the table: the parallel generation leaves pages that several backends'
  // concurrent relation extension added but never filled, scattered at every chunk boundary, and
  // VACUUM puts them in the free space map — so the +1 % rows would land all over the table
  // (measured: 7 changed 8 MiB blocks in each full 1 GB segment, 99 MB stored, 7.2 % of the full)
  // instead of at its end, as daily appends to a time series do (issue 17: "only the newest pages
  // of each table change"). Compact once (VACUUM FULL), so that new rows go to the table's end.
  await pg.query('CREATE EXTENSION IF NOT EXISTS pg_freespacemap', 'charge_analysis')
  const [{free}] = await pg.query(
    "SELECT count(*)::int AS free FROM pg_freespace('charging_samples') WHERE avail >= 1024",
    'charge_analysis',
  )
  if (free > 0) {
    log(
      `${free} pages of charging_samples have free space (left by the parallel generation): VACUUM FULL, so that new rows are appended at the table's end`,
    )
    await pg.query('VACUUM FULL charging_samples', 'charge_analysis')
  }
  const [{n}] = await pg.query('SELECT max(id) AS n FROM charging_samples', 'charge_analysis')
  await pg.query('VACUUM (FREEZE) charging_samples', 'charge_analysis')
  await pg.query(`ALTER SYSTEM SET archive_command = '${archiveCommand.replaceAll("'", "''")}'`)
  await pg.query('SELECT pg_reload_conf()')
  await pg.query('CHECKPOINT')
  const load0 = load()

  rmSync(tarDir, {recursive: true, force: true})
  let t = performance.now()
  const r = spawnSync(join(pg.binDir, 'pg_basebackup'), ['-D', tarDir, '-Ft', '-z', '-X', 'none', '-c', 'fast'], {
    env: {...process.env, ...pg.env()},
    encoding: 'utf8',
  })
  if (r.status !== 0) throw new Error(`pg_basebackup: ${r.stderr}`)
  const tarMs = performance.now() - t
  const tarBytes = readdirSync(tarDir).reduce((s, f) => s + statSync(join(tarDir, f)).size, 0)
  rmSync(tarDir, {recursive: true, force: true})

  const full = cli(['backup', 'base', '--type', 'full', '--jobs', '2', '--repo', repo, '--stack', 'bench', '--json'])
  const fullStored = full.manifest.base.storedBytes
  const load1 = load()
  // +1 % rows, appended like new charging sessions
  const add = Math.ceil(data.rows * 0.01)
  await pg.query(insertChunkSql(Number(n) + 1, Number(n) + add), 'charge_analysis')
  const incr = cli(['backup', 'base', '--type', 'incr', '--jobs', '2', '--repo', repo, '--stack', 'bench', '--json'])
  const incrStored = incr.manifest.base.storedBytes
  log(`incr: ${incr.manifest.base.storedBytes} bytes stored, ${incr.manifest.base.referencedBytes} referenced`)
  const rows = [
    ['pg_basebackup -Ft -z -X none (baseline)', tarMs, tarBytes, '', ''],
    ['backup base --type full --jobs 2', full.ms, fullStored, (full.ms / tarMs).toFixed(3), '≤ 0.8× pg_basebackup'],
    [
      `backup base --type incr after +1 % rows (${add})`,
      incr.ms,
      incrStored,
      `${(incr.ms / full.ms).toFixed(3)} time, ${(incrStored / fullStored).toFixed(4)} bytes`,
      '≤ 0.15× time, ≤ 0.03× bytes of the full',
    ],
  ]
  console.log(
    `${new Date().toISOString()} — ${(data.databaseBytes / 1e9).toFixed(2)} GB database, ${data.rows} rows; load average (1/5/15 min) before: ${load0}; after the full: ${load1}; after the incr: ${load()}  (2 shared cores)`,
  )
  console.log('| what | wall s | stored MB | ratio | budget |\n| --- | ---: | ---: | --- | --- |')
  for (const [what, ms, bytes, ratio, budget] of rows)
    console.log(`| ${what} | ${(ms / 1000).toFixed(1)} | ${(bytes / 1e6).toFixed(1)} | ${ratio} | ${budget} |`)
  console.log(`full vs pg_basebackup: ${(full.ms / tarMs).toFixed(3)}× ${full.ms / tarMs <= 0.8 ? 'PASS' : 'MISS'}`)
  console.log(`incr wall vs full: ${(incr.ms / full.ms).toFixed(3)}× ${incr.ms / full.ms <= 0.15 ? 'PASS' : 'MISS'}`)
  console.log(
    `incr stored bytes vs full: ${(incrStored / fullStored).toFixed(4)}× ${incrStored / fullStored <= 0.03 ? 'PASS' : 'MISS'}`,
  )
} finally {
  await pg.stop()
  if (!keep) rmSync(work, {recursive: true, force: true})
}
