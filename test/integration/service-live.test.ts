/**
 * What the web UI needs from the service, against real PostgreSQL, Redis and Chroma:
 * GET /ws (token in the first message; analysis state changes pushed from the worker through Redis
 * pub/sub; maintenance switches), the curves endpoint, sorted sessions, /health's maintenance
 * reason, and the built UI served at / with its caching and Content-Security-Policy.
 */
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'

import {afterAll, beforeAll, describe, expect, it} from 'vitest'
import WebSocket from 'ws'

import {setMaintenance} from '../../src/service/maintenance.js'
import {checkWebUi} from '../../src/upgrade/web-ui.js'
import {waitUntil} from '../support/index.js'
import {ROOT, startServiceUnderTest, type ServiceUnderTest} from './service-harness.js'

let sut: ServiceUnderTest
let webRoot: string

beforeAll(async () => {
  // a stand-in build (the real one is exercised by test/e2e/web-ui.test.ts)
  webRoot = fs.mkdtempSync(path.join(os.tmpdir(), 'charge-web-'))
  fs.mkdirSync(path.join(webRoot, 'assets'))
  fs.writeFileSync(
    path.join(webRoot, 'index.html'),
    '<!doctype html><title>ui</title><script type="module" src="/assets/app-abc123.js"></script>',
  )
  fs.writeFileSync(path.join(webRoot, 'assets', 'app-abc123.js'), 'console.log(1)')
  fs.writeFileSync(path.join(webRoot, 'config.json'), '{}')
  sut = await startServiceUnderTest({name: 'live', env: {WEB_ROOT: webRoot}})
  await sut.startApi()
  await sut.startWorker()
}, 120_000)

afterAll(async () => {
  await sut?.stopAll()
  fs.rmSync(webRoot, {recursive: true, force: true})
})

function connect(token: string): {socket: WebSocket; messages: any[]; closed: Promise<number>} {
  const socket = new WebSocket(`${sut.baseUrl.replace('http', 'ws')}/ws`)
  const messages: any[] = []
  socket.on('open', () => socket.send(JSON.stringify({type: 'auth', token})))
  socket.on('message', (data) => messages.push(JSON.parse(String(data))))
  const closed = new Promise<number>((resolve) => socket.on('close', (code) => resolve(code)))
  return {socket, messages, closed}
}

describe('live status over /ws', () => {
  it('closes an unauthenticated socket with 4401 and sends it nothing', async () => {
    const bad = connect('not.a.jwt')
    expect(await bad.closed).toBe(4401)
    expect(bad.messages).toEqual([])
  })

  it('pushes queued → running → done of an upload, and maintenance switches', async () => {
    const live = connect(sut.token)
    await waitUntil(async () => live.messages.some((m) => m.type === 'hello'), {timeoutMs: 10_000, what: 'hello'})
    const csv = fs.readFileSync(path.join(ROOT, 'service/sample/session-02-overheat.csv'), 'utf8')
    const upload = await sut.request('POST', '/api/v1/uploads?filename=overheat.csv', csv)
    expect(upload.status).toBe(202)
    const id = upload.body.analysisId
    await waitUntil(async () => live.messages.some((m) => m.analysisId === id && m.status === 'done'), {
      timeoutMs: 30_000,
      what: 'the done event',
    })
    const states = live.messages.filter((m) => m.analysisId === id).map((m) => m.status)
    expect(states).toEqual(['queued', 'running', 'done'])
    const done = live.messages.find((m) => m.analysisId === id && m.status === 'done')
    const analysis = await sut.waitForAnalysis(id)
    expect(done.findingsCount).toBe(analysis.findings.length)

    const settings = {stateDir: sut.env.CHARGE_OPS_STATE_DIR!, redisUrl: sut.redis.url} as never
    await setMaintenance(settings, true, 'upgrade to 1.2')
    try {
      await waitUntil(async () => live.messages.some((m) => m.type === 'maintenance' && m.on), {
        timeoutMs: 10_000,
        what: 'the maintenance event',
      })
      expect(live.messages.find((m) => m.type === 'maintenance').reason).toBe('upgrade to 1.2')
      const health: any = await (await fetch(`${sut.baseUrl}/health`)).json()
      expect(health.maintenanceReason).toBe('upgrade to 1.2')
    } finally {
      await setMaintenance(settings, false)
    }
    live.socket.close()
  })
})

