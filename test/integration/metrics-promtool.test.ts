/**
 * Every metric charge-ops or the bundled service writes passes Prometheus' own linter,
 * `promtool check metrics`, with no finding (base units, _total only on counters, HELP and TYPE):
 * the real outputs, not fixtures — `capacity --format prometheus` over real PostgreSQL / Redis /
 * a repository, the textfile a real backup + verify --restore-drill write, the one the built
 * `backup base` writes (a success, then a failure), and the service's /metrics.
 */
import {spawnSync} from 'node:child_process'
import {chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync} from 'node:fs'
import {tmpdir} from 'node:os'
import {join} from 'node:path'

import {afterAll, beforeAll, describe, expect, it} from 'vitest'

import {openBackupContext} from '../../src/backup/context.js'
import {backupDatabase} from '../../src/backup/db.js'
import {verifyBackup} from '../../src/restore/verify.js'
import {runCapacity} from '../../src/capacity/index.js'
import {renderPrometheus} from '../../src/capacity/render.js'
import {loadSettings, type Settings} from '../../src/config/settings.js'
import {silentLogger} from '../../src/output/logger.js'
import {archiveCommand} from '../../src/wal/command-lines.js'
import {
  promtoolCheckMetrics,
  sharedPostgres,
  startPostgres,
  startRedis,
  type PgCluster,
  type RedisServer,
} from '../support/index.js'
import {startServiceUnderTest, type ServiceUnderTest} from './service-harness.js'

let dir: string
let redis: RedisServer
let settings: Settings
let textfile: string

beforeAll(async () => {
  const pg = sharedPostgres()
  const url = await pg.createDatabase()
  redis = await startRedis({password: 'promtool-Pw-0123456789'})
  dir = mkdtempSync(join(tmpdir(), 'metrics-promtool-'))
  mkdirSync(join(dir, 'uploads'))
  writeFileSync(join(dir, 'uploads', 'a.csv'), 'timestamp,voltage_v\n')
  writeFileSync(join(dir, 'charge-ops.yaml'), 'stack: promstack\nbackup:\n  repository: ./repo\n')
  settings = loadSettings({
    cwd: dir,
    env: {DATABASE_URL: url, REDIS_URL: redis.url, UPLOADS_DIR: './uploads', CHARGE_OPS_STATE_DIR: join(dir, 'state')},
  })
  textfile = join(dir, 'charge_ops_backup_db.prom')
  // some data, so the dump, the drill and the table checks have rows to judge
  const {Client} = await import('pg')
  const client = new Client({connectionString: url})
  await client.connect()
  await client.query(
    'CREATE TABLE samples (id bigserial PRIMARY KEY, v float8); INSERT INTO samples (v) SELECT random() FROM generate_series(1, 5000); DELETE FROM samples WHERE id % 2 = 0',
  )
  await client.end()
}, 120_000)

afterAll(async () => {
  await redis?.stop()
  if (dir) rmSync(dir, {recursive: true, force: true})
})

