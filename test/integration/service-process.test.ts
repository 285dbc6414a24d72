/**
 * `charge-ops service start|stop|status|maintenance|token` as a user runs them (the built
 * bin/run.js), against real PostgreSQL / Redis / Chroma: background processes with pid files,
 * a second start refused (exit 4), graceful stop, maintenance mode through the CLI.
 */
import {randomBytes} from 'node:crypto'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'

import {afterAll, beforeAll, describe, expect, it} from 'vitest'

import {migrateUp} from '../../src/migrate/index.js'
import {
  cleanEnv,
  freePort,
  runUnchecked,
  sharedChroma,
  sharedPostgres,
  startRedis,
  type RedisServer,
} from '../support/index.js'
import {pidAlive} from '../support/process.js'
import {killPointEnv, readReached} from '../support/cli.js'

const ROOT = path.resolve(import.meta.dirname, '../..')
let dir: string
let redis: RedisServer
let env: NodeJS.ProcessEnv

const cli = (...args: string[]) =>
  runUnchecked(process.execPath, [path.join(ROOT, 'bin/run.js'), ...args], {cwd: dir, env})

beforeAll(async () => {
  if (!fs.existsSync(path.join(ROOT, 'dist/service/src/server.js')))
    throw new Error('run `npm run build` first: this test runs the built CLI')
  const databaseUrl = await sharedPostgres().createDatabase()
  await migrateUp({databaseUrl, migrationsDir: path.join(ROOT, 'service/migrations')})
  redis = await startRedis({password: randomBytes(8).toString('hex')})
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'charge-svc-process-'))
  const port = await freePort()
  fs.writeFileSync(path.join(dir, 'charge-ops.yaml'), 'stack: proc-test\nservice:\n  workers: 2\n')
  fs.writeFileSync(
    path.join(dir, '.env'),
    [
      `DATABASE_URL=${databaseUrl}`,
      `REDIS_URL=${redis.url}`,
      `SECRET_KEY=${randomBytes(32).toString('hex')}`,
      `CHROMA_URL=${sharedChroma().url}`,
      'UPLOADS_DIR=./uploads',
      'HOST=127.0.0.1',
      `PORT=${port}`,
      '',
    ].join('\n'),
    {mode: 0o600},
  )
  env = cleanEnv({CI: 'true'})
}, 120_000)

afterAll(async () => {
  if (dir) await cli('service', 'stop', '--timeout', '5')
  await redis?.stop()
  if (dir) fs.rmSync(dir, {recursive: true, force: true})
})

