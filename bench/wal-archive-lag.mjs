#!/usr/bin/env node
// bench/wal-archive-lag (issue 17, item 3). Sustained archiving of a pgbench write load: a
// PostgreSQL 15 cluster archives through charge-ops' archive_command (the plain form, then the
// `--async --process-max 2` form `wal archive-command --async` prints) while `pgbench -N` writes
// for --seconds; every second the segments completed but not yet archived are sampled
// (pg_ls_archive_statusdir() .ready marks). Budget (issue 17): the backlog stays under 2 segments.
// Prints the WAL rate and the load average.
// Usage: npm run build && node --import tsx bench/wal-archive-lag.mjs [--seconds 45] [--clients 2]
import {spawnSync} from 'node:child_process'
import {loadavg, cpus} from 'node:os'
import {join} from 'node:path'
import {ENTRY, log, numberArg} from './lib/preamble.mjs'

const SECONDS = numberArg('--seconds', 45)
const CLIENTS = numberArg('--clients', 2)

const {startPostgres, spawnTied} = await import('../test/support/index.ts')
const {archiveCommand} = await import('../src/wal/command-lines.ts')
const pg = await startPostgres({name: 'bench-lag', conf: {max_wal_size: '1GB'}})
try {
  const load0 = loadavg()[0]
  const env = {...process.env, ...pg.env()}
  const init = spawnSync(join(pg.binDir, 'pgbench'), ['-i', '-s', '10', '-q', 'postgres'], {env, encoding: 'utf8'})
  if (init.status !== 0) throw new Error(`pgbench -i: ${init.stderr}`)
  const results = []
  for (const [form, asyncProcessMax] of [
    ['wal push', undefined],
    ['wal push --async --process-max 2', 2],
  ]) {
    const repo = pg.serverDir(`repo-${asyncProcessMax ?? 'sync'}`)
    await pg.restart({
      archive_mode: 'on',
      wal_level: 'replica',
      archive_timeout: '0',
      archive_command: archiveCommand({
        repository: repo,
        stack: 'bench',
        node: process.execPath,
        entry: ENTRY,
        asyncProcessMax,
      }),
    })
    const lsn0 = (await pg.query('SELECT pg_current_wal_lsn()::text AS l'))[0].l
    // tied: a bench killed (even by SIGKILL) takes its pgbench load with it
    const bench = spawnTied(
      join(pg.binDir, 'pgbench'),
      ['-N', '-c', String(CLIENTS), '-j', String(CLIENTS), '-T', String(SECONDS), 'postgres'],
      {env, stdio: ['ignore', 'ignore', 'ignore']},
    )
    const done = new Promise((r) => bench.on('close', r))
    const samples = []
    let running = true
    done.then(() => (running = false))
    while (running) {
      await new Promise((r) => setTimeout(r, 1000))
      const [row] = await pg.query("SELECT count(*)::int AS n FROM pg_ls_archive_statusdir() WHERE name LIKE '%.ready'")
      samples.push(row.n)
    }
    const [{bytes}] = await pg.query(`SELECT (pg_current_wal_lsn() - '${lsn0}'::pg_lsn)::bigint AS bytes`)
    const [archiver] = await pg.query(
      'SELECT archived_count::int AS archived, failed_count::int AS failed FROM pg_stat_archiver',
    )
    const max = Math.max(...samples)
    const mean = samples.reduce((a, b) => a + b, 0) / samples.length
    const mbps = Number(bytes) / 1048576 / SECONDS
    results.push({form, max, mean, mbps, archived: archiver.archived, failed: archiver.failed, load: loadavg()[0]})
    log(
      `${form.padEnd(34)} backlog max ${max}, mean ${mean.toFixed(2)} segments over ${samples.length} samples; WAL ${mbps.toFixed(1)} MB/s (${(mbps / 16).toFixed(2)} segments/s); archived ${archiver.archived}, failed ${archiver.failed}; load ${loadavg()[0].toFixed(1)}`,
    )
  }
  log('')
  for (const r of results)
    log(`${r.form}: backlog max ${r.max} segment(s)   (budget < 2: ${r.max < 2 ? 'PASS' : 'MISS'})`)
  log(
    `load average ${load0.toFixed(1)} → ${loadavg()[0].toFixed(1)} on ${cpus().length} cores; pgbench -N -c ${CLIENTS} -T ${SECONDS}, scale 10`,
  )
} finally {
  await pg.stop()
}