describe('promtool check metrics on the real outputs', () => {
  it('the backup / verify textfile', async () => {
    const ctx = await openBackupContext({settings, logger: silentLogger, metricsFile: textfile})
    const manifest = await backupDatabase(ctx)
    expect((await verifyBackup(ctx, manifest.id, {restoreDrill: true})).ok).toBe(true)
    const text = readFileSync(textfile, 'utf8')
    for (const name of [
      'charge_ops_backup_last_success_timestamp_seconds',
      'charge_ops_backup_bytes',
      'charge_ops_backup_verify_last_success_timestamp_seconds',
      'charge_ops_backup_restore_drill_last_success_timestamp_seconds',
      'charge_ops_backup_restore_drill_seconds',
    ]) {
      expect(text).toMatch(new RegExp(`^${name}\\{kind="db",stack="promstack"\\} [0-9.]+$`, 'm'))
    }
    expect(await promtoolCheckMetrics(text)).toEqual({code: 0, findings: ''})
  })

  it('capacity --format prometheus (every component)', async () => {
    const text = renderPrometheus(await runCapacity({settings, logger: silentLogger, recordHistory: false}))
    // the families that used to be flagged are there, in base units
    expect(text).toMatch(/^charge_ops_pg_vacuum_age_seconds [0-9.]+$/m)
    expect(text).toMatch(/^charge_ops_backup_age_seconds\{kind="db"\} [0-9.]+$/m)
    expect(text).toMatch(/^charge_ops_pg_connections_ratio 0\.[0-9]+$/m)
    expect(text).not.toMatch(/^charge_ops_\w+_(days|hours|pct)[ {]/m)
    expect(await promtoolCheckMetrics(text)).toEqual({code: 0, findings: ''})
  })
})

describe("promtool check metrics on the service's /metrics", () => {
  let sut: ServiceUnderTest
  beforeAll(async () => {
    sut = await startServiceUnderTest({name: 'promtool'})
    await sut.startApi()
  }, 120_000)
  afterAll(async () => sut?.stopAll())

  it('after real requests (counter, histograms, queue and dependency gauges)', async () => {
    expect((await sut.request('GET', '/health')).status).toBe(200)
    expect((await sut.request('GET', '/api/v1/analyses/00000000-0000-4000-8000-000000000000')).status).toBe(404)
    const text = await (await fetch(`${sut.baseUrl}/metrics`)).text()
    expect(text).toMatch(/^charge_analysis_http_requests_total\{.*route="\/health".*\} [1-9]/m)
    expect(text).toMatch(/^charge_analysis_dependency_up\{dependency="redis".*\} 1$/m)
    expect(await promtoolCheckMetrics(text)).toEqual({code: 0, findings: ''})
  })
})

describe('promtool check metrics on the textfile `backup base` writes (built CLI, archiving on)', () => {
  const ROOT = join(import.meta.dirname, '..', '..')
  const ENTRY = join(ROOT, 'bin/run.js')
  const STACK = 'basemetrics'
  let cluster: PgCluster
  let repo: string
  let metrics: string
  const cli = (args: string[]) =>
    spawnSync(
      process.execPath,
      [ENTRY, 'backup', 'base', '--repo', repo, '--stack', STACK, '--metrics-file', metrics, ...args],
      {
        env: {PATH: process.env.PATH!, HOME: '/tmp', NO_COLOR: '1', DATABASE_URL: cluster.url()},
        encoding: 'utf8',
        timeout: 120_000,
        uid: cluster.osUser?.uid,
        gid: cluster.osUser?.gid,
      },
    )
  const sample = (name: string) => {
    const m = new RegExp(`^${name}\\{kind="base",stack="${STACK}"\\} (\\S+)$`, 'm').exec(readFileSync(metrics, 'utf8'))
    return m ? Number(m[1]) : undefined
  }

  beforeAll(async () => {
    cluster = await startPostgres({name: 'base-metrics'})
    repo = cluster.serverDir('repo')
    metrics = join(cluster.serverDir('textfiles'), 'charge_ops_backup_base.prom')
    await cluster.restart({
      archive_mode: 'on',
      archive_command: archiveCommand({repository: repo, stack: STACK, entry: ENTRY, node: process.execPath}),
    })
    await cluster.query('CREATE TABLE t AS SELECT generate_series(1, 1000) AS id')
  }, 120_000)
  afterAll(async () => cluster?.stop())

  it('a success: timestamp, duration and stored bytes of kind="base"; then a failure: its timestamp, the success kept', async () => {
    const before = Math.floor(Date.now() / 1000)
    const ok = cli([])
    expect(ok.status, ok.stderr).toBe(0)
    const success = sample('charge_ops_backup_last_success_timestamp_seconds')!
    expect(success).toBeGreaterThanOrEqual(before)
    expect(success).toBeLessThanOrEqual(Math.ceil(Date.now() / 1000))
    expect(sample('charge_ops_backup_duration_seconds')).toBeGreaterThan(0)
    expect(sample('charge_ops_backup_bytes')).toBeGreaterThan(1000)
    expect(sample('charge_ops_backup_last_failure_timestamp_seconds')).toBeUndefined()
    expect(await promtoolCheckMetrics(readFileSync(metrics, 'utf8'))).toEqual({code: 0, findings: ''})

    // archiving now fails (the timeline's WAL folder read-only for the server): the backup cannot complete
    chmodSync(join(repo, STACK, 'wal', '00000001'), 0o555)
    const failed = cli(['--wal-timeout', '3'])
    expect(failed.status, failed.stderr).toBe(5)
    expect(sample('charge_ops_backup_last_failure_timestamp_seconds')).toBeGreaterThanOrEqual(success)
    expect(sample('charge_ops_backup_last_success_timestamp_seconds')).toBe(success)
    expect(await promtoolCheckMetrics(readFileSync(metrics, 'utf8'))).toEqual({code: 0, findings: ''})
  }, 150_000)
})
