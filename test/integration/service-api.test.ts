/**
 * The bundled service end to end against real PostgreSQL, Redis and Chroma: upload → analysis →
 * findings with correct metrics, knowledge search, maintenance mode, /health when Redis stops.
 */
import fs from 'node:fs'
import path from 'node:path'

import {afterAll, beforeAll, describe, expect, it} from 'vitest'

import {setMaintenance} from '../../src/service/maintenance.js'
import {startServiceUnderTest, type ServiceUnderTest} from './service-harness.js'
import {waitUntil} from '../support/index.js'

// A hand-checkable session: 10 s steps at 400 V. Energy = Σ V·I·dt over charging intervals.
// 08:00:00–08:00:40: 100 A (5 samples) → 4 intervals × 400 V × 100 A × 10 s = 1.6 MJ
// 08:00:40 → 08:02:00: gap of 80 s (interruption, not counted)
// 08:02:00–08:02:30: 200 A, 4 samples, temp 56–61 (over-temperature, critical), intervals 3 × 400 × 200 × 10 = 2.4 MJ
// then the last sample at 08:02:40, 700 V (abnormal: +75 % over the running average), current 0
// energy = 4.0 MJ = 1.1111 kWh; charging seconds = 40 + 30 + 10 = 80 (the 08:02:30→08:02:40 interval has I = 200 > 0) → +0.8 MJ
const KNOWN = [
  'timestamp,voltage_v,current_a,soc_pct,battery_temp_c,charger_status',
  '2024-06-01T08:00:00Z,400,100,20,30,charging',
  '2024-06-01T08:00:10Z,400,100,21,30,charging',
  '2024-06-01T08:00:20Z,400,100,22,31,charging',
  '2024-06-01T08:00:30Z,400,100,23,31,charging',
  '2024-06-01T08:00:40Z,400,100,24,32,charging',
  '2024-06-01T08:02:00Z,400,200,25,56,charging',
  '2024-06-01T08:02:10Z,400,200,27,58,charging',
  '2024-06-01T08:02:20Z,400,200,29,61,charging',
  '2024-06-01T08:02:30Z,400,200,31,59,charging',
  '2024-06-01T08:02:40Z,700,0,32,50,complete',
].join('\n')

let sut: ServiceUnderTest

beforeAll(async () => {
  sut = await startServiceUnderTest({name: 'api', env: {MAX_UPLOAD_BYTES: String(1024 * 1024)}})
  await sut.startApi()
  await sut.startWorker()
}, 120_000)

afterAll(async () => {
  await sut?.stopAll()
})

