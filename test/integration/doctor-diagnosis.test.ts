/**
 * doctor names each cause: a stopped PostgreSQL, a wrong password, a Redis in MISCONF; and the
 * cross-store integrity checks find missing / orphan uploads, passages without vectors and the
 * reverse, and an embedding dimension mismatch — against real PostgreSQL, Redis and Chroma.
 */
import {mkdirSync, mkdtempSync, rmSync, utimesSync, writeFileSync} from 'node:fs'
import {tmpdir} from 'node:os'
import {join} from 'node:path'

import {Redis} from 'ioredis'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'

import {renderText, type Report} from '../../src/capacity/render.js'
import {loadSettings} from '../../src/config/settings.js'
import {doctorFailed, runDoctor} from '../../src/doctor/index.js'
import {bundledMigrationsDir, migrateUp} from '../../src/migrate/index.js'
import {silentLogger} from '../../src/output/logger.js'
import {sharedChroma, sharedPostgres, startPostgres, startRedis, type RedisServer} from '../support/index.js'

let dir: string
const cleanups: Array<() => Promise<void> | void> = []

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'doctor-'))
  cleanups.push(() => rmSync(dir, {recursive: true, force: true}))
})
afterAll(async () => {
  for (const c of cleanups.reverse()) await c()
})

async function doctor(env: Record<string, string>): Promise<Report> {
  const settings = loadSettings({cwd: dir, env: {CHARGE_OPS_STATE_DIR: join(dir, 'state'), ...env}})
  return runDoctor({settings, logger: silentLogger})
}
const find = (r: Report, id: string) => r.checks.find((c) => c.id === id)

describe('doctor: database connectivity', () => {
  it('a stopped PostgreSQL is named as refused', async () => {
    const pg = await startPostgres({name: 'doctor-stopped'})
    const url = pg.url()
    await pg.stop()
    const report = await doctor({DATABASE_URL: url})
    const c = find(report, 'postgres.connect')!
    expect(c).toMatchObject({status: 'critical', labels: {cause: 'PG_REFUSED'}})
    expect(c.message).toMatch(/refused the connection/)
    expect(c.remedy).toMatch(/pg_hba\.conf/)
    expect(find(report, 'migrations')).toMatchObject({status: 'unknown'})
    expect(doctorFailed(report)).toBe(true)
    expect(JSON.stringify(report) + renderText(report)).not.toContain(new URL(url).password)
  })

  it('a wrong password is named as such, and never printed', async () => {
    const url = new URL(sharedPostgres().url())
    url.password = 'Wrong-Password-42'
    const report = await doctor({DATABASE_URL: url.toString()})
    const c = find(report, 'postgres.connect')!
    expect(c).toMatchObject({status: 'critical', labels: {cause: 'PG_AUTH'}})
    expect(c.message).toMatch(/rejected the password for user "postgres"/)
    expect(JSON.stringify(report) + renderText(report)).not.toContain('Wrong-Password-42')
  })
})

