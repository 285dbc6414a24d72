#!/usr/bin/env node
// bench/restore-db: `charge-ops restore db` against two baselines measured in the same run
// (DESIGN §8: the machine is shared and noisy; ratios, not absolute seconds).
//
// Data: a charging_samples table of --size-gb (bench/lib/charging-samples.mjs: 10 double precision
// columns of random(), ~8 M rows per 1.1 GB) with the two indexes a real samples table has:
//   PRIMARY KEY (id)  and  charging_samples_session_ts (session_id, ts)
// Prepared once: `charge-ops backup db` into a local repo, `pg_dump -Fc -Z0` to a local file
// (baseline input), the guide's `pg_dump --format=custom --no-owner | gzip` file (§6.1.8).
// Measured, interleaved with a rotating order, --runs times (each into a fresh empty database,
// dropped afterwards, CHECKPOINT + sync before each measurement):
//   base    createdb B && pg_restore -j2 -d B base.dump            (the budget's baseline; createdb time shown)
//   guide   createdb G && gunzip -c guide.dump.gz | pg_restore --no-owner -d G
//   cli-j1  node bin/run.js restore db latest --target-db C --yes --jobs 1   (whole command, node start-up included)
//   cli-j2  node bin/run.js restore db latest --target-db C --yes --jobs 2
// Budget: cli ≤ 1.1× base. Output: markdown table of medians + ratios on stdout, progress on stderr.
//
// Usage (after npm run build):
//   node bench/restore-db.mjs [--size-gb 1.1] [--runs 3] [--keep DIR] [--json] [--check] [--only base,guide,cli-j1,cli-j2]
import {existsSync, mkdirSync, mkdtempSync, statSync} from 'node:fs'
import {rmSync} from 'node:fs'
import {cpus, loadavg} from 'node:os'
import {join, resolve} from 'node:path'
import {parseArgs} from 'node:util'

import {generateChargingSamples} from './lib/charging-samples.mjs'
import {installSignalHandlers, onCleanup, removeOnDeath, runCleanups} from './lib/cleanup.mjs'
import {startBenchCluster} from './lib/postgres.mjs'
import {median, sh, syncDisks, timedNode} from './lib/run.mjs'

const {values: opts} = parseArgs({
  options: {
    'size-gb': {type: 'string', default: '1.1'},
    runs: {type: 'string', default: '3'},
    keep: {type: 'string'},
    only: {type: 'string'},
    json: {type: 'boolean', default: false},
    check: {type: 'boolean', default: false},
    help: {type: 'boolean', short: 'h', default: false},
  },
})
if (opts.help) {
  process.stdout.write(
    'node bench/restore-db.mjs [--size-gb 1.1] [--runs 3] [--keep DIR] [--json] [--check] [--only base,guide,cli-j1,cli-j2]\n',
  )
  process.exit(0)
}
const SIZE = Number(opts['size-gb']) * 1e9
const RUNS = Math.max(1, Math.trunc(Number(opts.runs)))
if (!(SIZE > 0) || !Number.isFinite(RUNS)) {
  process.stderr.write('--size-gb and --runs must be positive numbers\n')
  process.exit(2)
}
const ALL = ['base', 'guide', 'cli-j1', 'cli-j2']
const STEPS = opts.only ? opts.only.split(',').map((s) => s.trim()) : ALL
if (!STEPS.includes('base') || STEPS.some((s) => !ALL.includes(s))) {
  process.stderr.write(`--only: a comma list of ${ALL.join(', ')}, including base\n`)
  process.exit(2)
}
const BUDGET = 1.1

const ROOT = resolve(import.meta.dirname, '..')
const ENTRY = join(ROOT, 'bin/run.js')
const DB = 'charge_analysis'
const log = (line) => process.stderr.write(`[bench/restore-db] ${line}\n`)
const s = (ms) => (ms / 1000).toFixed(2)

if (!existsSync(join(ROOT, 'dist', 'commands', 'restore', 'db.js'))) {
  process.stderr.write('dist/ is missing or stale: run `npm run build` first\n')
  process.exit(2)
}

installSignalHandlers()
const result = {
  sizeRequestedGb: Number(opts['size-gb']),
  runs: RUNS,
  cores: cpus().length,
  load: {start: loadavg().map((x) => +x.toFixed(2))},
}
let exitCode = 0