describe('bundled service', () => {
  it('refuses /api/v1 without a valid bearer token', async () => {
    const none = await fetch(`${sut.baseUrl}/api/v1/sessions`)
    expect(none.status).toBe(401)
    const bad = await sut.request('GET', '/api/v1/sessions', undefined, {authorization: 'Bearer not.a.jwt'})
    expect(bad.status).toBe(401)
  })

  it('plants a knowledge passage and finds it by search', async () => {
    const created = await sut.request('POST', '/api/v1/knowledge', {
      documents: [
        {
          title: 'Thermal runaway precursors',
          text: 'When the battery temperature exceeds 60 °C during DC fast charging, the cooling loop may have failed. Inspect the coolant pump and the thermal interface material.',
        },
        {
          title: 'Contactor wear',
          text: 'Voltage spikes at the start of a session often come from a worn main contactor or a loose high-voltage connector.',
        },
        {
          title: 'Grid limits',
          text: 'Sites with a limited grid connection reduce the power of every charger when several vehicles charge at once.',
        },
      ],
    })
    expect(created.status).toBe(201)
    expect(created.body.documents).toHaveLength(3)
    const search = await sut.request(
      'GET',
      `/api/v1/knowledge/search?q=${encodeURIComponent('coolant pump failed, battery temperature too high')}`,
    )
    expect(search.status).toBe(200)
    expect(search.body.results[0].title).toBe('Thermal runaway precursors')
    // PostgreSQL and Chroma agree: 3 passages each
    const rows = await sut.query<{n: string}>('SELECT count(*) AS n FROM knowledge_passages')
    expect(Number(rows[0]!.n)).toBe(3)
    // the same document again is not duplicated
    const again = await sut.request('POST', '/api/v1/knowledge', {
      title: 'Contactor wear',
      text: 'Voltage spikes at the start of a session often come from a worn main contactor or a loose high-voltage connector.',
    })
    expect(again.body.documents[0].created).toBe(false)
    expect(Number((await sut.query<{n: string}>('SELECT count(*) AS n FROM knowledge_passages'))[0]!.n)).toBe(3)
  })

  it('uploads a known session, analyses it and stores correct metrics and findings', async () => {
    const upload = await sut.request('POST', '/api/v1/uploads?filename=known.csv', KNOWN + '\n')
    expect(upload.status).toBe(202)
    const {analysisId, uploadId, sha256, bytes} = upload.body
    expect(bytes).toBe(Buffer.byteLength(KNOWN + '\n'))
    const analysis = await sut.waitForAnalysis(analysisId)
    expect(analysis.status).toBe('done')
    expect(analysis.attempts).toBe(1)
    const m = analysis.metrics
    expect(m.samples).toBe(10)
    expect(m.durationSeconds).toBe(160)
    expect(m.chargingSeconds).toBe(80)
    expect(m.energyKwh).toBeCloseTo(4.8e6 / 3.6e6, 3)
    expect(m.peakPowerKw).toBeCloseTo(80, 5)
    expect(m.avgPowerKw).toBeCloseTo(4.8e6 / 3.6e6 / (80 / 3600), 2)
    expect([m.socStart, m.socEnd, m.socMin, m.socMax]).toEqual([20, 32, 20, 32])
    expect(m.peakTempC).toBe(61)

    const rows = await sut.query<{
      kind: string
      severity: string
      started_at: Date
      ended_at: Date
      peak_value: number
    }>(
      'SELECT kind, severity, started_at, ended_at, peak_value FROM findings WHERE analysis_id = $1 ORDER BY started_at, kind',
      [analysisId],
    )
    expect(rows.map((r) => `${r.kind}/${r.severity}`)).toEqual([
      'interruption/warning',
      'over_temperature/critical',
      'abnormal_voltage/warning',
    ])
    expect(rows[1]!.peak_value).toBe(61)
    expect(rows[1]!.started_at.toISOString()).toBe('2024-06-01T08:02:00.000Z')
    expect(rows[1]!.ended_at.toISOString()).toBe('2024-06-01T08:02:30.000Z')

    // each finding links to knowledge passages; over-temperature to the thermal document
    const hot = analysis.findings.find((f: any) => f.kind === 'over_temperature')
    expect(hot.passages.length).toBeGreaterThan(0)
    expect(hot.passages[0].title).toBe('Thermal runaway precursors')

    // the upload is on disk where PostgreSQL says, with the recorded checksum
    const [u] = await sut.query<{path: string; sha256: string}>('SELECT path, sha256 FROM uploads WHERE id = $1', [
      uploadId,
    ])
    const onDisk = fs.readFileSync(path.join(sut.env.UPLOADS_DIR!, u!.path))
    expect(u!.sha256).toBe(sha256)
    expect((await import('node:crypto')).createHash('sha256').update(onDisk).digest('hex')).toBe(sha256)

    const sessions = await sut.request('GET', '/api/v1/sessions')
    expect(
      sessions.body.sessions.some(
        (s: any) => s.analysisId === analysisId && s.status === 'done' && s.findingsCount === 3,
      ),
    ).toBe(true)
  })

  it('analyses the committed sample sessions (multipart uploads) with the expected findings', async () => {
    const dir = path.join(import.meta.dirname, '../../service/sample')
    const expected: Record<string, string[]> = {
      'session-01-healthy.csv': [],
      'session-02-overheat.csv': ['derating', 'over_temperature'],
      'session-03-interrupted.csv': ['interruption'],
      'session-04-voltage-spike.csv': ['abnormal_voltage'],
      'session-05-derating.csv': ['derating'],
    }
    for (const [file, kinds] of Object.entries(expected)) {
      const up = await sut.uploadFile(path.join(dir, file))
      expect(up.status).toBe(202)
      const analysis = await sut.waitForAnalysis(up.body.analysisId)
      expect(analysis.status, file).toBe('done')
      expect([...new Set(analysis.findings.map((f: any) => f.kind))].sort(), file).toEqual(kinds)
    }
  })

  it('refuses an upload over the size limit (413) and keeps nothing of it', async () => {
    const before = await sut.query<{n: string}>('SELECT count(*) AS n FROM uploads')
    const line = '2024-06-01T08:00:00Z,400,100,20,30,charging\n'
    const big = KNOWN + '\n' + line.repeat(Math.ceil((1.5 * 1024 * 1024) / line.length))
    const raw = await sut.request('POST', '/api/v1/uploads', big)
    expect(raw.status).toBe(413)
    const form = new FormData()
    form.append('file', new Blob([big], {type: 'text/csv'}), 'big.csv')
    const multipart = await fetch(`${sut.baseUrl}/api/v1/uploads`, {
      method: 'POST',
      headers: {authorization: `Bearer ${sut.token}`},
      body: form,
    })
    expect(multipart.status).toBe(413)
    const after = await sut.query<{n: string}>('SELECT count(*) AS n FROM uploads')
    expect(after[0]!.n).toBe(before[0]!.n)
    expect(fs.readdirSync(path.join(sut.env.UPLOADS_DIR!, '.incoming'))).toEqual([])
  })

  it('refuses a file that is not a session log at upload (422, line 1 named) and keeps nothing of it', async () => {
    const before = await sut.query<{n: string}>('SELECT count(*) AS n FROM uploads')
    const upload = await sut.request('POST', '/api/v1/uploads', 'a,b,c\n1,2,3\n')
    expect(upload.status).toBe(422)
    expect(upload.body.error.code).toBe('not_a_session_log')
    expect(upload.body.error.message).toMatch(/^line 1: unexpected header "a,b,c"; expected timestamp,voltage_v/)
    // a header without a newline (the whole file is one line) is judged when the body ends
    const oneLine = await sut.request('POST', '/api/v1/uploads', 'hello')
    expect(oneLine.status).toBe(422)
    const after = await sut.query<{n: string}>('SELECT count(*) AS n FROM uploads')
    expect(after[0]!.n).toBe(before[0]!.n)
    expect(fs.readdirSync(path.join(sut.env.UPLOADS_DIR!, '.incoming'))).toEqual([])
  })

  it('still fails, in the worker, a log whose header is right but whose lines are not', async () => {
    const upload = await sut.request('POST', '/api/v1/uploads', KNOWN.split('\n')[0] + '\nnot,a,valid,line,at,all\n')
    expect(upload.status).toBe(202)
    const analysis = await sut.waitForAnalysis(upload.body.analysisId)
    expect(analysis.status).toBe('failed')
    expect(analysis.error).toMatch(/no valid samples|invalid lines/)
  })

  it('takes frontend error reports into logs/error.log, authenticated, and never logs the token', async () => {
    const res = await sut.request('POST', '/api/v1/logs', {
      level: 'error',
      message: 'TypeError: x is undefined',
      url: '/sessions',
    })
    expect(res.status).toBe(202)
    // written asynchronously by the logger: wait for the line, not for a time
    const errorFile = path.join(sut.env.LOG_DIR!, 'error.log')
    await waitUntil(
      async () => fs.existsSync(errorFile) && fs.readFileSync(errorFile, 'utf8').includes('TypeError: x is undefined'),
      {timeoutMs: 10_000, intervalMs: 20, what: 'the report in error.log'},
    )
    const errorLog = fs.readFileSync(errorFile, 'utf8')
    expect(errorLog).toContain('TypeError: x is undefined')
    const all = fs.readFileSync(path.join(sut.env.LOG_DIR!, 'app.log'), 'utf8') + errorLog
    expect(all).not.toContain(sut.token)
    expect(all).not.toContain(sut.env.SECRET_KEY)
    expect(all).not.toContain(sut.redis.password!)
  })

  it('maintenance mode blocks writes with 503 + Retry-After and keeps reads working', async () => {
    const settings = {stateDir: sut.env.CHARGE_OPS_STATE_DIR!, redisUrl: sut.redis.url} as never
    await setMaintenance(settings, true, 'restore drill')
    try {
      const write = await sut.request('POST', '/api/v1/uploads', KNOWN)
      expect(write.status).toBe(503)
      expect(write.headers.get('retry-after')).toMatch(/^\d+$/)
      expect(write.body.error.message).toContain('restore drill')
      const read = await sut.request('GET', '/api/v1/sessions')
      expect(read.status).toBe(200)
      const health: any = await (await fetch(`${sut.baseUrl}/health`)).json()
      expect(health.maintenance).toBe(true)
    } finally {
      await setMaintenance(settings, false)
    }
    const after = await sut.request('POST', '/api/v1/knowledge', {
      title: 'After maintenance',
      text: 'Writes work again.',
    })
    expect(after.status).toBe(201)
  })

  it('exposes the key metrics', async () => {
    const text = await (await fetch(`${sut.baseUrl}/metrics`)).text()
    for (const name of [
      'charge_analysis_http_requests_total',
      'charge_analysis_http_request_duration_seconds',
      'charge_analysis_queue_depth',
      'charge_analysis_active_analyses',
      'charge_analysis_vector_search_seconds',
      'charge_analysis_db_cache_hit_ratio',
    ]) {
      expect(text).toContain(name)
    }
    expect(text).toMatch(/charge_analysis_analyses\{status="done",service="charge-analysis"\} [1-9]/)
  })

  it('/health is 200 with every store up and 503 naming redis when Redis stops', async () => {
    const ok = await fetch(`${sut.baseUrl}/health`)
    expect(ok.status).toBe(200)
    expect(((await ok.json()) as any).failing).toEqual([])
    await sut.redis.stop()
    const down = await fetch(`${sut.baseUrl}/health`)
    expect(down.status).toBe(503)
    const body: any = await down.json()
    expect(body.failing).toEqual(['redis'])
    expect(body.checks.postgres.status).toBe('ok')
    expect(body.checks.chroma.status).toBe('ok')
  })
})
