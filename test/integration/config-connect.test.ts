/**
 * `config validate --connect` and the Redis / Chroma / S3 adapters against real servers
 * (test/support): success, a wrong password and a refused port, each with its cause named.
 */
import {execa} from 'execa'
import {chmodSync, mkdtempSync, writeFileSync} from 'node:fs'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'

import {chromaHeartbeat, collectionCount} from '../../src/chroma/client.js'
import {runValidate} from '../../src/config/validate/command.js'
import {connectRedis, redisPersistence, withRedis} from '../../src/redis/client.js'
import {checkBucket, createS3Client, parseS3Url} from '../../src/s3/client.js'
import {
  freePort,
  sharedChroma,
  sharedPostgres,
  startRedis,
  startS3,
  type RedisServer,
  type S3Server,
} from '../support/index.js'

const REDIS_PASSWORD = 'Redis-Pl4nted-pass-0123456789'
const WRONG = 'Wrong-Pl4nted-pass-9876543210'
const bin = join(import.meta.dirname, '..', '..', 'bin', 'run.js')

let redis: RedisServer
let s3: S3Server
let databaseUrl: string

beforeAll(async () => {
  ;[redis, s3] = await Promise.all([
    startRedis({password: REDIS_PASSWORD, args: ['--appendonly', 'yes']}),
    startS3({buckets: ['charge-ops-backups']}),
  ])
  databaseUrl = await sharedPostgres().createDatabase()
})
afterAll(async () => {
  await Promise.all([redis?.stop(), s3?.stop()])
})

function deployment(env: Record<string, string>, repository = 's3://charge-ops-backups/prod'): string {
  const dir = mkdtempSync(join(tmpdir(), 'charge-ops-connect-'))
  const lines = Object.entries({
    ENVIRONMENT: 'development',
    SECRET_KEY: '0123456789abcdef0123456789abcdef0123',
    ...env,
  }).map(([k, v]) => `${k}=${v}`)
  writeFileSync(join(dir, '.env'), lines.join('\n') + '\n')
  chmodSync(join(dir, '.env'), 0o600)
  writeFileSync(join(dir, 'charge-ops.yaml'), `stack: demo\nbackup:\n  repository: ${repository}\n`)
  return dir
}

const connect = (cwd: string) =>
  runValidate({cwd, positional: ['.env', 'charge-ops.yaml'], env: {}, connect: {timeoutMs: 3000}, version: 'test'})

