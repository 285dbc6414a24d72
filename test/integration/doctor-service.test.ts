/**
 * doctor's service check with the bundled service really running (src/service/process.ts
 * startService: API + a worker as background processes with pid files) against real PostgreSQL,
 * Redis and Chroma: /health green → service.processes and service.health OK; Redis stopped →
 * service.health critical naming Redis (the service's own /health says which store fails), and
 * redis.writable names the refusal.
 */
import {randomBytes} from 'node:crypto'
import {mkdtempSync, rmSync, writeFileSync} from 'node:fs'
import {tmpdir} from 'node:os'
import {join} from 'node:path'

import {afterAll, beforeAll, describe, expect, it} from 'vitest'

import {renderText, type Report} from '../../src/capacity/render.js'
import {loadSettings, type Settings} from '../../src/config/settings.js'
import {doctorFailed, runDoctor} from '../../src/doctor/index.js'
import {bundledMigrationsDir, migrateUp} from '../../src/migrate/index.js'
import {silentLogger} from '../../src/output/logger.js'
import {startService, stopService} from '../../src/service/process.js'
import {freePort, sharedChroma, sharedPostgres, startRedis, type RedisServer} from '../support/index.js'

const REDIS_PASSWORD = `redis-${randomBytes(8).toString('hex')}`
const SECRET_KEY = randomBytes(32).toString('hex')
let dir: string
let redis: RedisServer
let settings: Settings
let started = false

const find = (r: Report, id: string) => r.checks.find((c) => c.id === id)
const doctor = () => runDoctor({settings, logger: silentLogger})

beforeAll(async () => {
  const databaseUrl = await sharedPostgres().createDatabase()
  await migrateUp({databaseUrl, migrationsDir: bundledMigrationsDir()})
  redis = await startRedis({password: REDIS_PASSWORD})
  dir = mkdtempSync(join(tmpdir(), 'doctor-service-'))
  const port = await freePort()
  writeFileSync(join(dir, 'charge-ops.yaml'), 'stack: doctor-svc\nservice:\n  workers: 1\n')
  writeFileSync(
    join(dir, '.env'),
    [
      `DATABASE_URL=${databaseUrl}`,
      `REDIS_URL=${redis.url}`,
      `SECRET_KEY=${SECRET_KEY}`,
      `CHROMA_URL=${sharedChroma().url}`,
      'UPLOADS_DIR=./uploads',
      'HOST=127.0.0.1',
      `PORT=${port}`,
      '',
    ].join('\n'),
    {mode: 0o600},
  )
  settings = loadSettings({cwd: dir, env: {}})
  await startService(settings, {workers: 1, timeoutMs: 60_000})
  started = true
}, 120_000)

afterAll(async () => {
  if (started) await stopService(settings, {timeoutMs: 10_000})
  await redis?.stop()
  if (dir) rmSync(dir, {recursive: true, force: true})
})

describe('doctor: the running service', () => {
  it('/health green → the service checks are OK', async () => {
    const report = await doctor()
    const processes = find(report, 'service.processes')!
    expect(processes).toMatchObject({status: 'ok', value: 0})
    expect(processes.message).toBe('2 processes running (api, worker-1)')
    const health = find(report, 'service.health')!
    expect(health.status).toBe('ok')
    expect(health.message).toMatch(
      new RegExp(`^http://127\\.0\\.0\\.1:${settings.backendEnv.PORT}: ok \\(version \\S+\\)$`),
    )
    expect(find(report, 'redis.writable')).toMatchObject({status: 'ok'})
    expect(find(report, 'postgres.connect')).toMatchObject({status: 'ok'})
    expect(find(report, 'migrations')).toMatchObject({status: 'ok'})
    expect(find(report, 'chroma.heartbeat')).toMatchObject({status: 'ok'})
  })

  it('Redis stopped → service.health is critical and names Redis; no secret is printed', async () => {
    await redis.stop()
    const report = await doctor()
    const health = find(report, 'service.health')!
    expect(health.status).toBe('critical')
    expect(health.message).toMatch(/: fail, failing: redis\b/)
    expect(health.message).not.toMatch(/postgres|chroma/)
    expect(health.remedy).toMatch(/failing dependency/)
    expect(find(report, 'redis.writable')).toMatchObject({status: 'critical', labels: {cause: 'REDIS_REFUSED'}})
    expect(doctorFailed(report)).toBe(true)
    const text = renderText(report)
    expect(text).toMatch(/CRITICAL\s+service\.health/)
    for (const secret of [REDIS_PASSWORD, SECRET_KEY, new URL(settings.databaseUrl!).password])
      expect(JSON.stringify(report) + text).not.toContain(secret)
  })
})
