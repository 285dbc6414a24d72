#!/usr/bin/env node
// bench/restore (issue 5, physical side). On a ≥1 GB charging-samples database (8.5 M rows of random
// floats, like DESIGN §8):
//   1. the fast path to a working database: `restore pitr --latest --start` (fetch base + replay to a
//      ready server) vs the guide's `gunzip -c dump.gz | pg_restore` into an empty database.
//      Budget: ≤ 0.35× the guide's restore time.
//   2. `restore db` (the logical side) vs `pg_restore -j2` from an uncompressed local file: ≤ 1.1×.
//   3. `wal push` of a real 16 MB segment, node start-up included: median wall ≤ 250 ms; and its
//      ratio to `zstd -q -1 -c` alone on the same segment.
// Prints each figure with its baseline measured in the same run, and the machine load.
// Usage: npm run build && node --import tsx bench/restore.mjs [--rows 8500000] [--push-runs 9]
import {execFileSync, spawnSync} from 'node:child_process'
import {copyFileSync, mkdirSync, readdirSync, rmSync, statSync} from 'node:fs'
import {loadavg} from 'node:os'
import {join} from 'node:path'
import {ROOT, ENTRY, log, numberArg} from './lib/preamble.mjs'

const ROWS = numberArg('--rows', 8_500_000)
const PUSH_RUNS = numberArg('--push-runs', 9)

const {startPostgres, freePort} = await import('../test/support/index.ts')
const {archiveCommand} = await import('../src/wal/command-lines.ts')

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]
const seconds = (ms) => `${(ms / 1000).toFixed(1)} s`

const pg = await startPostgres({
  name: 'bench-restore',
  conf: {max_wal_size: '4GB', checkpoint_timeout: '30min', shared_buffers: '256MB', maintenance_work_mem: '256MB'},
})
const user = pg.osUser
const asServer = user ? {uid: user.uid, gid: user.gid} : {}
const sh = (cmd, env = {}) => {
  const t = performance.now()
  execFileSync('bash', ['-o', 'pipefail', '-c', cmd], {
    stdio: ['ignore', 'ignore', 'inherit'],
    env: {...process.env, ...pg.env(), ...env},
  })
  return performance.now() - t
}
const cli = (args, options = {}) => {
  const t = performance.now()
  const r = spawnSync(process.execPath, [ENTRY, ...args], {
    encoding: 'utf8',
    env: {PATH: process.env.PATH, HOME: '/tmp', CI: 'true', ...options.env},
    ...(options.asServer ? asServer : {}),
    cwd: options.cwd ?? ROOT,
    maxBuffer: 64 * 1024 * 1024,
  })
  if (r.status !== 0) throw new Error(`charge-ops ${args.join(' ')} failed (${r.status}):\n${r.stderr}`)
  return {ms: performance.now() - t, stdout: r.stdout}
}

