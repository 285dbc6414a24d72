/**
 * k8s CronJobs push their metrics (metrics.pushgatewayUrl, which init writes into the k8s
 * charge-ops.yaml) to a real Pushgateway (Debian's prometheus-pushgateway): a db backup and its
 * verify --restore-drill land in the stack's and kind's group, under the same names the textfile
 * has; a failed backup adds its timestamp without erasing the last success (POST, not PUT); the
 * built `capacity --format prometheus` replaces the stack's capacity group; an unreachable
 * Pushgateway is a warning, never a failed backup.
 */
import {spawnSync} from 'node:child_process'
import {mkdirSync, mkdtempSync, rmSync, writeFileSync} from 'node:fs'
import {tmpdir} from 'node:os'
import {join} from 'node:path'

import {afterAll, beforeAll, describe, expect, it} from 'vitest'

import {openBackupContext} from '../../src/backup/context.js'
import {backupDatabase} from '../../src/backup/db.js'
import {loadSettings} from '../../src/config/settings.js'
import {silentLogger, type Logger} from '../../src/output/logger.js'
import {verifyBackup} from '../../src/restore/verify.js'
import {freePort, sharedPostgres, startDaemon, type Daemon} from '../support/index.js'

let dir: string
let pushgateway: Daemon
let dbUrl: string

const settingsFor = (pushgatewayUrl: string, databaseUrl = dbUrl) => {
  writeFileSync(
    join(dir, 'charge-ops.yaml'),
    `stack: pushstack\nbackup:\n  repository: ./repo\nmetrics:\n  pushgatewayUrl: ${pushgatewayUrl}\n`,
  )
  return loadSettings({
    cwd: dir,
    env: {DATABASE_URL: databaseUrl, UPLOADS_DIR: './uploads', CHARGE_OPS_STATE_DIR: join(dir, 'state')},
  })
}
const pushed = async (name: string) => {
  const text = await (await fetch(`${pushgateway.url}/metrics`)).text()
  const m = new RegExp(`^${name}\\{instance="",job="charge-ops",kind="db",stack="pushstack"\\} (\\S+)$`, 'm').exec(text)
  return m ? Number(m[1]) : undefined
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'metrics-pushgateway-'))
  mkdirSync(join(dir, 'uploads'))
  dbUrl = await sharedPostgres().createDatabase()
  pushgateway = await startDaemon({
    name: 'pushgateway',
    bin: 'prometheus-pushgateway',
    args: (port) => [`--web.listen-address=127.0.0.1:${port}`, '--log.level=warn'],
    readyPath: '/-/ready',
  })
}, 60_000)
afterAll(async () => {
  await pushgateway?.stop()
  if (dir) rmSync(dir, {recursive: true, force: true})
})

describe('backup metrics pushed to a Pushgateway', () => {
  it('a backup and its restore drill, then a failed backup that keeps the last success', async () => {
    const settings = settingsFor(pushgateway.url)
    const ctx = await openBackupContext({settings, logger: silentLogger})
    expect(ctx.metricsFile).toBeUndefined() // the Pushgateway alone, as in a CronJob
    const manifest = await backupDatabase(ctx)
    const success = await pushed('charge_ops_backup_last_success_timestamp_seconds')
    expect(success).toBe(Math.floor(Date.parse(manifest.finishedAt) / 1000))
    expect(await pushed('charge_ops_backup_bytes')).toBeGreaterThan(0)
    expect((await verifyBackup(ctx, manifest.id, {restoreDrill: true})).ok).toBe(true)
    expect(await pushed('charge_ops_backup_restore_drill_last_success_timestamp_seconds')).toBeGreaterThanOrEqual(
      success!,
    )

    // PostgreSQL unreachable: the backup fails, its failure timestamp is pushed next to the success
    const deadUrl = `postgresql://nobody:x@127.0.0.1:${await freePort()}/none`
    const failing = await openBackupContext({settings: settingsFor(pushgateway.url, deadUrl), logger: silentLogger})
    await expect(backupDatabase(failing)).rejects.toThrow()
    expect(await pushed('charge_ops_backup_last_failure_timestamp_seconds')).toBeGreaterThanOrEqual(success!)
    expect(await pushed('charge_ops_backup_last_success_timestamp_seconds')).toBe(success)
  })

  it("capacity --format prometheus (built CLI) pushes its whole report to the stack's group", async () => {
    settingsFor(pushgateway.url)
    const before = Math.floor(Date.now() / 1000)
    const r = spawnSync(
      process.execPath,
      [
        join(import.meta.dirname, '..', '..', 'bin/run.js'),
        'capacity',
        '--format',
        'prometheus',
        '--only',
        'postgresql',
        '--no-history',
      ],
      {
        cwd: dir,
        env: {
          ...process.env,
          DATABASE_URL: dbUrl,
          CHARGE_OPS_CONFIG: join(dir, 'charge-ops.yaml'),
          CHARGE_OPS_STATE_DIR: join(dir, 'state'),
          CI: 'true',
        },
        encoding: 'utf8',
        timeout: 60_000,
      },
    )
    expect(r.status, r.stderr).toBe(0)
    const text = await (await fetch(`${pushgateway.url}/metrics`)).text()
    const ts =
      /^charge_ops_capacity_last_run_timestamp_seconds\{instance="",job="charge-ops-capacity",stack="pushstack"\} (\S+)$/m.exec(
        text,
      )
    expect(ts, text.slice(0, 2000)).not.toBeNull()
    expect(Number(ts![1])).toBeGreaterThanOrEqual(before)
    expect(text).toMatch(
      /^charge_ops_pg_connections_ratio\{instance="",job="charge-ops-capacity",stack="pushstack"\} 0\.\d+$/m,
    )
  })

  it('an unreachable Pushgateway: the backup succeeds and says so in a warning', async () => {
    const warnings: string[] = []
    const logger: Logger = {...silentLogger, warn: (m: string) => void warnings.push(m)}
    const ctx = await openBackupContext({settings: settingsFor(`http://127.0.0.1:${await freePort()}`), logger})
    const manifest = await backupDatabase(ctx)
    expect(manifest.kind).toBe('db')
    expect(warnings.join('\n')).toMatch(/could not push metrics to the Pushgateway http:\/\/127\.0\.0\.1:\d+/)
  })
})
