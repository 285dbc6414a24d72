#!/usr/bin/env node
// bench/backup (issue 4, performance). Each figure is printed with its ratio to a baseline measured
// in the same run (DESIGN §8: the machine is shared and noisy).
//
// backup db, on a generated charging-samples database (random floats) of --size-gb:
//   guide   pg_dump --format=custom --no-owner DB | gzip > file      (deployment guide §6.1.8)
//   raw     pg_dump -Fc -Z0 DB > /dev/null                            (the limit: pg_dump itself)
//   ref     pg_dump -Fc -Z0 DB | zstd -q -T2 -1 > file                (reference pipe)
//   charge-ops backup db --repo DIR --json                            (time, stored size, peak RSS)
//   budgets: time ≤ 0.4× guide and ≤ 1.5× raw, size ≤ 1.15× guide, peak RSS ≤ 150 MB
// backup files, on --uploads-gb of random files + a small Chroma dir:
//   guide   cp -r uploads + chroma into /tmp, tar -czf, rm            (deployment guide §10.2)
//   ref     tar -cf - uploads chroma | zstd -q -T2 -1 > file
//   charge-ops backup files --repo DIR --json                         (UPLOADS_DIR / CHROMA_PERSIST_DIRECTORY in a generated .env)
//   budgets: ≥ 2× faster than the guide, peak RSS ≤ 150 MB
//
// Usage (after npm ci && npm run build):
//   node bench/backup.mjs [--size-gb 1.1] [--uploads-gb 2] [--runs 1] [--keep DIR] [--decimals N] [--json] [--check]
//   --decimals N  round the sample values to N decimals (default: full double precision, the least compressible)
//   --keep DIR  keep the cluster and generated files in DIR and reuse them next time (else all is removed)
//   --check     exit 1 when a budget is missed
//   --skip-db / --skip-files  measure only one half
import {existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, statSync, writeFileSync} from 'node:fs'
import {cpus, loadavg} from 'node:os'
import {join, resolve} from 'node:path'
import {parseArgs} from 'node:util'

import {generateChargingSamples} from './lib/charging-samples.mjs'
import {installSignalHandlers, onCleanup, removeOnDeath, runCleanups} from './lib/cleanup.mjs'
import {generateChroma, generateUploads} from './lib/files.mjs'
import {startBenchCluster} from './lib/postgres.mjs'
import {median, sh, syncDisks, timedNode} from './lib/run.mjs'

const {values: opts} = parseArgs({
  options: {
    'size-gb': {type: 'string', default: '1.1'},
    'uploads-gb': {type: 'string', default: '2'},
    decimals: {type: 'string'},
    runs: {type: 'string', default: '1'},
    keep: {type: 'string'},
    json: {type: 'boolean', default: false},
    check: {type: 'boolean', default: false},
    'skip-db': {type: 'boolean', default: false},
    'skip-files': {type: 'boolean', default: false},
    help: {type: 'boolean', short: 'h', default: false},
  },
})
if (opts.help) {
  process.stdout.write(
    'node bench/backup.mjs [--size-gb 1.1] [--uploads-gb 2] [--runs 1] [--keep DIR] [--decimals N] [--json] [--check] [--skip-db] [--skip-files]\n',
  )
  process.exit(0)
}
const SIZE = Number(opts['size-gb']) * 1e9
const UPLOADS = Number(opts['uploads-gb']) * 1e9
const RUNS = Math.max(1, Math.trunc(Number(opts.runs)))
const DECIMALS = opts.decimals === undefined ? undefined : Math.trunc(Number(opts.decimals))
if (
  !(SIZE > 0) ||
  !(UPLOADS > 0) ||
  !Number.isFinite(RUNS) ||
  (DECIMALS !== undefined && !(DECIMALS >= 0 && DECIMALS <= 15))
) {
  process.stderr.write('--size-gb, --uploads-gb and --runs must be positive numbers, --decimals 0..15\n')
  process.exit(2)
}

