/**
 * `charge-ops upgrade` on the local target, for real: PostgreSQL, Redis and Chroma from
 * test/support, the bundled service in fixture versions A and B (test/fixtures/upgrade) run by
 * src/service/process.ts, backups in a local repository.
 */
import {randomBytes, randomUUID} from 'node:crypto'
import fs from 'node:fs'
import path from 'node:path'

import {afterAll, afterEach, beforeAll, describe, expect, it} from 'vitest'

import {CliError} from '../../src/errors.js'
import {silentLogger} from '../../src/output/logger.js'
import {acquireLock} from '../../src/repository/lock.js'
import {openRepository} from '../../src/repository/open.js'
import {serviceStatus} from '../../src/service/process.js'
import {runUpgrade} from '../../src/upgrade/index.js'
import {listUpgrades, readJournal} from '../../src/upgrade/journal.js'
import {rehearseUpgrade} from '../../src/upgrade/rehearse.js'
import {
  cleanEnv,
  killPointEnv,
  readReached,
  spawnTied,
  startRedis,
  waitForExit,
  waitUntil,
  type RedisServer,
} from '../support/index.js'
import {ROOT} from '../fixtures/upgrade/build-release.js'
import {makeStack, type UpgradeStack} from '../fixtures/upgrade/stack.js'

process.env.CHROMA_COLLECTION = `kb_upgrade_${randomUUID().slice(0, 8)}`

let redis: RedisServer
const stacks: UpgradeStack[] = []

beforeAll(async () => {
  if (!fs.existsSync(path.join(ROOT, 'dist/service/src/server.js')))
    throw new Error('run `npm run build` first: the fixture releases copy dist/service/src')
  redis = await startRedis({password: randomBytes(8).toString('hex')})
})

afterEach(async () => {
  for (const s of stacks.splice(0)) {
    await s.stop()
    fs.rmSync(s.dir, {recursive: true, force: true})
  }
})

afterAll(async () => {
  await redis?.stop()
})

async function stack(name: string): Promise<UpgradeStack> {
  const s = await makeStack(redis, name)
  stacks.push(s)
  return s
}

const upgrade = (s: UpgradeStack, to: string | undefined, extra: Partial<Parameters<typeof runUpgrade>[0]> = {}) =>
  runUpgrade({settings: s.reload(), logger: silentLogger, to, stopTimeoutMs: 5000, cwd: s.dir, ...extra})

async function expectRolledBack(promise: Promise<unknown>): Promise<CliError> {
  const error = await promise.then(
    () => {
      throw new Error('the upgrade should have failed')
    },
    (e: unknown) => e,
  )
  expect(error, String(error)).toBeInstanceOf(CliError)
  expect((error as CliError).exitCode, (error as CliError).message).toBe(6)
  return error as CliError
}

async function expectServing(s: UpgradeStack, version: string) {
  const health = await s.get('/health')
  expect(health.status).toBe(200)
  expect(health.body.status).toBe('ok')
  expect(health.body.version).toBe(version)
  expect((await s.get('/api/v1/sessions')).status).toBe(200)
  expect(health.body.maintenance).toBe(false)
}

