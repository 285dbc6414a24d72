/**
 * Runs the bundled service (API + worker) against real PostgreSQL / Redis / Chroma for the
 * service-*.test.ts files: a fresh database migrated with the real engine, its own redis-server,
 * the shared Chroma server with a collection unique to the test file.
 */
import {type ChildProcess} from 'node:child_process'
import {randomBytes, randomUUID} from 'node:crypto'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'

import {migrateUp} from '../../src/migrate/index.js'
import {mintToken} from '../../service/src/auth.js'
import {
  cleanEnv,
  freePort,
  sharedChroma,
  sharedPostgres,
  startRedis,
  waitUntil,
  type PgClient,
  type RedisServer,
} from '../support/index.js'
import {spawnTied, waitForExit} from '../support/process.js'

export const ROOT = path.resolve(import.meta.dirname, '../..')

export interface ServiceUnderTest {
  baseUrl: string
  databaseUrl: string
  redis: RedisServer
  chromaUrl: string
  dir: string
  env: Record<string, string>
  token: string
  api?: ChildProcess
  workers: Map<string, ChildProcess>
  startApi(): Promise<void>
  startWorker(id?: string, extraEnv?: Record<string, string>): Promise<ChildProcess>
  stopAll(): Promise<void>
  request(
    method: string,
    url: string,
    body?: unknown,
    headers?: Record<string, string>,
  ): Promise<{status: number; body: any; headers: Headers}>
  uploadFile(file: string): Promise<{status: number; body: any}>
  waitForAnalysis(id: string, timeoutMs?: number): Promise<any>
  query<R extends Record<string, unknown>>(sql: string, params?: unknown[]): Promise<R[]>
  logs(): string
}

export async function startServiceUnderTest(options: {
  name: string
  env?: Record<string, string>
  postgres?: PgClient
}): Promise<ServiceUnderTest> {
  // a test that stops PostgreSQL brings its own cluster; the others share the run's
  const pg = options.postgres ?? sharedPostgres()
  const databaseUrl = await pg.createDatabase()
  await migrateUp({databaseUrl, migrationsDir: path.join(ROOT, 'service/migrations')})
  const redis = await startRedis({password: randomBytes(8).toString('hex')})
  const chroma = sharedChroma()
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `charge-svc-${options.name}-`))
  const port = await freePort()
  const secret = randomBytes(32).toString('base64url')
  const env: Record<string, string> = {
    DATABASE_URL: databaseUrl,
    REDIS_URL: redis.url,
    CHROMA_URL: chroma.url,
    CHROMA_COLLECTION: `kb_${options.name.replace(/\W/g, '_')}_${randomUUID().slice(0, 8)}`,
    SECRET_KEY: secret,
    UPLOADS_DIR: path.join(dir, 'uploads'),
    LOG_DIR: path.join(dir, 'logs'),
    CHARGE_OPS_STATE_DIR: path.join(dir, 'state'),
    HOST: '127.0.0.1',
    PORT: String(port),
    WORKER_RECONCILE_MS: '1000',
    ...options.env,
  }
  fs.mkdirSync(env.CHARGE_OPS_STATE_DIR!, {recursive: true})
  const {token} = await mintToken(secret, {subject: 'test', ttlSeconds: 3600})
  const baseUrl = `http://127.0.0.1:${port}`
  const outputs: string[] = []

  const spawnEntry = (entry: string, extra: Record<string, string>) => {
    const child = spawnTied(
      process.execPath,
      ['--import', import.meta.resolve('tsx'), path.join(ROOT, 'service/src', entry)],
      {
        cwd: dir,
        env: cleanEnv({...env, ...extra}),
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    )
    child.stdout?.on('data', (d) => outputs.push(String(d)))
    child.stderr?.on('data', (d) => outputs.push(String(d)))
    return child
  }

  const sut: ServiceUnderTest = {
    baseUrl,
    databaseUrl,
    redis,
    chromaUrl: chroma.url,
    dir,
    env,
    token,
    workers: new Map(),
    async startApi() {
      sut.api = spawnEntry('server.ts', {})
      await waitUntil(
        async () => {
          await fetch(`${baseUrl}/health`)
          return true
        },
        {
          timeoutMs: 30_000,
          what: 'the API to listen',
          abort: () => (sut.api!.exitCode !== null ? `the API exited: ${outputs.join('')}` : undefined),
        },
      )
    },
    async startWorker(id = 'worker-1', extraEnv = {}) {
      const child = spawnEntry('worker.ts', {WORKER_ID: id, ...extraEnv})
      sut.workers.set(id, child)
      return child
    },
    async stopAll() {
      const children = [sut.api, ...sut.workers.values()].filter((c): c is ChildProcess => Boolean(c))
      for (const c of children) if (c.exitCode === null) c.kill('SIGTERM')
      for (const c of children) if (!(await waitForExit(c, 10_000))) c.kill('SIGKILL')
      await redis.stop()
      fs.rmSync(dir, {recursive: true, force: true})
    },
    async request(method, url, body, headers = {}) {
      const init: RequestInit = {method, headers: {authorization: `Bearer ${token}`, ...headers}}
      if (body !== undefined) {
        init.body = typeof body === 'string' ? body : JSON.stringify(body)
        ;(init.headers as Record<string, string>)['content-type'] ??=
          typeof body === 'string' ? 'text/csv' : 'application/json'
      }
      const response = await fetch(`${baseUrl}${url}`, init)
      const text = await response.text()
      let parsed: unknown = text
      try {
        parsed = JSON.parse(text)
      } catch {
        // not JSON
      }
      return {status: response.status, body: parsed, headers: response.headers}
    },
    async uploadFile(file) {
      const form = new FormData()
      form.append('file', new Blob([fs.readFileSync(file)], {type: 'text/csv'}), path.basename(file))
      const response = await fetch(`${baseUrl}/api/v1/uploads`, {
        method: 'POST',
        headers: {authorization: `Bearer ${token}`},
        body: form,
      })
      return {status: response.status, body: await response.json()}
    },
    async waitForAnalysis(id, timeoutMs = 30_000) {
      let last: any
      await waitUntil(
        async () => {
          last = (await sut.request('GET', `/api/v1/analyses/${id}`)).body
          return last.status === 'done' || last.status === 'failed'
        },
        {timeoutMs, what: `analysis ${id}`, intervalMs: 200},
      )
      return last
    },
    async query(sql, params) {
      return pg.query(sql, new URL(databaseUrl).pathname.slice(1), params) as never
    },
    logs: () => outputs.join(''),
  }
  return sut
}
