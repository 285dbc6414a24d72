/**
 * capacity against a real setup: a PostgreSQL 15 cluster with archive_mode = on whose
 * archive_command fails (/bin/false) → pg.archive_failing critical naming failed_count and
 * last_failed_wal from pg_stat_archiver; the same cluster with a working archive_command
 * (cp %p into the repository's wal/ folder) → archiving ok and a measured recovery-point gap that
 * grows with the clock; and backup.age_hours over manifests written by the real backup engine
 * (`backup db` + `backup verify` in-process, aged through the engine's injected clock).
 */
import {chmodSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync} from 'node:fs'
import {tmpdir} from 'node:os'
import {join} from 'node:path'

import {afterAll, beforeAll, describe, expect, it} from 'vitest'

import {openBackupContext} from '../../src/backup/context.js'
import {backupDatabase} from '../../src/backup/db.js'
import {verifyBackup} from '../../src/restore/verify.js'
import {runCapacity} from '../../src/capacity/index.js'
import {renderNagios, renderPrometheus, type Report} from '../../src/capacity/render.js'
import {loadSettings, type Settings} from '../../src/config/settings.js'
import {silentLogger} from '../../src/output/logger.js'
import {startPostgres, type PgCluster} from '../support/index.js'

const STACK = 'capstack'
const HOUR = 3_600_000
let cluster: PgCluster
let dir: string
let repo: string
let walDir: string
let dbName: string
let settings: Settings

interface Archiver {
  archived_count: string
  last_archived_wal: string | null
  last_archived_time: Date | null
  failed_count: string
  last_failed_wal: string | null
  last_failed_time: Date | null
}
const archiver = async () =>
  (await cluster.query<Archiver & Record<string, unknown>>('SELECT * FROM pg_stat_archiver'))[0]

async function waitFor<T>(what: string, fn: () => Promise<T | undefined | false>, timeoutMs = 90_000): Promise<T> {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    const v = await fn()
    if (v) return v
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await new Promise((r) => setTimeout(r, 250))
  }
}

const find = (r: Report, id: string, label?: [string, string]) =>
  r.checks.find((c) => c.id === id && (!label || c.labels?.[label[0]] === label[1]))
const capacity = (components: string[], now?: Date) =>
  runCapacity({settings, logger: silentLogger, components, recordHistory: false, now})

beforeAll(async () => {
  cluster = await startPostgres({
    name: 'capacity-archive',
    conf: {archive_mode: 'on', archive_command: '/bin/false', archive_timeout: '0'},
  })
  // the repository: a folder the server's OS user may write (archive_command copies into it)
  repo = cluster.serverDir('repo')
  walDir = cluster.serverDir(`repo/${STACK}/wal`)
  const url = await cluster.createDatabase()
  dbName = new URL(url).pathname.slice(1)
  await cluster.query(
    'CREATE TABLE readings (id bigserial PRIMARY KEY, v float8); INSERT INTO readings (v) SELECT random() FROM generate_series(1, 5000)',
    dbName,
  )
  dir = mkdtempSync(join(tmpdir(), 'capacity-archive-'))
  chmodSync(dir, 0o755)
  writeFileSync(join(dir, 'charge-ops.yaml'), [`stack: ${STACK}`, 'backup:', `  repository: ${repo}`, ''].join('\n'))
  settings = loadSettings({cwd: dir, env: {DATABASE_URL: url, CHARGE_OPS_STATE_DIR: join(dir, 'state')}})
})

afterAll(async () => {
  await cluster?.stop()
  if (dir) rmSync(dir, {recursive: true, force: true})
})

