#!/usr/bin/env node
// Issue 15: the analysis page draws a 20,000-sample session in < 300 ms in headless Chromium.
// Serves the built UI (dist/web, `npm run build`) with a stand-in API answering one synthetic
// session (1 s samples, an over-temperature episode, a gap), opens /analyses/<id> in Debian's
// chromium (playwright-core, no browser download) and reads the page's own measure
// `charge-ops:draw`: from the curves' data in hand to the fifth chart drawn (shaping + uPlot).
// The baseline, in the same run and browser: the same page with a 1,000-sample session; the
// ratio is printed too. Rounds interleave the two sizes; medians.
// Usage: node bench/web-draw.mjs [--samples 20000] [--baseline 1000] [--runs 7] [--json] [--serve]
import {readFileSync, existsSync, mkdtempSync, rmSync} from 'node:fs'
import {createServer} from 'node:http'
import {tmpdir} from 'node:os'
import {extname, join, normalize} from 'node:path'
import {fileURLToPath} from 'node:url'

import {chromium} from 'playwright-core'

const root = fileURLToPath(new URL('..', import.meta.url))
const web = join(root, 'dist', 'web')
const arg = (name, fallback) => {
  const i = process.argv.indexOf(name)
  return i === -1 ? fallback : Number(process.argv[i + 1])
}
const samples = arg('--samples', 20_000)
const baseline = arg('--baseline', 1000)
const runs = arg('--runs', 7)
const json = process.argv.includes('--json')
const BUDGET_MS = 300
if (!existsSync(join(web, 'index.html'))) {
  console.error('bench/web-draw: dist/web is missing; run `npm run build` first')
  process.exit(2)
}

const T0 = Date.parse('2024-05-02T09:00:00Z') / 1000
function session(n) {
  const s = {samples: n, decimated: false, t: [], voltage: [], current: [], soc: [], temp: []}
  for (let i = 0; i < n; i++) {
    const gap = i > n / 2 ? 120 : 0 // one interruption in the middle
    s.t.push(T0 + i + gap)
    s.voltage.push(360 + (50 * i) / n + Math.sin(i / 7))
    s.current.push(i > n * 0.3 && i < n * 0.4 ? 90 : 240 + Math.sin(i / 11) * 5)
    s.soc.push(20 + (70 * i) / n)
    s.temp.push(25 + (35 * i) / n + (i > n * 0.6 && i < n * 0.7 ? 8 : 0))
  }
  const at = (i) => new Date((T0 + i + (i > n / 2 ? 120 : 0)) * 1000).toISOString()
  const analysis = {
    id: `00000000-0000-0000-0000-${String(n).padStart(12, '0')}`,
    status: 'done',
    error: null,
    summary: `synthetic session of ${n} samples`,
    metrics: {samples: n, startedAt: at(0), endedAt: at(n - 1), energyKwh: 50, peakPowerKw: 100},
    upload: {filename: `synthetic-${n}.csv`},
    findings: [
      {
        id: '1',
        kind: 'over_temperature',
        severity: 'critical',
        startedAt: at(Math.floor(n * 0.6)),
        endedAt: at(Math.floor(n * 0.7)),
        durationSeconds: n * 0.1,
        peakValue: 61,
        detail: '',
        passages: [],
      },
      {
        id: '2',
        kind: 'derating',
        severity: 'warning',
        startedAt: at(Math.floor(n * 0.3)),
        endedAt: at(Math.floor(n * 0.4)),
        durationSeconds: n * 0.1,
        peakValue: 90,
        detail: '',
        passages: [],
      },
      {
        id: '3',
        kind: 'interruption',
        severity: 'warning',
        startedAt: at(Math.floor(n / 2)),
        endedAt: at(Math.floor(n / 2) + 1),
        durationSeconds: 121,
        peakValue: 121,
        detail: '',
        passages: [],
      },
    ],
  }
  return {analysis, series: s}
}
const sessions = new Map([samples, baseline].map((n) => [session(n).analysis.id, session(n)]))