describe('upgrade --target local', () => {
  it('A → B: backup, migration, new endpoint, data intact; history; a downgrade is refused; dry run changes nothing', async () => {
    const s = await stack('happy')
    await expectServing(s, '1.0.0-a')
    const before = await s.fingerprint()
    expect(before['rows:uploads']).toMatch(/^2:/)
    expect(before['rows:analyses']).toMatch(/^2:/)
    expect(Number(before['rows:findings']!.split(':')[0])).toBeGreaterThan(0)
    const b = s.release('b', '2.0.0')

    const dry = await upgrade(s, b, {dryRun: true})
    expect(dry.outcome).toBe('dry-run')
    expect(dry.plan!.map((p) => p.step)).toEqual(['backup', 'stop', 'fetch', 'install', 'migrate', 'start', 'verify'])
    expect(dry.plan!.find((p) => p.step === 'migrate')!.action).toContain('9001_fleet_notes.sql')
    expect(dry.checks!.filter((c) => c.status === 'failed')).toEqual([])
    expect(fs.existsSync(path.join(s.settings.stateDir, 'upgrade/journal.json'))).toBe(false)
    expect(fs.existsSync(path.join(s.settings.stateDir, 'releases/2.0.0'))).toBe(false)

    const result = await upgrade(s, b)
    expect(result.outcome, result.message).toBe('succeeded')
    expect(result.to).toMatchObject({version: '2.0.0', schemaHead: '9001'})
    await expectServing(s, '2.0.0')
    const notes = await s.get('/api/v1/fleet-notes')
    expect(notes.status).toBe(200)
    expect(notes.body).toEqual({version: '2.0.0', notes: [{id: 1, note: 'added by the upgrade to B'}]})

    // every table that existed is unchanged, row for row (service_meta: the version B recorded)
    const after = await s.fingerprint()
    for (const [key, value] of Object.entries(before)) {
      if (key === 'schema' || key === 'rows:service_meta' || key === 'rows:charge_ops_migrations') continue
      expect(after[key], key).toBe(value)
    }
    expect(after['rows:fleet_notes']).toMatch(/^1:/)
    expect(
      (await s.query<{value: string}>(`SELECT value FROM service_meta WHERE key = 'service_version'`))[0]!.value,
    ).toBe('2.0.0')
    expect(fs.realpathSync(path.join(s.settings.stateDir, 'releases/current'))).toBe(
      path.join(s.settings.stateDir, 'releases/2.0.0'),
    )
    const status = await serviceStatus(s.reload())
    expect(fs.readFileSync(`/proc/${status.processes[0]!.pid}/cmdline`, 'utf8')).toContain(
      'releases/2.0.0/service/src/server.js',
    )

    // the journal: file + table, with the step-1 backup recorded and verified
    const journal = readJournal(s.settings)!
    expect(journal.status).toBe('succeeded')
    expect(journal.steps.map((st) => st.status)).toEqual(Array(7).fill('done'))
    expect(journal.steps.find((st) => st.name === 'migrate')!.schemaHead).toBe('9001')
    expect(journal.from).toMatchObject({version: '1.0.0-a', schemaHead: '0005'})
    expect(journal.configHash).toMatch(/^[0-9a-f]{64}$/)
    const manifest = JSON.parse(
      fs.readFileSync(
        path.join(s.dir, 'repo', s.settings.stack, 'backups', journal.backupId!, 'manifest.json'),
        'utf8',
      ),
    )
    expect(manifest.kind).toBe('all')
    expect(manifest.verification.ok).toBe(true)
    expect(manifest.migrationHead).toBe('0005')
    const rows = await s.query<{status: string; to_version: string; from_head: string; to_head: string}>(
      `SELECT status, to_version, from_head, to_head FROM charge_ops_upgrades`,
    )
    expect(rows).toEqual([{status: 'succeeded', to_version: '2.0.0', from_head: '0005', to_head: '9001'}])
    const history = await listUpgrades(s.reload())
    expect(history.upgrades.map((u) => [u.from.version, u.to.version, u.status])).toEqual([
      ['1.0.0-a', '2.0.0', 'succeeded'],
    ])

    // a version whose 9001 differs from the applied one: drift, refused before anything changes (exit 3)
    const drift = await upgrade(s, s.release('b-bad-migration', '3.0.0')).catch((e: CliError) => e)
    expect((drift as CliError).exitCode, String(drift)).toBe(3)
    expect((drift as CliError).message).toContain('9001_fleet_notes.sql was edited after it was applied')
    expect(readJournal(s.settings)!.to.version).toBe('2.0.0')

    // back to A (head 0005 < 9001): refused before anything changes
    const down = await upgrade(s, s.release('a', '1.0.0-a2')).catch((e: CliError) => e)
    expect(down).toBeInstanceOf(CliError)
    expect((down as CliError).exitCode).toBe(2)
    expect((down as CliError).message).toContain('downgrade')
    await expectServing(s, '2.0.0')
  })

  it('B with a failing migration (after an irreversible one) → the step-1 backup is restored: schema and data identical, A serving, exit 6', async () => {
    const s = await stack('badmig')
    const before = await s.fingerprint()
    const error = await expectRolledBack(upgrade(s, s.release('b-bad-migration', '2.0.0-bad')))
    expect(error.message).toContain('step migrate')
    expect(error.message).toContain('division by zero')
    expect(error.message).toContain('restored')
    expect(await s.fingerprint()).toEqual(before)
    await expectServing(s, '1.0.0-a')
    const journal = readJournal(s.settings)!
    expect(journal.status).toBe('rolled-back')
    expect(journal.rollback?.method).toBe('restore')
    expect(journal.failure?.step).toBe('migrate')
    expect(journal.steps.find((st) => st.name === 'migrate')!.status).toBe('undone')
    expect(fs.realpathSync(path.join(s.settings.stateDir, 'releases/current'))).toBe(
      path.join(s.settings.stateDir, 'releases/1.0.0-a'),
    )
    // the journal row survived the restore
    expect(await s.query(`SELECT status, failed_step FROM charge_ops_upgrades`)).toEqual([
      {status: 'rolled-back', failed_step: 'migrate'},
    ])
  })

  it('B failing its health check after migrating → rolled back with the down migrations, A serving', async () => {
    const s = await stack('badhealth')
    const before = await s.fingerprint()
    const error = await expectRolledBack(upgrade(s, s.release('b-bad-health', '2.0.0-sick'), {startTimeoutMs: 15_000}))
    expect(error.message).toContain('step verify')
    expect(error.message).toContain('/health is fail')
    expect(error.message).toContain('down migrations')
    expect(await s.fingerprint()).toEqual(before)
    await expectServing(s, '1.0.0-a')
    const journal = readJournal(s.settings)!
    expect(journal.rollback).toMatchObject({method: 'down-migrations', verified: true})
    expect(journal.steps.find((st) => st.name === 'migrate')!.schemaHead).toBe('9001')
    expect(journal.steps.map((st) => st.status)).toEqual([
      'done',
      'undone',
      'done',
      'done',
      'undone',
      'undone',
      'failed',
    ])
    expect((await s.query(`SELECT to_regclass('fleet_notes') AS t`))[0]!.t).toBeNull()
  })

  it('killed during step 5 → the next run reports it and finishes the rollback', async () => {
    const s = await stack('killed')
    const before = await s.fingerprint()
    const to = s.release('b-slow-migration', '2.0.0-slow')
    const child = spawnTied(
      process.execPath,
      ['--import', 'tsx', path.join(ROOT, 'test/fixtures/upgrade/run-upgrade.ts'), s.dir, to],
      {
        cwd: ROOT,
        env: cleanEnv({CHROMA_COLLECTION: process.env.CHROMA_COLLECTION!}),
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    )
    let output = ''
    child.stderr!.on('data', (d) => (output += String(d)))
    await waitUntil(
      async () =>
        (await s.query(`SELECT 1 FROM pg_stat_activity WHERE query LIKE '%pg_sleep(20)%' AND pid <> pg_backend_pid()`))
          .length > 0,
      {
        timeoutMs: 60_000,
        what: 'the slow migration',
        abort: () => (child.exitCode !== null ? `the upgrade exited early (${child.exitCode}): ${output}` : undefined),
      },
    )
    expect(readJournal(s.settings)!.steps.find((st) => st.name === 'migrate')!.status).toBe('running')
    child.kill('SIGKILL')
    expect(await waitForExit(child, 10_000)).toBe(true)
    expect(readJournal(s.settings)!.status).toBe('running') // what a crash leaves

    const error = await expectRolledBack(upgrade(s, undefined))
    expect(error.message).toContain('interrupted upgrade')
    expect(error.message).toContain('step migrate')
    expect(await s.fingerprint()).toEqual(before)
    await expectServing(s, '1.0.0-a')
    const journal = readJournal(s.settings)!
    expect(journal.status).toBe('rolled-back')
    expect(journal.interrupted?.atStep).toBe('migrate')
    expect(journal.rollback).toMatchObject({resumed: true, method: 'down-migrations'})
    // nothing left to resume: the next run needs --to again
    await expect(upgrade(s, undefined)).rejects.toMatchObject({exitCode: 2})
  })

  it('killed at the kill points upgrade.local.after-<step>: the journal says where it stopped; the rerun rolls back (after backup, after migrate) or finishes (after verify)', async () => {
    const s = await stack('killpoints')
    const before = await s.fingerprint()
    const faults = path.join(s.dir, 'faults')
    fs.mkdirSync(faults)
    /** the upgrade in its own process, SIGKILLed by itself at `point`; resolves with the point's marker */
    const killAt = async (point: string, to: string) => {
      const child = spawnTied(
        process.execPath,
        ['--import', 'tsx', path.join(ROOT, 'test/fixtures/upgrade/run-upgrade.ts'), s.dir, to],
        {
          cwd: ROOT,
          env: cleanEnv({CHROMA_COLLECTION: process.env.CHROMA_COLLECTION!, ...killPointEnv(point, faults)}),
          stdio: ['ignore', 'ignore', 'pipe'],
        },
      )
      let output = ''
      child.stderr!.on('data', (d) => (output += String(d)))
      const signal = await new Promise<NodeJS.Signals | null>((r) => child.once('exit', (_code, sig) => r(sig)))
      const reached = readReached(faults, point, output)
      expect(signal, output).toBe('SIGKILL')
      return reached
    }
    const statuses = () => readJournal(s.settings)!.steps.map((st) => st.status)

    // after step 1: a verified backup, nothing else changed; A still serves, maintenance never went on
    const first = await killAt('upgrade.local.after-backup', s.release('b', '2.0.0'))
    let journal = readJournal(s.settings)!
    expect(journal).toMatchObject({status: 'running', pid: first.pid})
    expect(statuses()).toEqual(['done', 'pending', 'pending', 'pending', 'pending', 'pending', 'pending'])
    const manifest = JSON.parse(
      fs.readFileSync(
        path.join(s.dir, 'repo', s.settings.stack, 'backups', journal.backupId!, 'manifest.json'),
        'utf8',
      ),
    )
    expect(manifest.verification.ok).toBe(true)
    await expectServing(s, '1.0.0-a')
    let error = await expectRolledBack(upgrade(s, undefined))
    expect(error.message).toContain(`interrupted (the upgrade process ${first.pid} stopped after step backup)`)
    journal = readJournal(s.settings)!
    expect(journal).toMatchObject({
      status: 'rolled-back',
      interrupted: {afterStep: 'backup'},
      rollback: {method: 'none', resumed: true},
    })
    await expectServing(s, '1.0.0-a')
    expect(await s.fingerprint()).toEqual(before)

    // after step 5: maintenance on, the service stopped, the migration applied, A still current
    const second = await killAt('upgrade.local.after-migrate', s.release('b', '2.0.0'))
    journal = readJournal(s.settings)!
    expect(journal.pid).toBe(second.pid)
    expect(statuses()).toEqual(['done', 'done', 'done', 'done', 'done', 'pending', 'pending'])
    expect(journal.steps.find((st) => st.name === 'migrate')!.schemaHead).toBe('9001')
    expect((await serviceStatus(s.reload())).running).toBe(false)
    expect(JSON.parse(fs.readFileSync(path.join(s.settings.stateDir, 'maintenance'), 'utf8')).reason).toBe(
      'upgrade to 2.0.0',
    )
    expect(fs.realpathSync(path.join(s.settings.stateDir, 'releases/current'))).toBe(
      path.join(s.settings.stateDir, 'releases/1.0.0-a'),
    )
    error = await expectRolledBack(upgrade(s, undefined))
    expect(error.message).toContain('stopped after step migrate')
    expect(readJournal(s.settings)!).toMatchObject({
      status: 'rolled-back',
      interrupted: {afterStep: 'migrate'},
      rollback: {method: 'down-migrations', verified: true},
    })
    expect(fs.existsSync(path.join(s.settings.stateDir, 'maintenance'))).toBe(false)
    await expectServing(s, '1.0.0-a')
    expect(await s.fingerprint()).toEqual(before)

    // after step 7: B verified, but maintenance still on and the journal open; the rerun finishes it
    const third = await killAt('upgrade.local.after-verify', s.release('b', '2.0.0'))
    expect(readJournal(s.settings)!).toMatchObject({status: 'running', pid: third.pid})
    expect(statuses()).toEqual(Array(7).fill('done'))
    expect(fs.existsSync(path.join(s.settings.stateDir, 'maintenance'))).toBe(true)
    const finished = await upgrade(s, undefined)
    expect(finished.outcome, finished.message).toBe('finished-interrupted')
    expect(fs.existsSync(path.join(s.settings.stateDir, 'maintenance'))).toBe(false)
    await expectServing(s, '2.0.0')
    const after = await s.fingerprint()
    for (const [key, value] of Object.entries(before)) {
      if (key === 'schema' || key === 'rows:service_meta' || key === 'rows:charge_ops_migrations') continue
      expect(after[key], key).toBe(value)
    }
  })

  it('--rehearse migrates a restored copy of the newest backup, reports timings, leaves production alone; another run holds the lock → exit 4', async () => {
    const s = await stack('rehearse')
    const storage = await openRepository(path.join(s.dir, 'repo'))
    // a backup to rehearse on: the one a successful-looking dry upgrade would take
    const {openBackupContext} = await import('../../src/backup/context.js')
    const {backupDatabase} = await import('../../src/backup/db.js')
    await backupDatabase(await openBackupContext({settings: s.reload(), logger: silentLogger}))
    const before = await s.fingerprint()

    const good = await rehearseUpgrade({
      settings: s.reload(),
      logger: silentLogger,
      to: s.release('b', '2.0.0'),
      cwd: s.dir,
    })
    expect(good.ok, JSON.stringify(good.failure)).toBe(true)
    expect(good.migrations.map((m) => m.file)).toEqual(['9001_fleet_notes.sql'])
    expect(good.health).toMatchObject({status: 'ok', version: '2.0.0'})
    expect(good.expectedDowntimeMs).toBeGreaterThan(0)
    const bad = await rehearseUpgrade({
      settings: s.reload(),
      logger: silentLogger,
      to: s.release('b-bad-migration', '2.0.0-bad'),
      cwd: s.dir,
    })
    expect(bad.ok).toBe(false)
    expect(bad.failure?.step).toBe('migrate')
    expect(bad.failure?.error).toContain('division by zero')
    expect(await s.fingerprint()).toEqual(before)
    await expectServing(s, '1.0.0-a')
    expect(await s.query(`SELECT datname FROM pg_database WHERE datname LIKE 'charge_ops_rehearse_%'`)).toEqual([])

    const release = await acquireLock(storage, s.settings.stack, {command: 'upgrade (another)', name: 'upgrade'})
    try {
      await expect(upgrade(s, s.release('b', '2.0.1'))).rejects.toMatchObject({exitCode: 4})
    } finally {
      await release()
    }
  })
})
