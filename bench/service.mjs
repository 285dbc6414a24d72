#!/usr/bin/env node
// bench/service: the bundled service's performance budgets (issue 3).
//   1. uploading a 100 MB session log keeps the API's RSS under 200 MB (peak VmHWM of the API
//      process, read from /proc/<pid>/status, plus VmRSS sampled every 20 ms during the upload);
//   2. the worker analyses at least 200,000 samples per second on one core (the analyzer is
//      single-threaded: measured in-process on the same file, and as the worker logged it).
// Runs against a throwaway sandbox (`charge-ops sandbox up --dir <tmp>`), removed at the end.
// Needs `npm run build` first. Usage: node bench/service.mjs [--keep]
import {execFileSync} from 'node:child_process'
import {createReadStream, mkdtempSync, readFileSync, rmSync, statSync, chmodSync} from 'node:fs'
import {tmpdir} from 'node:os'
import {join, resolve} from 'node:path'
import {Readable} from 'node:stream'

const root = resolve(import.meta.dirname, '..')
const RSS_BUDGET_MB = 200
const RATE_BUDGET = 200_000
const dir = mkdtempSync(join(tmpdir(), 'charge-ops-bench-service-'))
chmodSync(dir, 0o755)
const sandbox = join(dir, 'sandbox')
const cli = (...args) =>
  execFileSync(process.execPath, [join(root, 'bin/run.js'), ...args], {
    cwd: root,
    encoding: 'utf8',
    env: {...process.env, CI: 'true'},
    stdio: ['ignore', 'pipe', 'inherit'],
  })

const {writeLargeSession} = await import(join(root, 'dist/service/src/sample-data.js'))
const {analyzeFile} = await import(join(root, 'dist/service/src/analysis.js'))

try {
  console.error('== sandbox up (throwaway)')
  const up = JSON.parse(cli('sandbox', 'up', '--dir', sandbox, '--json'))
  const env = {...process.env, CHARGE_OPS_CONFIG: up.configPath}
  const status = JSON.parse(
    execFileSync(process.execPath, [join(root, 'bin/run.js'), 'service', 'status', '--json'], {env, encoding: 'utf8'}),
  )
  const apiPid = status.processes.find((p) => p.name === 'api').pid
  const token = execFileSync(process.execPath, [join(root, 'bin/run.js'), 'service', 'token'], {
    env,
    encoding: 'utf8',
  }).trim()

  const file = join(dir, 'big.csv')
  const samples = 1_750_000
  const bytes = await writeLargeSession(file, samples)
  console.error(`== generated ${file}: ${samples} samples, ${(bytes / 1e6).toFixed(1)} MB`)

  const kb = (field) =>
    Number(new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(readFileSync(`/proc/${apiPid}/status`, 'utf8'))[1])
  const rssBefore = kb('VmRSS')
  let rssMax = rssBefore
  const sampler = setInterval(() => (rssMax = Math.max(rssMax, kb('VmRSS'))), 20)
  const started = performance.now()
  const response = await fetch(`${up.apiUrl}/api/v1/uploads?filename=big.csv`, {
    method: 'POST',
    headers: {
      authorization: `Bearer ${token}`,
      'content-type': 'text/csv',
      'content-length': String(statSync(file).size),
    },
    body: Readable.toWeb(createReadStream(file, {highWaterMark: 1024 * 1024})),
    duplex: 'half',
  })
  const uploadSeconds = (performance.now() - started) / 1000
  clearInterval(sampler)
  const upload = await response.json()
  if (response.status !== 202) throw new Error(`upload answered ${response.status}: ${JSON.stringify(upload)}`)
  const hwm = kb('VmHWM')

  // the worker's own figure, from its log line for this analysis
  let workerRate
  for (let i = 0; i < 600 && workerRate === undefined; i++) {
    await new Promise((r) => setTimeout(r, 200))
    const line = readFileSync(join(sandbox, 'logs', 'app.log'), 'utf8')
      .split('\n')
      .find((l) => l.includes(upload.analysisId) && l.includes('analysis done'))
    if (line) workerRate = JSON.parse(line).samplesPerSecond
  }

  // in-process, one thread: best of 3
  let best = 0
  for (let i = 0; i < 3; i++) {
    const t = performance.now()
    const r = await analyzeFile(file)
    best = Math.max(best, r.metrics.samples / ((performance.now() - t) / 1000))
  }

  const mb = (k) => (k / 1024).toFixed(1)
  const rows = [
    ['upload size', `${(bytes / 1e6).toFixed(1)} MB`, '≤ 100 MiB (limit)', bytes <= 100 * 1024 * 1024],
    ['upload time', `${uploadSeconds.toFixed(2)} s (${(bytes / 1e6 / uploadSeconds).toFixed(0)} MB/s)`, '', true],
    ['API RSS before upload', `${mb(rssBefore)} MB`, '', true],
    ['API RSS max during upload (sampled)', `${mb(rssMax)} MB`, `< ${RSS_BUDGET_MB} MB`, rssMax / 1024 < RSS_BUDGET_MB],
    ['API peak RSS since start (VmHWM)', `${mb(hwm)} MB`, `< ${RSS_BUDGET_MB} MB`, hwm / 1024 < RSS_BUDGET_MB],
    [
      'analyzer, one core (best of 3)',
      `${Math.round(best).toLocaleString('en')} samples/s`,
      `≥ ${RATE_BUDGET.toLocaleString('en')}`,
      best >= RATE_BUDGET,
    ],
    [
      'worker as logged (incl. I/O)',
      workerRate ? `${workerRate.toLocaleString('en')} samples/s` : 'not seen',
      `≥ ${RATE_BUDGET.toLocaleString('en')}`,
      (workerRate ?? 0) >= RATE_BUDGET,
    ],
  ]
  console.log('bench/service')
  for (const [what, value, budget, ok] of rows)
    console.log(
      `  ${what.padEnd(38)} ${value.padEnd(30)} ${budget.padEnd(20)} ${budget ? (ok ? 'ok' : 'OVER BUDGET') : ''}`,
    )
  console.log(
    `  ratio RSS/budget ${(hwm / 1024 / RSS_BUDGET_MB).toFixed(2)}, throughput/budget ${(best / RATE_BUDGET).toFixed(1)}x`,
  )
  if (rows.some(([, , budget, ok]) => budget && !ok)) process.exitCode = 1
} finally {
  if (!process.argv.includes('--keep')) {
    try {
      cli('sandbox', 'down', '--dir', sandbox, '--purge', '--yes')
    } catch (error) {
      console.error(`sandbox down failed: ${error.message}`)
    }
    rmSync(dir, {recursive: true, force: true})
  }
}
