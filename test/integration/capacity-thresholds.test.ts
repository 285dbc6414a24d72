/**
 * Thresholds crossed on purpose — a tiny Redis maxmemory with evictions, a fake low-disk threshold,
 * an old backup — turn the right check warning / critical in every output format.
 */
import {mkdirSync, mkdtempSync, rmSync, writeFileSync} from 'node:fs'
import {tmpdir} from 'node:os'
import {join} from 'node:path'

import {Redis} from 'ioredis'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'

import {runCapacity} from '../../src/capacity/index.js'
import {buildReport, renderNagios, renderPrometheus, renderText, type Report} from '../../src/capacity/render.js'
import {loadSettings} from '../../src/config/settings.js'
import {silentLogger} from '../../src/output/logger.js'
import {sharedPostgres, startRedis, type RedisServer} from '../support/index.js'

const REDIS_PASSWORD = 'redis-Pw-0123456789'
let redis: RedisServer
let dir: string
let dbUrl: string
let report: Report

function writeManifest(repo: string, id: string, kind: string, finishedAt: Date, verified: boolean) {
  const d = join(repo, 'capstack', 'backups', id)
  mkdirSync(d, {recursive: true})
  const manifest = {
    formatVersion: 1,
    id,
    kind,
    stack: 'capstack',
    startedAt: new Date(finishedAt.getTime() - 60_000).toISOString(),
    finishedAt: finishedAt.toISOString(),
    tools: {},
    parts: [{name: 'db.dump.zst', bytes: 10, sha256: 'a'.repeat(64), compression: 'zstd'}],
    ...(verified ? {verification: {verifiedAt: finishedAt.toISOString(), ok: true, checksumsOk: true}} : {}),
  }
  writeFileSync(join(d, 'manifest.json'), JSON.stringify(manifest))
}

const stamp = (d: Date) =>
  d
    .toISOString()
    .replace(/\.\d{3}Z$/, 'Z')
    .replace(/[-:]/g, '')

beforeAll(async () => {
  redis = await startRedis({
    password: REDIS_PASSWORD,
    args: ['--maxmemory', '3mb', '--maxmemory-policy', 'allkeys-lru'],
  })
  const client = new Redis(redis.url)
  const value = 'x'.repeat(2048)
  for (let i = 0; i < 4000; i++) await client.set(`session:${i}`, value)
  const info = await client.info('stats')
  expect(Number(/evicted_keys:(\d+)/.exec(info)![1])).toBeGreaterThan(0)
  client.disconnect()

  dbUrl = await sharedPostgres().createDatabase()
  dir = mkdtempSync(join(tmpdir(), 'capacity-thresholds-'))
  const repo = join(dir, 'repo')
  mkdirSync(join(dir, 'uploads'))
  writeFileSync(join(dir, 'uploads', 'a.csv'), 'timestamp,voltage_v\n')
  const now = Date.now()
  // db: newest verified backup is 3 days old (a newer unverified one does not count)
  writeManifest(repo, `${stamp(new Date(now - 72 * 3600_000))}-db-aaaa`, 'db', new Date(now - 72 * 3600_000), true)
  writeManifest(repo, `${stamp(new Date(now - 3600_000))}-db-bbbb`, 'db', new Date(now - 3600_000), false)
  // files: fresh and verified
  writeManifest(repo, `${stamp(new Date(now - 2 * 3600_000))}-files-cccc`, 'files', new Date(now - 2 * 3600_000), true)
  writeFileSync(
    join(dir, 'charge-ops.yaml'),
    [
      'stack: capstack',
      'backup:',
      '  repository: ./repo',
      'thresholds:',
      '  disk.free_pct: {warning: 100, critical: 99.999}',
      '  redis.evicted_keys: {warning: 1, critical: 100000000}',
      '',
    ].join('\n'),
  )
  const settings = loadSettings({
    cwd: dir,
    env: {
      DATABASE_URL: dbUrl,
      REDIS_URL: redis.url,
      UPLOADS_DIR: './uploads',
      CHARGE_OPS_STATE_DIR: join(dir, 'state'),
    },
  })
  report = await runCapacity({settings, logger: silentLogger})
})