const ROOT = resolve(import.meta.dirname, '..')
const ENTRY = join(ROOT, 'bin/run.js')
const DB = 'charge_analysis'
const BUDGET = {dbVsGuide: 0.4, dbVsRaw: 1.5, dbSizeVsGuide: 1.15, filesSpeedup: 2, rssMb: 150}

const log = (line) => process.stderr.write(`[bench/backup] ${line}\n`)
const s = (ms) => (ms / 1000).toFixed(1)
const mb = (bytes) => (bytes === undefined ? '–' : (bytes / 1e6).toFixed(0))
const rssMb = (kb) => (kb === undefined ? undefined : kb / 1024)

for (const bin of ['zstd', 'gzip', 'tar', 'cp']) {
  const found = (process.env.PATH ?? '').split(':').some((d) => d && existsSync(join(d, bin)))
  if (!found) {
    process.stderr.write(`${bin} is not installed: apt-get install -y ${bin === 'cp' ? 'coreutils' : bin}\n`)
    process.exit(5)
  }
}
if (!existsSync(join(ROOT, 'dist', 'commands', 'backup', 'db.js'))) {
  process.stderr.write('dist/ is missing or stale: run `npm run build` first\n')
  process.exit(2)
}

installSignalHandlers()
const load = {start: loadavg()[0]}
const result = {
  sizeRequestedGb: Number(opts['size-gb']),
  uploadsRequestedGb: Number(opts['uploads-gb']),
  runs: RUNS,
  cores: cpus().length,
}
let exitCode = 0