describe('WAL archiving (pg_stat_archiver) on a real cluster', () => {
  it('archive_command = /bin/false → pg.archive_failing critical, naming failed_count and last_failed_wal', async () => {
    await cluster.query(
      'INSERT INTO readings (v) SELECT random() FROM generate_series(1, 1000); SELECT pg_switch_wal()',
      dbName,
    )
    const a = await waitFor('a failed archive attempt', async () => {
      const row = await archiver()
      return Number(row.failed_count) >= 1 && row
    })
    expect(Number(a.archived_count)).toBe(0)
    const report = await capacity(['postgresql'])
    const failing = find(report, 'pg.archive_failing')!
    expect(failing).toMatchObject({status: 'critical', value: 1, thresholds: {warning: 1, critical: 1}})
    const m = /archive_command is failing: (\d+) failures, last for ([0-9A-F]{24}) at (\S+)/.exec(failing.message)
    expect(m, failing.message).not.toBeNull()
    expect(Number(m![1])).toBeGreaterThanOrEqual(Number(a.failed_count))
    // the archiver retries the oldest unarchived segment: the WAL named is pg_stat_archiver's
    expect(m![2]).toBe((await archiver()).last_failed_wal)
    expect(failing.remedy).toMatch(/archive_command error/)
    expect(find(report, 'pg.archive_lag_seconds')).toMatchObject({
      status: 'warning',
      value: null,
      message: 'no WAL segment archived yet',
    })

    const nagios = renderNagios(report)
    expect(nagios.exitCode).toBe(2)
    expect(nagios.text.split('\n')[0]).toMatch(/^CRITICAL - .*pg\.archive_failing archive_command is failing/)
    expect(renderPrometheus(report)).toContain(
      'charge_ops_check_status{check="pg.archive_failing",component="postgresql"} 2',
    )
  })

  it('a working archive_command (cp %p <repo>/wal/%f) → archiving ok, and the recovery-point gap measured from the repository grows with the clock', async () => {
    await cluster.query(`ALTER SYSTEM SET archive_command = 'test ! -f ${walDir}/%f && cp %p ${walDir}/%f'`)
    await cluster.query('SELECT pg_reload_conf()')
    await cluster.query(
      'INSERT INTO readings (v) SELECT random() FROM generate_series(1, 1000); SELECT pg_switch_wal()',
      dbName,
    )
    const a = await waitFor('archiving to recover', async () => {
      const row = await archiver()
      return row.last_archived_time &&
        row.last_failed_time &&
        new Date(row.last_archived_time) > new Date(row.last_failed_time)
        ? row
        : undefined
    })
    const copied = readdirSync(walDir).filter((f) => /^[0-9A-F]{24}$/.test(f))
    expect(copied).toContain(a.last_archived_wal)

    const report = await capacity(['postgresql', 'backup'])
    expect(find(report, 'pg.archive_failing')).toMatchObject({status: 'ok', value: 0})
    expect(find(report, 'pg.archive_failing')!.message).toMatch(
      new RegExp(`^\\d+ segments archived, ${a.failed_count === '0' ? 0 : '\\d+'} failures`),
    )
    const lag = find(report, 'pg.archive_lag_seconds')!
    expect(lag.status).toBe('ok')
    expect(lag.value).toBeLessThan(60)
    const gap = find(report, 'backup.rpo_gap_seconds')!
    expect(gap.status).toBe('ok')
    expect(gap.value).toBeLessThan(60)
    expect(gap.message).toMatch(new RegExp(`newest archived WAL \\(${copied.length} segments\\)`))
    // the repository's view and the server's agree on when the last segment was archived
    expect(Math.abs(gap.value! - lag.value!)).toBeLessThanOrEqual(2)

    // two quiet hours later (no segment archived since): both go critical
    const later = await capacity(['postgresql', 'backup'], new Date(Date.now() + 2 * HOUR))
    expect(find(later, 'backup.rpo_gap_seconds')).toMatchObject({status: 'critical'})
    expect(find(later, 'backup.rpo_gap_seconds')!.value).toBeGreaterThanOrEqual(7200)
    expect(find(later, 'pg.archive_lag_seconds')).toMatchObject({status: 'critical'})
    expect(find(later, 'pg.archive_lag_seconds')!.remedy).toMatch(/archive_timeout/)
  })
})

describe('backup age over manifests written by the backup engine', () => {
  it('the newest verified backup decides; an unverified newer one does not count; the engine clock ages it', async () => {
    const threeDaysAgo = new Date(Date.now() - 72 * HOUR)
    const oldCtx = await openBackupContext({settings, logger: silentLogger, now: () => threeDaysAgo})
    const old = await backupDatabase(oldCtx)
    expect(old.finishedAt).toBe(threeDaysAgo.toISOString())
    expect((await verifyBackup(oldCtx, old.id)).ok).toBe(true)

    let report = await capacity(['backup'])
    const db = find(report, 'backup.age_hours', ['kind', 'db'])!
    expect(db).toMatchObject({status: 'critical', thresholds: {warning: 26, critical: 50}})
    expect(db.value).toBeCloseTo(72, 0)
    expect(db.message).toContain(`newest verified db backup ${old.id}`)
    expect(find(report, 'backup.age_hours', ['kind', 'files'])).toMatchObject({
      status: 'critical',
      message: 'no complete files backup in the repository',
    })

    // a fresh backup that nobody verified does not make the db backups healthy
    const ctx = await openBackupContext({settings, logger: silentLogger})
    const fresh = await backupDatabase(ctx)
    report = await capacity(['backup'])
    expect(find(report, 'backup.age_hours', ['kind', 'db'])).toMatchObject({status: 'critical'})
    expect(find(report, 'backup.age_hours', ['kind', 'db'])!.message).toContain(old.id)

    // verified: ok now, warning 30 hours from now, critical after 50
    expect((await verifyBackup(ctx, fresh.id)).ok).toBe(true)
    report = await capacity(['backup'])
    const ok = find(report, 'backup.age_hours', ['kind', 'db'])!
    expect(ok.status).toBe('ok')
    expect(ok.value).toBeLessThan(0.5)
    expect(ok.message).toContain(fresh.id)
    expect(
      find(await capacity(['backup'], new Date(Date.now() + 30 * HOUR)), 'backup.age_hours', ['kind', 'db']),
    ).toMatchObject({status: 'warning'})
    expect(
      find(await capacity(['backup'], new Date(Date.now() + 51 * HOUR)), 'backup.age_hours', ['kind', 'db']),
    ).toMatchObject({status: 'critical'})
  })

  it('a manifest that does not parse is reported, not trusted', async () => {
    const bad = join(repo, STACK, 'backups', '20990101T000000Z-db-dead')
    mkdirSync(bad, {recursive: true})
    writeFileSync(
      join(bad, 'manifest.json'),
      JSON.stringify({formatVersion: 1, id: '20990101T000000Z-db-dead', kind: 'db'}),
    )
    const report = await capacity(['backup'])
    const invalid = find(report, 'backup.invalid_manifests')!
    expect(invalid).toMatchObject({status: 'warning', value: 1})
    expect(invalid.message).toMatch(/20990101T000000Z-db-dead.*invalid/)
    // the newest db backup is still the engine's, not the broken one
    expect(find(report, 'backup.age_hours', ['kind', 'db'])).toMatchObject({status: 'ok'})
    rmSync(bad, {recursive: true, force: true})
  })
})