describe('what the analysis page and the list read', () => {
  it('serves the curves as columns, every sample of a small session', async () => {
    const upload = await sut.request(
      'POST',
      '/api/v1/uploads?filename=s2.csv',
      fs.readFileSync(path.join(ROOT, 'service/sample/session-02-overheat.csv'), 'utf8'),
    )
    const analysis = await sut.waitForAnalysis(upload.body.analysisId)
    const series = await sut.request('GET', `/api/v1/analyses/${upload.body.analysisId}/series`)
    expect(series.status).toBe(200)
    expect(series.body.decimated).toBe(false)
    expect(series.body.samples).toBe(analysis.metrics.samples)
    expect(series.body.t).toHaveLength(analysis.metrics.samples)
    expect(series.body.t[0]).toBe(Date.parse(analysis.metrics.startedAt) / 1000)
    expect(Math.max(...series.body.temp)).toBe(analysis.metrics.peakTempC)
    // decimated: bounded, and the temperature peak survives
    const small = await sut.request('GET', `/api/v1/analyses/${upload.body.analysisId}/series?max=100`)
    expect(small.body.decimated).toBe(true)
    expect(small.body.t.length).toBeLessThanOrEqual(100)
    expect(Math.max(...small.body.temp)).toBe(analysis.metrics.peakTempC)
    expect((await sut.request('GET', '/api/v1/analyses/00000000-0000-0000-0000-000000000000/series')).status).toBe(404)
  })

  it('sorts the sessions by a whitelisted column only', async () => {
    const byEnergy = await sut.request('GET', '/api/v1/sessions?sort=energy&order=asc')
    expect(byEnergy.status).toBe(200)
    const energies = byEnergy.body.sessions
      .map((s: any) => s.metrics?.energyKwh)
      .filter((e: unknown) => e !== undefined)
    expect(energies).toEqual([...energies].sort((a: number, b: number) => a - b))
    expect((await sut.request('GET', '/api/v1/sessions?sort=u.id;DROP')).status).toBe(400)
    expect((await sut.request('GET', '/api/v1/sessions?sort=__proto__')).status).toBe(400)
  })
})

describe('the built UI at /', () => {
  it('serves index.html for the UI paths (no cache, CSP) and hashed assets for a year', async () => {
    for (const url of ['/', '/sessions', '/analyses/abc']) {
      const page = await fetch(`${sut.baseUrl}${url}`)
      expect(page.status).toBe(200)
      expect(await page.text()).toContain('<title>ui</title>')
      expect(page.headers.get('cache-control')).toBe('no-cache')
      expect(page.headers.get('content-security-policy')).toContain("script-src 'self'")
    }
    const asset = await fetch(`${sut.baseUrl}/assets/app-abc123.js`)
    expect(asset.status).toBe(200)
    expect(asset.headers.get('cache-control')).toContain('immutable')
    expect((await fetch(`${sut.baseUrl}/config.json`)).headers.get('cache-control')).toBe('no-cache')
    // a missing asset or API path is a 404, never the page
    expect((await fetch(`${sut.baseUrl}/assets/gone-000.js`)).status).toBe(404)
    const api = await fetch(`${sut.baseUrl}/api/v1/nothing`, {headers: {authorization: `Bearer ${sut.token}`}})
    expect(api.status).toBe(404)
    expect(await api.json()).toHaveProperty('error.code', 'not_found')
  })

  it("upgrade's verify: the page and the script it names answer; a missing script is a failure", async () => {
    expect(await checkWebUi(sut.baseUrl)).toEqual({
      served: true,
      ok: true,
      detail: 'GET / → 200, /assets/app-abc123.js → 200',
    })
    fs.renameSync(path.join(webRoot, 'assets', 'app-abc123.js'), path.join(webRoot, 'assets', 'gone.js'))
    try {
      expect(await checkWebUi(sut.baseUrl)).toMatchObject({
        served: true,
        ok: false,
        detail: expect.stringContaining('/assets/app-abc123.js → 404'),
      })
    } finally {
      fs.renameSync(path.join(webRoot, 'assets', 'gone.js'), path.join(webRoot, 'assets', 'app-abc123.js'))
    }
    // nothing listening is a failure, not "no UI"
    const closed = `http://127.0.0.1:1`
    expect((await checkWebUi(closed, 1000)).ok).toBe(false)
  })
})