afterAll(async () => {
  await redis?.stop()
  if (dir) rmSync(dir, {recursive: true, force: true})
})

const find = (id: string, label?: [string, string]) =>
  report.checks.find((c) => c.id === id && (!label || c.labels?.[label[0]] === label[1]))

describe('capacity with thresholds crossed on purpose', () => {
  it('the right checks turn warning / critical', () => {
    expect(find('redis.evicted_keys')).toMatchObject({status: 'warning', thresholds: {warning: 1, critical: 100000000}})
    expect(find('redis.evicted_keys')!.value).toBeGreaterThan(0)
    expect(find('redis.memory_used_pct')!.value).toBeGreaterThan(50)
    expect(find('sizing.redis_maxmemory_pct')!.message).toMatch(/allkeys-lru may evict queued jobs/)
    for (const role of ['uploads', 'backup-repository'])
      expect(find('disk.free_pct', ['role', role])).toMatchObject({status: 'critical'})
    expect(find('backup.age_hours', ['kind', 'db'])).toMatchObject({status: 'critical'})
    expect(find('backup.age_hours', ['kind', 'db'])!.value).toBeGreaterThanOrEqual(71.9)
    expect(find('backup.age_hours', ['kind', 'db'])!.message).toMatch(/-db-aaaa/)
    expect(find('backup.age_hours', ['kind', 'files'])).toMatchObject({status: 'ok'})
    // an ordinary check stays ok
    expect(find('pg.connections_pct')).toMatchObject({status: 'ok'})
    expect(find('uploads.files')!.value).toBe(1)
    expect(report.status).toBe('critical')
  })

  it('every format shows them; nagios exits 2', () => {
    const text = renderText(report)
    expect(text).toMatch(/WARNING\s+redis\.evicted_keys/)
    expect(text).toMatch(/CRITICAL\s+backup\.age_hours\[kind=db\]/)
    expect(text).toMatch(/CRITICAL\s+disk\.free_pct\[role=uploads/)

    const json = JSON.parse(JSON.stringify(report)) as Report
    expect(json.checks.find((c) => c.id === 'redis.evicted_keys')!.status).toBe('warning')

    const prom = renderPrometheus(report)
    expect(prom).toContain('charge_ops_check_status{check="redis.evicted_keys",component="redis"} 1')
    expect(prom).toContain('charge_ops_check_status{check="backup.age_hours",component="backup",kind="db"} 2')
    expect(prom).toMatch(
      /charge_ops_check_status\{check="disk.free_pct",component="disk",role="uploads",path="[^"]+"\} 2/,
    )

    const nagios = renderNagios(report)
    expect(nagios.exitCode).toBe(2)
    expect(nagios.text.split('\n')[0]).toMatch(/^CRITICAL - /)
    expect(nagios.text).toMatch(/WARNING: redis\.evicted_keys/)
    expect(nagios.text).toMatch(/'backup\.age_hours_db'=\d+(\.\d+)?;26;50/)

    // warning only → nagios 1
    expect(
      renderNagios(
        buildReport(
          report.checks.filter((c) => c.status !== 'critical'),
          new Date(),
        ),
      ).exitCode,
    ).toBe(1)
  })

  it('no secret in any output', () => {
    const all = [renderText(report), JSON.stringify(report), renderPrometheus(report), renderNagios(report).text].join(
      '\n',
    )
    expect(all).not.toContain(REDIS_PASSWORD)
    expect(all).not.toContain(new URL(dbUrl).password)
  })

  it('records history for growth; queries are set-based', () => {
    expect(report.queries).toBeLessThanOrEqual(15)
    expect(find('pg.growth_bytes_per_day')!.message).toMatch(/needs capacity history spanning 6 h/)
  })
})