describe('config validate --connect', () => {
  it('reaches PostgreSQL, Redis, Chroma and the S3 bucket', async () => {
    const dir = deployment({DATABASE_URL: databaseUrl, REDIS_URL: redis.url, CHROMA_URL: sharedChroma().url})
    const saved = {...process.env}
    Object.assign(process.env, s3.env)
    try {
      const result = await connect(dir)
      const byService = Object.fromEntries(result.report.connectivity!.map((c) => [c.service, c]))
      expect(byService.postgresql).toMatchObject({status: 'ok', detail: expect.stringMatching(/PostgreSQL 1[5-9]/)})
      expect(byService.redis).toMatchObject({status: 'ok', detail: expect.stringContaining('AOF on')})
      expect(byService.chroma).toMatchObject({status: 'ok'})
      expect(byService.s3).toMatchObject({status: 'ok', detail: 'bucket charge-ops-backups reachable'})
      expect(result.report.exitCode).toBe(0)
    } finally {
      process.env = saved
    }
  })

  it('a wrong password names the authentication cause and never prints either password', async () => {
    const pg = new URL(databaseUrl)
    pg.password = WRONG
    const badRedis = new URL(redis.url)
    badRedis.password = WRONG
    const dir = deployment({DATABASE_URL: pg.toString(), REDIS_URL: badRedis.toString()}, '/var/backups')
    const result = await connect(dir)
    const codes = Object.fromEntries(result.report.connectivity!.map((c) => [c.service, c.code ?? c.status]))
    expect(codes).toMatchObject({postgresql: 'PG_AUTH', redis: 'REDIS_AUTH', chroma: 'skipped', s3: 'skipped'})
    expect(result.report.exitCode).toBe(5)
    expect(result.text).toMatch(/\.env:\d+: error \[DATABASE_URL\] PostgreSQL rejected the password/)
    expect(result.text).toMatch(/\.env:\d+: error \[REDIS_URL\] Redis at 127\.0\.0\.1:\d+ rejected the password/)
    const all = result.text + JSON.stringify(result.report) + JSON.stringify(result.sarif)
    for (const secret of [WRONG, REDIS_PASSWORD, encodeURIComponent(WRONG)]) expect(all).not.toContain(secret)
  })

  it('rediss:// against a plain-text server is a TLS failure', async () => {
    await expect(connectRedis(redis.url.replace('redis://', 'rediss://'), {timeoutMs: 2000})).rejects.toMatchObject({
      code: 'REDIS_TLS',
    })
  })

  it('no password against a requirepass server is NOAUTH', async () => {
    await expect(connectRedis(`redis://127.0.0.1:${redis.port}/0`, {timeoutMs: 2000})).rejects.toMatchObject({
      code: 'REDIS_AUTH',
      message: expect.stringContaining('requires a password'),
    })
  })

  it('a refused port names the refusal for every service, through the binary (exit 5)', async () => {
    const [p1, p2, p3, p4] = await Promise.all([freePort(), freePort(), freePort(), freePort()])
    const dir = deployment({
      DATABASE_URL: `postgresql://u:${WRONG}@127.0.0.1:${p1}/db`,
      REDIS_URL: `redis://:${WRONG}@127.0.0.1:${p2}/0`,
      CHROMA_URL: `http://127.0.0.1:${p3}`,
    })
    const r = await execa(
      'node',
      [bin, 'config', 'validate', '.env', 'charge-ops.yaml', '--connect', '--timeout', '3', '--json'],
      {
        cwd: dir,
        reject: false,
        stdin: 'ignore',
        extendEnv: false,
        env: {
          CI: 'true',
          PATH: process.env.PATH ?? '',
          AWS_ENDPOINT_URL_S3: `http://127.0.0.1:${p4}`,
          AWS_ACCESS_KEY_ID: 'x',
          AWS_SECRET_ACCESS_KEY: 'y',
          AWS_REGION: 'us-east-1',
        },
      },
    )
    expect(r.exitCode, r.stderr).toBe(5)
    const body = JSON.parse(r.stdout) as {connectivity: Array<{service: string; code?: string; detail: string}>}
    expect(Object.fromEntries(body.connectivity.map((c) => [c.service, c.code]))).toEqual({
      postgresql: 'PG_REFUSED',
      redis: 'REDIS_REFUSED',
      chroma: 'CHROMA_REFUSED',
      s3: 'S3_REFUSED',
    })
    for (const c of body.connectivity) expect(c.detail).toMatch(/refused/)
    expect(r.stdout + r.stderr).not.toContain(WRONG)
    expect(r.stderr).not.toMatch(/\n\s+at /)
  })

  it('a missing bucket is S3_NO_BUCKET', async () => {
    const saved = {...process.env}
    Object.assign(process.env, s3.env)
    try {
      const client = await createS3Client()
      await expect(checkBucket(client, parseS3Url('s3://no-such-bucket/x').bucket)).rejects.toMatchObject({
        code: 'S3_NO_BUCKET',
      })
      await checkBucket(client, 'charge-ops-backups')
      client.destroy()
    } finally {
      process.env = saved
    }
  })
})

describe('adapters', () => {
  it('redisPersistence reports AOF and the save rules', async () => {
    const p = await withRedis(redis.url, (client) => redisPersistence(client), {timeoutMs: 3000})
    expect(p.aof).toBe(true)
    expect(typeof p.rdbSaveRules).toBe('string')
  })

  it('chromaHeartbeat and collectionCount against the shared Chroma', async () => {
    const url = sharedChroma().url
    const beat = await chromaHeartbeat(url)
    expect(beat.nanoseconds).toBeGreaterThan(0)
    const {chromaClient} = await import('../../src/chroma/client.js')
    const client = await chromaClient(url)
    const name = `config-connect-${process.pid}`
    const collection = await client.getOrCreateCollection({name, embeddingFunction: null})
    await collection.add({
      ids: ['a', 'b', 'c'],
      embeddings: [
        [1, 0],
        [0, 1],
        [1, 1],
      ],
    })
    expect(await collectionCount(url, name)).toBe(3)
    expect(await collectionCount(url, 'config-connect-absent')).toBeUndefined()
    await client.deleteCollection({name})
  })
})