try {
  const keepDir = opts.keep ? resolve(opts.keep) : undefined
  if (keepDir) mkdirSync(keepDir, {recursive: true})
  // outputs of every measured command; always removed (the kept dir only holds inputs)
  const scratch = mkdtempSync('/tmp/charge-ops-bench-backup-')
  const cancelWatchdog = removeOnDeath(scratch)
  onCleanup(() => {
    rmSync(scratch, {recursive: true, force: true})
    cancelWatchdog()
  })
  const dataRoot = keepDir ?? scratch
  const cliEnv = (extra = {}) => ({
    PATH: process.env.PATH,
    HOME: scratch,
    LANG: 'C.UTF-8',
    CI: 'true',
    NO_COLOR: '1',
    CHARGE_OPS_STATE_DIR: join(scratch, 'state'),
    ...extra,
  })
  const rows = []
  const checks = []

  // ================================================================ backup db
  if (!opts['skip-db']) {
    const cluster = await startBenchCluster({
      dir: keepDir,
      // generation speed (the data is throw-away); dump speed does not depend on these
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
    const data = await generateChargingSamples(cluster, {db: DB, bytes: SIZE, decimals: DECIMALS, log})
    log(
      `data: ${data.rows.toLocaleString('en')} rows, table ${(data.tableBytes / 1e9).toFixed(2)} GB, database ${(data.databaseBytes / 1e9).toFixed(2)} GB${data.reused ? ' (reused)' : ` in ${s(data.ms)} s`}`,
    )
    Object.assign(result, {
      rows: data.rows,
      tableBytes: data.tableBytes,
      databaseBytes: data.databaseBytes,
      decimals: DECIMALS ?? 'full',
    })

    const env = {PATH: `${cluster.binDir}:${process.env.PATH}`, LC_ALL: 'C.UTF-8', ...cluster.env()}
    const out = join(scratch, 'db')
    mkdirSync(out)
    const fileSize = (f) => statSync(f).size
    const steps = {
      guide: async () => {
        const f = join(out, 'guide.dump.gz')
        const r = await sh(`pg_dump --format=custom --no-owner ${DB} | gzip > '${f}'`, {env})
        const size = fileSize(f)
        rmSync(f)
        return {ms: r.ms, size}
      },
      raw: async () => ({ms: (await sh(`pg_dump -Fc -Z0 ${DB} > /dev/null`, {env})).ms}),
      ref: async () => {
        const f = join(out, 'ref.dump.zst')
        const r = await sh(`pg_dump -Fc -Z0 ${DB} | zstd -q -T2 -1 > '${f}'`, {env})
        const size = fileSize(f)
        rmSync(f)
        return {ms: r.ms, size}
      },
      cli: async (i) => {
        const repo = join(out, `repo-${i}`)
        // DATABASE_URL (with the password) by environment only, as an operator's cron would
        const r = await timedNode(ENTRY, ['backup', 'db', '--repo', repo, '--json', '--quiet'], {
          env: cliEnv({DATABASE_URL: cluster.url(DB)}),
          cwd: scratch,
          scratch,
        })
        const manifest = JSON.parse(r.stdout)
        rmSync(repo, {recursive: true, force: true})
        return {
          ms: r.ms,
          size: manifest.parts.reduce((n, p) => n + p.bytes, 0),
          rssKb: r.peakRssKb,
          internalMs: manifest.durationMs,
        }
      },
    }
    const m = {guide: [], raw: [], ref: [], cli: []}
    for (let i = 0; i < RUNS; i++) {
      // alternate the order between runs: whatever warms or loads the machine hits both sides
      const order = i % 2 === 0 ? ['cli', 'raw', 'ref', 'guide'] : ['guide', 'ref', 'raw', 'cli']
      for (const k of order) {
        log(`db run ${i + 1}/${RUNS}: ${k}…`)
        const r = await steps[k](i)
        await syncDisks()
        m[k].push(r)
        log(
          `db run ${i + 1}/${RUNS}: ${k} ${s(r.ms)} s${r.size ? `, ${mb(r.size)} MB` : ''}${r.rssKb ? `, peak RSS ${rssMb(r.rssKb).toFixed(0)} MB` : ''}`,
        )
      }
    }
    const med = (k, f) => median(m[k].map((r) => r[f]))
    const g = {ms: med('guide', 'ms'), size: med('guide', 'size')}
    const raw = {ms: med('raw', 'ms')}
    const ref = {ms: med('ref', 'ms'), size: med('ref', 'size')}
    const cli = {ms: med('cli', 'ms'), size: med('cli', 'size'), rssKb: Math.max(...m.cli.map((r) => r.rssKb ?? NaN))}
    const dbRows = [
      {what: `guide: pg_dump --format=custom --no-owner | gzip`, ms: g.ms, size: g.size, budget: 'baseline'},
      {what: 'raw: pg_dump -Fc -Z0 > /dev/null', ms: raw.ms, budget: 'limit'},
      {what: 'ref: pg_dump -Fc -Z0 | zstd -q -T2 -1', ms: ref.ms, size: ref.size, budget: 'reference'},
      {
        what: 'charge-ops backup db',
        ms: cli.ms,
        size: cli.size,
        budget: `≤ ${BUDGET.dbVsGuide}× guide, ≤ ${BUDGET.dbVsRaw}× raw`,
        pass: cli.ms <= BUDGET.dbVsGuide * g.ms && cli.ms <= BUDGET.dbVsRaw * raw.ms,
      },
    ]
    for (const r of dbRows) rows.push({part: 'db', ...r, vsGuide: r.ms / g.ms, vsRaw: r.ms / raw.ms})
    checks.push(
      {
        what: 'backup db time vs guide',
        value: cli.ms / g.ms,
        budget: `≤ ${BUDGET.dbVsGuide}`,
        pass: cli.ms / g.ms <= BUDGET.dbVsGuide,
      },
      {
        what: 'backup db time vs raw pg_dump',
        value: cli.ms / raw.ms,
        budget: `≤ ${BUDGET.dbVsRaw}`,
        pass: cli.ms / raw.ms <= BUDGET.dbVsRaw,
      },
      {
        what: 'backup db size vs guide',
        value: cli.size / g.size,
        budget: `≤ ${BUDGET.dbSizeVsGuide}`,
        pass: cli.size / g.size <= BUDGET.dbSizeVsGuide,
      },
      {
        what: 'backup db peak RSS (MB)',
        value: rssMb(cli.rssKb),
        budget: `≤ ${BUDGET.rssMb}`,
        pass: rssMb(cli.rssKb) <= BUDGET.rssMb,
      },
    )
    result.db = {guide: g, raw, ref, cli, runs: m}
    await cluster.stop()
  }

  // ================================================================ backup files
  if (!opts['skip-files']) {
    const uploadsDir = join(dataRoot, 'uploads')
    const chromaDir = join(dataRoot, 'chromadb_data')
    const up = generateUploads(uploadsDir, {bytes: UPLOADS, log})
    const ch = await generateChroma(chromaDir)
    log(
      `uploads: ${up.files} files, ${(up.bytes / 1e9).toFixed(2)} GB${up.reused ? ' (reused)' : ` in ${s(up.ms)} s`}; chroma: ${ch.records} records + ${mb(ch.segmentBytes)} MB segment`,
    )
    Object.assign(result, {uploadFiles: up.files, uploadBytes: up.bytes})
    const out = join(scratch, 'files')
    mkdirSync(out)
    const envFile = join(scratch, 'backend.env')
    writeFileSync(envFile, `UPLOADS_DIR=${uploadsDir}\nCHROMA_PERSIST_DIRECTORY=${chromaDir}\n`, {mode: 0o600})
    const fileSize = (f) => statSync(f).size
    const dirSize = (dir) =>
      readdirSync(dir, {recursive: true, withFileTypes: true}).reduce(
        (n, e) => (e.isFile() ? n + statSync(join(e.parentPath ?? e.path, e.name)).size : n),
        0,
      )
    const steps = {
      guide: async () => {
        // the guide's §10.2 script verbatim, paths substituted; TEMP_DIR in /tmp like the guide's,
        // but inside the scratch dir so that an interrupt cannot leave a copy behind
        const backupDir = join(out, 'guide')
        const script = `BACKUP_DIR='${backupDir}'
DATE=$(date +%Y%m%d_%H%M%S)
TEMP_DIR="${scratch}/ca_files_$DATE"
mkdir -p "$BACKUP_DIR" "$TEMP_DIR"
cp -r '${uploadsDir}' "$TEMP_DIR"/uploads
cp -r '${chromaDir}' "$TEMP_DIR"/chromadb
tar -czf $BACKUP_DIR/files_$DATE.tar.gz -C "$TEMP_DIR" .
rm -rf "$TEMP_DIR"`
        const r = await sh(script, {env: process.env})
        const size = dirSize(backupDir)
        rmSync(backupDir, {recursive: true, force: true})
        return {ms: r.ms, size}
      },
      ref: async () => {
        const f = join(out, 'ref.tar.zst')
        const r = await sh(`tar -cf - -C '${dataRoot}' uploads chromadb_data | zstd -q -T2 -1 > '${f}'`, {
          env: process.env,
        })
        const size = fileSize(f)
        rmSync(f)
        return {ms: r.ms, size}
      },
      cli: async (i) => {
        const repo = join(out, `repo-${i}`)
        const r = await timedNode(
          ENTRY,
          ['backup', 'files', '--repo', repo, '--env-file', envFile, '--json', '--quiet'],
          {env: cliEnv(), cwd: scratch, scratch},
        )
        const manifest = JSON.parse(r.stdout)
        rmSync(repo, {recursive: true, force: true})
        return {
          ms: r.ms,
          size: manifest.parts.reduce((n, p) => n + p.bytes, 0),
          rssKb: r.peakRssKb,
          internalMs: manifest.durationMs,
        }
      },
    }
    const m = {guide: [], ref: [], cli: []}
    for (let i = 0; i < RUNS; i++) {
      const order = i % 2 === 0 ? ['cli', 'ref', 'guide'] : ['guide', 'ref', 'cli']
      for (const k of order) {
        log(`files run ${i + 1}/${RUNS}: ${k}…`)
        const r = await steps[k](i)
        await syncDisks()
        m[k].push(r)
        log(
          `files run ${i + 1}/${RUNS}: ${k} ${s(r.ms)} s, ${mb(r.size)} MB${r.rssKb ? `, peak RSS ${rssMb(r.rssKb).toFixed(0)} MB` : ''}`,
        )
      }
    }
    const med = (k, f) => median(m[k].map((r) => r[f]))
    const g = {ms: med('guide', 'ms'), size: med('guide', 'size')}
    const ref = {ms: med('ref', 'ms'), size: med('ref', 'size')}
    const cli = {ms: med('cli', 'ms'), size: med('cli', 'size'), rssKb: Math.max(...m.cli.map((r) => r.rssKb ?? NaN))}
    rows.push(
      {
        part: 'files',
        what: 'guide: cp -r to /tmp + tar -czf + rm',
        ms: g.ms,
        size: g.size,
        vsGuide: 1,
        budget: 'baseline',
      },
      {
        part: 'files',
        what: 'ref: tar -cf - | zstd -q -T2 -1',
        ms: ref.ms,
        size: ref.size,
        vsGuide: ref.ms / g.ms,
        budget: 'reference',
      },
      {
        part: 'files',
        what: 'charge-ops backup files',
        ms: cli.ms,
        size: cli.size,
        vsGuide: cli.ms / g.ms,
        budget: `≥ ${BUDGET.filesSpeedup}× faster than guide`,
        pass: g.ms / cli.ms >= BUDGET.filesSpeedup,
      },
    )
    checks.push(
      {
        what: 'backup files speed-up vs guide',
        value: g.ms / cli.ms,
        budget: `≥ ${BUDGET.filesSpeedup}`,
        pass: g.ms / cli.ms >= BUDGET.filesSpeedup,
      },
      {
        what: 'backup files peak RSS (MB)',
        value: rssMb(cli.rssKb),
        budget: `≤ ${BUDGET.rssMb}`,
        pass: rssMb(cli.rssKb) <= BUDGET.rssMb,
      },
    )
    result.files = {guide: g, ref, cli, runs: m}
  }

  // ================================================================ report
  load.end = loadavg()[0]
  result.loadAverage = load
  result.checks = checks
  const ratio = (x) => (x === undefined || Number.isNaN(x) ? '–' : x.toFixed(2))
  const lines = []
  const dbInfo = result.databaseBytes
    ? `database ${(result.databaseBytes / 1e9).toFixed(2)} GB (${result.rows.toLocaleString('en')} rows, table ${(result.tableBytes / 1e9).toFixed(2)} GB, values ${DECIMALS === undefined ? 'full double precision' : `rounded to ${DECIMALS} decimals`})`
    : ''
  const filesInfo = result.uploadBytes
    ? `uploads ${(result.uploadBytes / 1e9).toFixed(2)} GB (${result.uploadFiles} files)`
    : ''
  lines.push(
    `bench/backup — ${[dbInfo, filesInfo].filter(Boolean).join('; ')}; runs ${RUNS} (median); load average ${load.start.toFixed(2)} → ${load.end.toFixed(2)} on ${result.cores} cores`,
  )
  lines.push('')
  lines.push('| part | what | wall s | size MB | × guide | × raw | budget | result |')
  lines.push('| --- | --- | ---: | ---: | ---: | ---: | --- | --- |')
  for (const r of rows)
    lines.push(
      `| ${r.part} | ${r.what.replaceAll('|', '\\|')} | ${s(r.ms)} | ${mb(r.size)} | ${ratio(r.vsGuide)} | ${ratio(r.vsRaw)} | ${r.budget} | ${r.pass === undefined ? '' : r.pass ? 'PASS' : 'MISS'} |`,
    )
  lines.push('')
  lines.push('| check | value | budget | result |')
  lines.push('| --- | ---: | --- | --- |')
  for (const c of checks) lines.push(`| ${c.what} | ${ratio(c.value)} | ${c.budget} | ${c.pass ? 'PASS' : 'MISS'} |`)
  process.stdout.write(`${lines.join('\n')}\n`)
  if (opts.json) process.stdout.write(`${JSON.stringify(result)}\n`)
  if (opts.check && checks.some((c) => !c.pass)) exitCode = 1
} catch (error) {
  process.stderr.write(`bench/backup failed: ${error?.stack ?? error}\n`)
  exitCode = 1
} finally {
  await runCleanups()
}
process.exit(exitCode)