describe('doctor: Redis', () => {
  let redis: RedisServer
  beforeAll(async () => {
    // MISCONF: save points on, the RDB directory deleted under the server, a BGSAVE that fails
    const redisDir = join(dir, 'redis-data')
    mkdirSync(redisDir)
    redis = await startRedis({
      password: 'redis-secret-77',
      dir: redisDir,
      args: ['--save', '3600 1', '--stop-writes-on-bgsave-error', 'yes'],
    })
    cleanups.push(() => redis.stop())
    rmSync(redisDir, {recursive: true, force: true})
    const client = new Redis(redis.url)
    await client.call('BGSAVE')
    for (let i = 0; i < 100; i++) {
      const info = await client.info('persistence')
      if (/rdb_bgsave_in_progress:0/.test(info) && /rdb_last_bgsave_status:err/.test(info)) break
      await new Promise((r) => setTimeout(r, 100))
    }
    await expect(client.set('k', 'v')).rejects.toThrow(/MISCONF/)
    client.disconnect()
  })

  it('a Redis in MISCONF is named, with the guide remedy', async () => {
    const report = await doctor({REDIS_URL: redis.url})
    const c = find(report, 'redis.writable')!
    expect(c).toMatchObject({status: 'critical', labels: {cause: 'MISCONF'}})
    expect(c.message).toMatch(/MISCONF: Redis refuses writes .*because it cannot save its RDB snapshot/)
    expect(c.remedy).toMatch(/disk space/)
    expect(JSON.stringify(report) + renderText(report)).not.toContain('redis-secret-77')
  })

  it('capacity still reads a Redis in MISCONF (it refuses PING, not INFO) and calls its persistence critical', async () => {
    const {runCapacity} = await import('../../src/capacity/index.js')
    const settings = loadSettings({cwd: dir, env: {REDIS_URL: redis.url, CHARGE_OPS_STATE_DIR: join(dir, 'state')}})
    const report = await runCapacity({settings, logger: silentLogger, components: ['redis'], recordHistory: false})
    const c = find(report, 'redis.persistence')!
    expect(c).toMatchObject({status: 'critical', value: 2})
    expect(c.message).toMatch(/^MISCONF: writes are refused because the last RDB save failed \(RDB last bgsave err/)
    expect(find(report, 'redis.memory_used_pct')!.status).not.toBe('unknown')
  })

  it('a wrong Redis password is named', async () => {
    const url = redis.url.replace('redis-secret-77', 'nope-nope-nope')
    const c = find(await doctor({REDIS_URL: url}), 'redis.writable')!
    expect(c).toMatchObject({status: 'critical', labels: {cause: 'REDIS_AUTH'}})
  })
})

describe('doctor: cross-store integrity', () => {
  it('finds missing and orphan uploads, passages without vectors and the reverse, dimension mismatches', async () => {
    const dbUrl = await sharedPostgres().createDatabase()
    await migrateUp({databaseUrl: dbUrl, migrationsDir: bundledMigrationsDir()})
    const uploads = join(dir, 'uploads')
    mkdirSync(join(uploads, '2026'), {recursive: true})
    const old = new Date(Date.now() - 3600_000)
    for (const f of ['2026/present.csv', '2026/orphan.csv']) {
      writeFileSync(join(uploads, f), 'timestamp,voltage_v\n')
      utimesSync(join(uploads, f), old, old)
    }
    writeFileSync(join(uploads, 'young-in-flight.csv'), 'x') // an upload in progress: not judged
    const pg = sharedPostgres()
    const db = new URL(dbUrl).pathname.slice(1)
    await pg.query(
      `INSERT INTO uploads (filename, path, sha256, bytes, uploaded_at) VALUES
         ('present.csv', '2026/present.csv', repeat('a', 64), 20, now() - interval '1 hour'),
         ('gone.csv', '2026/gone.csv', repeat('b', 64), 20, now() - interval '1 hour');
       INSERT INTO knowledge_documents (id, title, sha256) VALUES ('00000000-0000-0000-0000-000000000001', 'doc', repeat('c', 64));
       INSERT INTO knowledge_passages (document_id, ordinal, content, embedding_model, embedding_dim, chroma_id) VALUES
         ('00000000-0000-0000-0000-000000000001', 1, 'p1', 'local-hash', 8, 'p-1'),
         ('00000000-0000-0000-0000-000000000001', 2, 'p2', 'local-hash', 8, 'p-2');`,
      db,
    )
    // Chroma: a collection with 4-dimensional vectors for p-1 and a stray one
    const chroma = sharedChroma()
    const base = `${chroma.url}/api/v2/tenants/default_tenant/databases/default_database`
    const name = `kb_${Date.now().toString(36)}`
    const created = (await (
      await fetch(`${base}/collections`, {
        method: 'POST',
        headers: {'content-type': 'application/json'},
        body: JSON.stringify({name}),
      })
    ).json()) as {id: string}
    const add = await fetch(`${base}/collections/${created.id}/add`, {
      method: 'POST',
      headers: {'content-type': 'application/json'},
      body: JSON.stringify({
        ids: ['p-1', 'stray-9'],
        embeddings: [
          [0.1, 0.2, 0.3, 0.4],
          [0.4, 0.3, 0.2, 0.1],
        ],
        documents: ['p1', 'x'],
      }),
    })
    expect(add.ok).toBe(true)

    const settings = loadSettings({
      cwd: dir,
      env: {
        DATABASE_URL: dbUrl,
        UPLOADS_DIR: uploads,
        CHROMA_URL: chroma.url,
        CHARGE_OPS_STATE_DIR: join(dir, 'state2'),
      },
    })
    const {uploadsIntegrity, knowledgeIntegrity} = await import('../../src/doctor/integrity.js')
    const {connect} = await import('../../src/postgres/connection.js')
    const client = await connect(dbUrl)
    try {
      const ctx = {
        settings,
        logger: silentLogger,
        now: new Date(),
        pg: client as never,
        thresholds: () => undefined,
        queryCount: () => 0,
        memo: new Map(),
      }
      const up = await uploadsIntegrity(ctx)
      expect(up.find((c) => c.id === 'integrity.uploads_missing')).toMatchObject({
        status: 'critical',
        value: 1,
        details: {missing: ['2026/gone.csv']},
      })
      expect(up.find((c) => c.id === 'integrity.uploads_orphan')).toMatchObject({
        status: 'warning',
        value: 1,
        details: {orphans: ['2026/orphan.csv']},
      })
      const kb = await knowledgeIntegrity(ctx, name)
      expect(kb.find((c) => c.id === 'integrity.passages_without_vectors')).toMatchObject({
        status: 'critical',
        value: 1,
        details: {ids: ['p-2']},
      })
      expect(kb.find((c) => c.id === 'integrity.vectors_without_passages')).toMatchObject({
        status: 'warning',
        value: 1,
        details: {ids: ['stray-9']},
      })
      const dim = kb.find((c) => c.id === 'integrity.embedding_dimension')!
      expect(dim.status).toBe('critical')
      expect(dim.message).toMatch(/dimension 8 .* holds 4-dimensional vectors/)
    } finally {
      await client.end()
    }
    // the whole doctor run: migrations are up to date, the default collection is absent and no passage is orphaned there
    const report = await runDoctor({settings, logger: silentLogger})
    expect(find(report, 'migrations')).toMatchObject({status: 'ok'})
    expect(find(report, 'chroma.heartbeat')).toMatchObject({status: 'ok'})
    expect(find(report, 'integrity.uploads_missing')).toMatchObject({status: 'critical'})
    expect(find(report, 'integrity.passages_without_vectors')).toMatchObject({status: 'critical'})
  })
})