const types = {'.html': 'text/html', '.js': 'text/javascript', '.css': 'text/css', '.json': 'application/json'}
const server = createServer((req, res) => {
  const path = req.url.split('?')[0]
  const send = (status, body, type = 'application/json') => {
    res.writeHead(status, {'content-type': type, 'cache-control': 'no-cache'})
    res.end(typeof body === 'string' || Buffer.isBuffer(body) ? body : JSON.stringify(body))
  }
  if (path === '/health')
    return send(200, {status: 'ok', version: 'bench', failing: [], checks: {}, maintenance: false})
  const m = /^\/api\/v1\/analyses\/([0-9a-f-]+)(\/series)?$/.exec(path)
  if (m) {
    const s = sessions.get(m[1])
    return s ? send(200, m[2] ? s.series : s.analysis) : send(404, {error: {code: 'not_found', message: 'no'}})
  }
  if (path.startsWith('/api/')) return send(404, {error: {code: 'not_found', message: path}})
  const file = normalize(join(web, path === '/' || !extname(path) ? 'index.html' : path))
  if (!file.startsWith(web) || !existsSync(file)) return send(404, 'not found', 'text/plain')
  return send(200, readFileSync(file), types[extname(file)] ?? 'application/octet-stream')
})
await new Promise((r) => server.listen(0, '127.0.0.1', r))
const base = `http://127.0.0.1:${server.address().port}`
if (process.argv.includes('--serve')) {
  // for looking at it: the stand-in API and the UI until Ctrl-C
  console.log(`${base}/analyses/${session(samples).analysis.id}  (token: any)`)
  await new Promise(() => {})
}

const profile = mkdtempSync(join(tmpdir(), 'charge-ops-bench-chromium-'))
const context = await chromium.launchPersistentContext(profile, {
  executablePath: '/usr/bin/chromium',
  headless: true,
  args: [
    '--headless',
    '--no-sandbox',
    '--disable-gpu',
    '--disable-quic',
    '--no-first-run',
    '--disable-background-networking',
    '--disable-component-update',
    '--disable-sync',
  ],
  viewport: {width: 1280, height: 1000},
})
await context.addInitScript(() => sessionStorage.setItem('charge-ops.token', 'bench'))
const page = context.pages()[0] ?? (await context.newPage())

async function drawOnce(n) {
  const id = session(n).analysis.id
  await page.goto(`${base}/analyses/${id}`)
  await page.waitForFunction(() => performance.getEntriesByName('charge-ops:draw').length > 0, null, {timeout: 30_000})
  const [draw, shape] = await page.evaluate(() =>
    ['charge-ops:draw', 'charge-ops:shape'].map((name) => performance.getEntriesByName(name)[0].duration),
  )
  shapes[n].push(shape)
  return draw
}

const median = (a) => [...a].sort((x, y) => x - y)[Math.floor(a.length / 2)]
const times = {[samples]: [], [baseline]: []}
const shapes = {[samples]: [], [baseline]: []}
try {
  await drawOnce(baseline) // warm: the chunks in cache, JIT
  for (let i = 0; i < runs; i++)
    for (const n of i % 2 ? [baseline, samples] : [samples, baseline]) times[n].push(await drawOnce(n))
} finally {
  await context.close()
  rmSync(profile, {recursive: true, force: true})
  server.close()
}
const big = median(times[samples])
const small = median(times[baseline])
const result = {
  samples,
  drawMs: Number(big.toFixed(1)),
  shapeMs: Number(median(shapes[samples]).toFixed(1)),
  baselineSamples: baseline,
  baselineDrawMs: Number(small.toFixed(1)),
  ratio: Number((big / small).toFixed(2)),
  budgetMs: BUDGET_MS,
  runs,
  ok: big < BUDGET_MS,
}
if (json) console.log(JSON.stringify(result))
else {
  console.log(
    `analysis page, ${samples.toLocaleString('en')} samples: draw ${result.drawMs} ms (median of ${runs}; budget < ${BUDGET_MS} ms; of which shaping ${result.shapeMs} ms) ${result.ok ? 'OK' : 'OVER BUDGET'}`,
  )
  console.log(
    `baseline, ${baseline.toLocaleString('en')} samples: ${result.baselineDrawMs} ms — ratio ${result.ratio}×`,
  )
}
process.exit(result.ok ? 0 : 1)
