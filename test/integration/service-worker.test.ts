/**
 * Jobs survive a worker killed mid-job (completed exactly once after the restart) and a loss of
 * Redis (PostgreSQL is the source of truth; the worker re-enqueues what Redis lost).
 */
import fs from 'node:fs'
import path from 'node:path'

import {afterAll, beforeAll, describe, expect, it} from 'vitest'

import {waitUntil} from '../support/index.js'
import {waitForExit} from '../support/process.js'
import {startRedis} from '../support/redis.js'
import {startServiceUnderTest, type ServiceUnderTest} from './service-harness.js'

const SAMPLE = path.join(import.meta.dirname, '../../service/sample/session-02-overheat.csv')
let sut: ServiceUnderTest

beforeAll(async () => {
  sut = await startServiceUnderTest({name: 'worker'})
  await sut.startApi()
}, 120_000)

afterAll(async () => {
  await sut?.stopAll()
})

describe('analysis worker', () => {
  it('completes a job exactly once after the worker is killed mid-job', async () => {
    // The first worker pauses 30 s after claiming, so SIGKILL lands while the job is running.
    const first = await sut.startWorker('worker-1', {WORKER_PAUSE_AFTER_CLAIM_MS: '30000'})
    const up = await sut.uploadFile(SAMPLE)
    expect(up.status).toBe(202)
    const id = up.body.analysisId
    await waitUntil(
      async () =>
        (await sut.query<{status: string}>('SELECT status FROM analyses WHERE id = $1', [id]))[0]?.status === 'running',
      {timeoutMs: 20_000, what: 'the job to be claimed'},
    )
    first.kill('SIGKILL')
    expect(await waitForExit(first, 5000)).toBe(true)
    const [mid] = await sut.query<{status: string; attempts: number; n: string}>(
      'SELECT status, attempts, (SELECT count(*) FROM findings WHERE analysis_id = $1) AS n FROM analyses WHERE id = $1',
      [id],
    )
    expect(mid).toMatchObject({status: 'running', attempts: 1, n: '0'})

    // Same WORKER_ID restarts: it knows its predecessor is dead and takes the job back at once.
    await sut.startWorker('worker-1')
    const analysis = await sut.waitForAnalysis(id, 30_000)
    expect(analysis.status).toBe('done')
    expect(analysis.attempts).toBe(2)
    const expected = analysis.findingsCount
    expect(expected).toBeGreaterThan(0)
    const rows = await sut.query<{n: string}>('SELECT count(*) AS n FROM findings WHERE analysis_id = $1', [id])
    expect(Number(rows[0]!.n)).toBe(expected)
    // nothing left in Redis for it: not queued, not processing
    await waitUntil(
      async () => {
        const {Redis} = await import('ioredis')
        const r = new Redis(sut.redis.url)
        try {
          const lists = [
            ...(await r.lrange('charge-ops:analyses:queue', 0, -1)),
            ...(await r.lrange('charge-ops:analyses:processing', 0, -1)),
          ]
          return !lists.includes(id)
        } finally {
          r.disconnect()
        }
      },
      {timeoutMs: 5000, what: 'the Redis entry to be acknowledged'},
    )
  })

  it('re-enqueues analyses that PostgreSQL holds as queued after Redis lost its data', async () => {
    for (const w of sut.workers.values()) {
      w.kill('SIGTERM')
      await waitForExit(w, 10_000)
    }
    sut.workers.clear()
    const a = await sut.uploadFile(SAMPLE)
    const b = await sut.uploadFile(SAMPLE)
    const ids = [a.body.analysisId, b.body.analysisId]
    // Redis dies and comes back empty (no persistence): the queue entries are gone.
    const port = sut.redis.port
    const password = sut.redis.password
    await sut.redis.stop()
    const fresh = await startRedis({password, args: ['--port', String(port)]})
    Object.assign(sut, {redis: fresh})
    const {Redis} = await import('ioredis')
    const r = new Redis(fresh.url)
    expect(await r.llen('charge-ops:analyses:queue')).toBe(0)
    r.disconnect()
    await sut.startWorker('worker-2')
    for (const id of ids) {
      const done = await sut.waitForAnalysis(id, 30_000)
      expect(done.status).toBe('done')
      expect(done.attempts).toBe(1)
    }
  })

  it('drains promptly on SIGTERM even while Redis is down', async () => {
    const worker = sut.workers.get('worker-2')!
    await sut.redis.stop()
    await new Promise((r) => setTimeout(r, 500))
    const started = Date.now()
    worker.kill('SIGTERM')
    expect(await waitForExit(worker, 5000)).toBe(true)
    expect(fs.readFileSync(path.join(sut.env.LOG_DIR!, 'app.log'), 'utf8')).toContain('worker stopped')
    expect(worker.exitCode).toBe(0)
    expect(Date.now() - started).toBeLessThan(5000)
  })
})