try {
  const keepDir = opts.keep ? resolve(opts.keep) : undefined
  if (keepDir) mkdirSync(keepDir, {recursive: true})
  const scratch = mkdtempSync('/tmp/charge-ops-bench-restore-db-')
  const cancelWatchdog = removeOnDeath(scratch)
  onCleanup(() => {
    rmSync(scratch, {recursive: true, force: true})
    cancelWatchdog()
  })
  const cluster = await startBenchCluster({
    dir: keepDir,
    // the same server settings for every contender; fsync off: the shared disk's flush latency
    // would dominate the noise (a real server has it on: all contenders pay the same)
    conf: {
      fsync: 'off',
      synchronous_commit: 'off',
      full_page_writes: 'off',
      wal_level: 'minimal',
      max_wal_senders: '0',
      max_wal_size: '8GB',
      checkpoint_timeout: '30min',
      shared_buffers: '256MB',
      maintenance_work_mem: '256MB',
      autovacuum: 'off',
    },
    log,
  })
  onCleanup(() => cluster.stop())
  log(`PostgreSQL ${cluster.binDir} on 127.0.0.1:${cluster.port}`)
  const data = await generateChargingSamples(cluster, {db: DB, bytes: SIZE, log})
  const hasPk =
    (await cluster.query(`SELECT 1 FROM pg_constraint WHERE conname = 'charging_samples_pkey'`, DB)).length > 0
  if (!hasPk) {
    log('indexes: PRIMARY KEY (id), charging_samples_session_ts (session_id, ts)')
    await cluster.query('ALTER TABLE charging_samples ADD PRIMARY KEY (id)', DB)
    await cluster.query(
      'CREATE INDEX IF NOT EXISTS charging_samples_session_ts ON charging_samples (session_id, ts)',
      DB,
    )
    await cluster.query('CHECKPOINT')
  }
  const [{dbBytes}] = await cluster.query('SELECT pg_database_size(current_database()) AS "dbBytes"', DB)
  log(
    `data: ${data.rows.toLocaleString('en')} rows, table ${(data.tableBytes / 1e9).toFixed(2)} GB, database with indexes ${(Number(dbBytes) / 1e9).toFixed(2)} GB`,
  )
  Object.assign(result, {
    rows: data.rows,
    tableBytes: data.tableBytes,
    databaseBytes: Number(dbBytes),
    indexes: ['charging_samples_pkey (id)', 'charging_samples_session_ts (session_id, ts)'],
  })

  const env = {PATH: `${cluster.binDir}:${process.env.PATH}`, LC_ALL: 'C.UTF-8', ...cluster.env()}
  const cliEnv = {
    PATH: env.PATH,
    HOME: scratch,
    LANG: 'C.UTF-8',
    CI: 'true',
    NO_COLOR: '1',
    CHARGE_OPS_STATE_DIR: join(scratch, 'state'),
    DATABASE_URL: cluster.url(DB),
  }
  const base = join(scratch, 'base.dump')
  const guide = join(scratch, 'guide.dump.gz')
  const repo = join(scratch, 'repo')
  log("preparing: pg_dump -Fc -Z0 (baseline input), the guide's pg_dump | gzip, charge-ops backup db")
  await sh(`pg_dump -Fc -Z0 ${DB} > '${base}'`, {env})
  if (STEPS.includes('guide')) await sh(`pg_dump --format=custom --no-owner ${DB} | gzip > '${guide}'`, {env})
  const backup = await timedNode(ENTRY, ['backup', 'db', '--repo', repo, '--json', '--quiet'], {
    env: cliEnv,
    cwd: scratch,
    scratch,
  })
  const manifest = JSON.parse(backup.stdout)
  const stored = manifest.parts.find((p) => p.name.startsWith('db')) ?? manifest.parts[0]
  Object.assign(result, {
    baseDumpBytes: statSync(base).size,
    guideDumpBytes: STEPS.includes('guide') ? statSync(guide).size : undefined,
    storedBytes: stored.bytes,
    backupId: manifest.id,
  })
  log(
    `base dump ${(statSync(base).size / 1e6).toFixed(0)} MB, stored part ${(stored.bytes / 1e6).toFixed(0)} MB (${stored.compression})`,
  )

  const settle = async () => {
    await cluster.query('CHECKPOINT')
    await syncDisks()
  }
  const drop = (db) => cluster.query(`DROP DATABASE IF EXISTS ${db} WITH (FORCE)`)
  const steps = {
    base: async () => {
      const c = await sh('createdb r_base', {env})
      const r = await sh(`pg_restore -j2 -d r_base '${base}'`, {env})
      return {ms: c.ms + r.ms, createdbMs: c.ms}
    },
    guide: async () => {
      const c = await sh('createdb r_guide', {env})
      const r = await sh(`gunzip -c '${guide}' | pg_restore --no-owner -d r_guide`, {env})
      return {ms: c.ms + r.ms, createdbMs: c.ms}
    },
    'cli-j1': async () => ({
      ms: (
        await timedNode(
          ENTRY,
          ['restore', 'db', 'latest', '--repo', repo, '--target-db', 'r_cli', '--yes', '--jobs', '1', '--quiet'],
          {env: cliEnv, cwd: scratch, scratch},
        )
      ).ms,
    }),
    'cli-j2': async () => ({
      ms: (
        await timedNode(
          ENTRY,
          ['restore', 'db', 'latest', '--repo', repo, '--target-db', 'r_cli', '--yes', '--jobs', '2', '--quiet'],
          {env: cliEnv, cwd: scratch, scratch},
        )
      ).ms,
    }),
  }
  const target = {base: 'r_base', guide: 'r_guide', 'cli-j1': 'r_cli', 'cli-j2': 'r_cli'}
  const times = Object.fromEntries(STEPS.map((k) => [k, []]))
  const createdb = []
  for (let run = 0; run < RUNS; run++) {
    const order = STEPS.map((_, i) => STEPS[(i + run) % STEPS.length])
    for (const step of order) {
      await drop(target[step])
      await settle()
      const r = await steps[step]()
      times[step].push(r.ms)
      if (r.createdbMs !== undefined && step === 'base') createdb.push(r.createdbMs)
      const [{n}] = await cluster.query('SELECT count(*)::bigint AS n FROM charging_samples', target[step])
      if (Number(n) !== data.rows) throw new Error(`${step}: restored ${n} rows, expected ${data.rows}`)
      await drop(target[step])
      log(`run ${run + 1}/${RUNS} ${step}: ${s(r.ms)} s (load ${loadavg()[0].toFixed(2)})`)
    }
  }
  result.load.end = loadavg().map((x) => +x.toFixed(2))
  const med = Object.fromEntries(STEPS.map((k) => [k, median(times[k])]))
  result.seconds = Object.fromEntries(STEPS.map((k) => [k, times[k].map((ms) => +(ms / 1000).toFixed(2))]))
  result.medianSeconds = Object.fromEntries(STEPS.map((k) => [k, +(med[k] / 1000).toFixed(2)]))
  result.createdbMedianSeconds = +(median(createdb) / 1000).toFixed(3)

  const label = {
    base: '`createdb && pg_restore -j2` from the `-Fc -Z0` file (baseline)',
    guide: 'guide: `createdb && gunzip -c dump.gz | pg_restore --no-owner`',
    'cli-j1': '`charge-ops restore db latest --target-db X --yes --jobs 1`',
    'cli-j2': '`charge-ops restore db latest --target-db X --yes --jobs 2`',
  }
  const lines = [
    `restore db bench: ${data.rows.toLocaleString('en')} rows, database ${(Number(dbBytes) / 1e6).toFixed(0)} MB, dump ${(result.baseDumpBytes / 1e6).toFixed(0)} MB, stored ${(stored.bytes / 1e6).toFixed(0)} MB ${stored.compression}; ${RUNS} runs, ${cpus().length} cores, load ${result.load.start[0]} → ${result.load.end[0]}`,
    '',
    '| run | runs (s) | median (s) | × baseline | × guide | budget | |',
    '| --- | --- | --- | --- | --- | --- | --- |',
  ]
  result.ratios = {}
  for (const k of STEPS) {
    const vsBase = med[k] / med.base
    const vsGuide = med.guide ? med[k] / med.guide : undefined
    const cli = k.startsWith('cli')
    if (cli) {
      result.ratios[k] = {
        vsBase: +vsBase.toFixed(3),
        vsGuide: vsGuide === undefined ? undefined : +vsGuide.toFixed(3),
        pass: vsBase <= BUDGET,
      }
      if (vsBase > BUDGET) exitCode = opts.check ? 1 : exitCode
    }
    lines.push(
      `| ${label[k]} | ${times[k].map(s).join(' / ')} | ${s(med[k])} | ${vsBase.toFixed(2)} | ${vsGuide === undefined ? '–' : vsGuide.toFixed(2)} | ${cli ? `≤ ${BUDGET}×` : ''} | ${cli ? (vsBase <= BUDGET ? 'PASS' : 'MISS') : ''} |`,
    )
  }
  lines.push('', `createdb alone (median): ${s(median(createdb))} s (included in both baselines)`)
  process.stdout.write(`${lines.join('\n')}\n`)
  if (opts.json) process.stdout.write(`${JSON.stringify(result)}\n`)
} catch (error) {
  process.stderr.write(`bench/restore-db failed: ${error.stack ?? error}\n`)
  exitCode = 1
} finally {
  await runCleanups()
}
process.exit(exitCode)