describe('charge-ops service', () => {
  it('starts API + workers in the background, refuses a second start, reports status, stops gracefully', async () => {
    const start = await cli('service', 'start', '--json')
    expect(start.code, start.stderr).toBe(0)
    const started = JSON.parse(start.stdout)
    expect(started.processes.map((p: {name: string}) => p.name)).toEqual(['api', 'worker-1', 'worker-2'])
    expect(started.health.status).toBe('ok')
    for (const p of started.processes) {
      expect(pidAlive(p.pid)).toBe(true)
      expect(fs.readFileSync(path.join(dir, '.charge-ops/run', `${p.name}.pid`), 'utf8').trim()).toBe(String(p.pid))
      // no secret in any process's argv
      const argv = fs.readFileSync(`/proc/${p.pid}/cmdline`, 'utf8')
      expect(argv).not.toContain(redis.password!)
      expect(argv).not.toContain('postgresql://')
    }

    const twice = await cli('service', 'start')
    expect(twice.code).toBe(4)
    expect(twice.stderr).toContain('already running')
    expect(twice.stderr).toContain('hint:')

    const status = await cli('service', 'status')
    expect(status.code).toBe(0)
    expect(status.stdout).toMatch(/api\s+\d+\s+running/)
    expect(status.stdout).toContain('health: ok')

    const token = (await cli('service', 'token', '--subject', 'it', '--ttl', '5m')).stdout.trim()
    expect(token.split('.')).toHaveLength(3)
    const sessions = await fetch(`${started.health.url}/api/v1/sessions`, {headers: {authorization: `Bearer ${token}`}})
    expect(sessions.status).toBe(200)

    const on = await cli('service', 'maintenance', 'on', '--reason', 'upgrade', '--json')
    expect(JSON.parse(on.stdout)).toMatchObject({on: true, redis: 'set', reason: 'upgrade'})
    const blocked = await fetch(`${started.health.url}/api/v1/knowledge`, {
      method: 'POST',
      headers: {authorization: `Bearer ${token}`, 'content-type': 'application/json'},
      body: '{"title":"t","text":"x"}',
    })
    expect(blocked.status).toBe(503)
    expect(JSON.parse((await cli('service', 'maintenance', '--json')).stdout).on).toBe(true)
    expect(JSON.parse((await cli('service', 'maintenance', 'off', '--json')).stdout).on).toBe(false)

    const logs = await cli('service', 'logs', '-n', '5')
    expect(logs.code).toBe(0)
    expect(logs.stdout).toContain('"msg"')

    const stop = await cli('service', 'stop', '--json')
    expect(stop.code, stop.stderr).toBe(0)
    const stopped = JSON.parse(stop.stdout).stopped
    expect(stopped.map((s: {how: string}) => s.how)).toEqual(['graceful', 'graceful', 'graceful'])
    for (const p of started.processes) expect(pidAlive(p.pid)).toBe(false)
    expect(fs.readdirSync(path.join(dir, '.charge-ops/run')).filter((f) => f.endsWith('.pid'))).toEqual([])
    const worker = fs.readFileSync(path.join(dir, '.charge-ops/logs/app.log'), 'utf8')
    expect(worker).toContain('worker draining')
    expect(worker).toContain('worker stopped')
  })

  it('service maintenance on / off killed between the flag file and the Redis mirror (maintenance.file-written): the flag names who set it, the next run reports the disagreement, the rerun sets both', async () => {
    const faults = fs.mkdtempSync(path.join(os.tmpdir(), 'charge-svc-faults-'))
    const killAt = async (state: 'on' | 'off') => {
      const r = await runUnchecked(
        process.execPath,
        [path.join(ROOT, 'bin/run.js'), 'service', 'maintenance', state, '--reason', 'drill'],
        {cwd: dir, env: {...env, ...killPointEnv('maintenance.file-written', faults)}},
      )
      expect(r.signal, r.stderr).toBe('SIGKILL')
      return readReached(faults, 'maintenance.file-written', r.stderr)
    }
    const flag = path.join(dir, '.charge-ops', 'maintenance')
    const status = async () => {
      const r = await cli('service', 'maintenance', '--json')
      expect(r.code, r.stderr).toBe(0)
      return {...JSON.parse(r.stdout), stderr: r.stderr}
    }

    const on = await killAt('on')
    // the file is written and names the run that set it; Redis (what API processes elsewhere read) not yet
    expect(JSON.parse(fs.readFileSync(flag, 'utf8'))).toMatchObject({
      reason: 'drill',
      setBy: {pid: on.pid, command: 'service maintenance on'},
    })
    expect(JSON.parse(fs.readFileSync(flag, 'utf8')).setBy.startTime).toEqual(expect.any(String))
    let now = await status()
    expect(now).toMatchObject({on: true, redis: 'off', mirror: 'disagrees', setBy: {pid: on.pid}})
    expect(now.stderr).toContain('a run was killed between writing the two')
    const again = await cli('service', 'maintenance', 'on', '--reason', 'drill', '--json')
    expect(JSON.parse(again.stdout)).toMatchObject({on: true, redis: 'set'})
    now = await status()
    expect(now.on).toBe(true)
    expect(now.mirror).toBeUndefined()

    await killAt('off')
    // the file is gone, Redis still says on: every API process sharing Redis still answers 503
    expect(fs.existsSync(flag)).toBe(false)
    expect(await status()).toMatchObject({on: true, redis: 'on', mirror: 'disagrees'})
    expect(JSON.parse((await cli('service', 'maintenance', 'off', '--json')).stdout)).toMatchObject({
      on: false,
      redis: 'cleared',
    })
    now = await status()
    expect(now).toMatchObject({on: false, redis: 'off'})
    expect(now.mirror).toBeUndefined()
  })

  it('refuses to start with exit 3 when the schema is not migrated', async () => {
    const url = await sharedPostgres().createDatabase()
    const envFile = fs.readFileSync(path.join(dir, '.env'), 'utf8').replace(/^DATABASE_URL=.*$/m, `DATABASE_URL=${url}`)
    fs.writeFileSync(path.join(dir, '.env'), envFile, {mode: 0o600})
    const start = await cli('service', 'start')
    expect(start.code).toBe(3)
    expect(start.stderr).toContain('not migrated')
    expect(start.stderr).toContain('charge-ops migrate up')
    expect((await cli('service', 'status', '--json')).stdout).toContain('"processes": []')
  })
})