const started = []
try {
  const load0 = loadavg()[0]
  // ---------------------------------------------------------------- data
  const url = await pg.createDatabase('charge_analysis')
  let t = performance.now()
  await pg.query(
    `CREATE TABLE charging_samples (id bigserial PRIMARY KEY, session_id int NOT NULL, recorded_at timestamptz NOT NULL,
       voltage_v double precision, current_a double precision, soc_pct double precision, battery_temp_c double precision, power_kw double precision);
     INSERT INTO charging_samples (session_id, recorded_at, voltage_v, current_a, soc_pct, battery_temp_c, power_kw)
       SELECT g / 2000, now() - (g || ' s')::interval, 300 + random() * 100, random() * 250, random() * 100, 20 + random() * 30, random() * 150
       FROM generate_series(1, ${ROWS}) g;
     CREATE INDEX ON charging_samples (session_id)`,
    'charge_analysis',
  )
  await pg.query('VACUUM ANALYZE charging_samples', 'charge_analysis')
  const [{size}] = await pg.query(`SELECT pg_database_size('charge_analysis') AS size`)
  log(`data: ${ROWS} rows, ${(Number(size) / 1e9).toFixed(2)} GB in ${seconds(performance.now() - t)}`)

  // ---------------------------------------------------------------- the guide's logical path
  const work = pg.serverDir('bench')
  const dump = join(work, 'charge_analysis.dump.gz')
  const dumpMs = sh(`pg_dump --format=custom --no-owner charge_analysis | gzip > ${dump}`)
  await pg.query('CREATE DATABASE restore_target')
  const guideRestoreMs = sh(`gunzip -c ${dump} | pg_restore --no-owner -d restore_target`)
  // the physical backup copies the whole cluster: do not make it carry the restored copy too
  await pg.query('DROP DATABASE restore_target')
  log(
    `guide: pg_dump | gzip ${seconds(dumpMs)} (${(statSync(dump).size / 1e6).toFixed(0)} MB); gunzip -c | pg_restore ${seconds(guideRestoreMs)}`,
  )

  // ---------------------------------------------------------------- physical: archive on, base backup, PITR
  const repo = pg.serverDir('repo')
  await pg.restart({
    archive_mode: 'on',
    archive_command: archiveCommand({repository: repo, stack: 'bench', entry: ENTRY}),
  })
  const base = cli(['backup', 'base', '--repo', repo, '--stack', 'bench', '--json'], {
    asServer: true,
    env: {DATABASE_URL: url},
  })
  const manifest = JSON.parse(base.stdout)
  log(
    `backup base: ${seconds(base.ms)} (${(manifest.parts[0].bytes / 1e6).toFixed(0)} MB stored, ${(manifest.parts[0].contentBytes / 1e6).toFixed(0)} MB tar)`,
  )
  // new samples keep arriving after the base backup: the restore replays them from the archive
  await pg.query(
    `INSERT INTO charging_samples (session_id, recorded_at, voltage_v, current_a, soc_pct, battery_temp_c, power_kw)
       SELECT 100000 + g / 2000, now(), 300 + random() * 100, random() * 250, random() * 100, 20 + random() * 30, random() * 150 FROM generate_series(1, 100000) g`,
    'charge_analysis',
  )
  cli(['wal', 'check', '--repo', repo, '--stack', 'bench', '--timeout', '120'], {env: {DATABASE_URL: url}})

  const dataDir = join(pg.serverDir('restored'), 'data')
  started.push(dataDir)
  const port = await freePort()
  const pitr = cli([
    'restore',
    'pitr',
    '--latest',
    '--data-dir',
    dataDir,
    '--start',
    '--port',
    String(port),
    '--archive',
    'off',
    '--repo',
    repo,
    '--stack',
    'bench',
    '--yes',
    '--json',
  ])
  const pitrResult = JSON.parse(pitr.stdout)
  const pitrRatio = pitr.ms / guideRestoreMs
  log(
    `restore pitr --latest --start: ${seconds(pitr.ms)} (recovery ${seconds(pitrResult.recovery.durationMs)}, ${pitrResult.archive.segments} segments) — ready on timeline ${pitrResult.recovery.timeline}`,
  )

  // ---------------------------------------------------------------- restore db vs pg_restore -j2 (logical side)
  let restoreDb = {note: 'failed'}
  try {
    const plain = join(work, 'plain.dump')
    sh(`pg_dump -Fc -Z0 -f ${plain} charge_analysis`)
    await pg.query('CREATE DATABASE pgr_target')
    const pgRestoreMs = sh(`pg_restore -j2 --no-owner -d pgr_target ${plain}`)
    await pg.query('DROP DATABASE pgr_target')
    rmSync(plain, {force: true})
    const logicalRepo = pg.serverDir('logical-repo')
    const cwd = pg.serverDir('logical-cwd')
    cli(['backup', 'db', '--repo', logicalRepo, '--quiet'], {env: {DATABASE_URL: url}, cwd})
    const restored = cli(
      [
        'restore',
        'db',
        'latest',
        '--target-db',
        'logical_target',
        '--jobs',
        '2',
        '--no-maintenance',
        '--yes',
        '--repo',
        logicalRepo,
        '--quiet',
      ],
      {env: {DATABASE_URL: url}, cwd},
    )
    restoreDb = {
      restoreDbMs: Math.round(restored.ms),
      pgRestoreJ2Ms: Math.round(pgRestoreMs),
      ratio: Number((restored.ms / pgRestoreMs).toFixed(2)),
      budget: 1.1,
    }
    log(
      `restore db latest --jobs 2: ${seconds(restored.ms)} vs pg_restore -j2 from an uncompressed local file ${seconds(pgRestoreMs)}`,
    )
  } catch (error) {
    restoreDb = {note: `restore db could not be measured: ${String(error.message).split('\n').slice(0, 3).join(' ')}`}
    log(restoreDb.note)
  }

  // ---------------------------------------------------------------- wal push of one 16 MB segment
  const walDir = join(dataDir, 'pg_wal')
  const segment = readdirSync(walDir)
    .filter((f) => /^[0-9A-F]{24}$/.test(f))
    .sort()[0]
  const segDir = pg.serverDir('push')
  mkdirSync(join(segDir, 'pg_wal'), {recursive: true})
  copyFileSync(join(walDir, segment), join(segDir, 'pg_wal', segment))
  const pushes = []
  const zstds = []
  for (let i = 0; i < PUSH_RUNS; i++) {
    const target = join(segDir, `repo-${i}`)
    pushes.push(cli(['wal', 'push', `pg_wal/${segment}`, '--repo', target, '--stack', 'bench'], {cwd: segDir}).ms)
    rmSync(target, {recursive: true, force: true})
    const z = performance.now()
    execFileSync('bash', ['-c', `zstd -q -1 -c pg_wal/${segment} > zstd.out`], {cwd: segDir})
    zstds.push(performance.now() - z)
  }
  const pushMedian = median(pushes)
  const zstdMedian = median(zstds)

  const result = {
    rows: ROWS,
    databaseBytes: Number(size),
    loadAverage: {start: load0, end: loadavg()[0]},
    guideDumpMs: Math.round(dumpMs),
    guideRestoreMs: Math.round(guideRestoreMs),
    backupBaseMs: Math.round(base.ms),
    pitrLatestStartMs: Math.round(pitr.ms),
    pitrRatio: Number(pitrRatio.toFixed(3)),
    pitrBudget: 0.35,
    walPushMedianMs: Math.round(pushMedian),
    walPushBudgetMs: 250,
    zstdMedianMs: Math.round(zstdMedian),
    walPushToZstd: Number((pushMedian / zstdMedian).toFixed(1)),
    restoreDb,
  }
  console.log(
    `restore pitr --latest --start: ${seconds(pitr.ms)} vs guide gunzip | pg_restore ${seconds(guideRestoreMs)} → ratio ${pitrRatio.toFixed(2)} (budget ≤ 0.35) ${pitrRatio <= 0.35 ? 'OK' : 'OVER'}`,
  )
  console.log(
    `wal push 16 MB: median ${Math.round(pushMedian)} ms (budget ≤ 250 ms) ${pushMedian <= 250 ? 'OK' : 'OVER'}; zstd -1 alone ${Math.round(zstdMedian)} ms → ${result.walPushToZstd}×`,
  )
  if (restoreDb.ratio !== undefined)
    console.log(
      `restore db: ${seconds(restoreDb.restoreDbMs)} vs pg_restore -j2 ${seconds(restoreDb.pgRestoreJ2Ms)} → ratio ${restoreDb.ratio} (budget ≤ 1.1) ${restoreDb.ratio <= 1.1 ? 'OK' : 'OVER'}`,
    )
  console.log(`load average ${load0.toFixed(2)} → ${loadavg()[0].toFixed(2)} (2 cores)`)
  console.log(JSON.stringify(result))
} finally {
  for (const dir of started)
    spawnSync(join(pg.binDir, 'pg_ctl'), ['stop', '-D', dir, '-m', 'immediate', '-w'], asServer)
  await pg.stop()
}
