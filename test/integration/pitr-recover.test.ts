/**
 * `charge-ops recover` (the built CLI) against a real archived cluster: the five steps, the .env
 * repointed atomically with the old one kept, the migration version and rows verified, the state
 * file making a rerun a no-op; and a failing recovery that leaves the old database serving.
 */
import {spawn, spawnSync} from 'node:child_process'
import fs from 'node:fs'
import path from 'node:path'

import {afterAll, beforeAll, describe, expect, it} from 'vitest'

import {migrateUp} from '../../src/migrate/index.js'
import {archiveCommand} from '../../src/wal/command-lines.js'
import {freePort, killPointEnv, readReached, runCli, startPostgres, type PgCluster} from '../support/index.js'

const ROOT = path.resolve(import.meta.dirname, '../..')
const ENTRY = path.join(ROOT, 'bin/run.js')
let pg: PgCluster
let repo: string
let work: string
let originalEnv: string
const started: string[] = []

const cli = (args: string[], options: {asServer?: boolean; env?: Record<string, string>} = {}) =>
  runCli(args, {
    cwd: work,
    bareEnv: true,
    env: {CI: 'true', ...options.env},
    user: options.asServer ? pg.osUser : undefined,
    timeout: 240_000,
  })

beforeAll(async () => {
  pg = await startPostgres({name: 'recover'})
  repo = pg.serverDir('repo')
  await pg.restart({
    archive_mode: 'on',
    archive_command: archiveCommand({repository: repo, stack: 'prod', entry: ENTRY}),
  })
  const url = await pg.createDatabase('charge_analysis')
  await migrateUp({databaseUrl: url, migrationsDir: path.join(ROOT, 'service/migrations')})
  await pg.query('CREATE TABLE probe (id int PRIMARY KEY)', 'charge_analysis')
  const base = cli(['backup', 'base', '--repo', repo, '--stack', 'prod'], {asServer: true, env: {DATABASE_URL: url}})
  expect(base.code, base.stderr).toBe(0)
  await pg.query('INSERT INTO probe SELECT generate_series(1, 500)', 'charge_analysis')
  work = pg.serverDir('ops')
  fs.symlinkSync(path.join(ROOT, 'service'), path.join(work, 'service'))
  fs.writeFileSync(
    path.join(work, 'charge-ops.yaml'),
    `stack: prod\npaths:\n  stateDir: state\nbackup:\n  repository: ${repo}\n`,
  )
  fs.writeFileSync(
    path.join(work, '.env'),
    `# backend\nAPP_NAME=Charge Analysis Backend\nDATABASE_URL=${url}\nSECRET_KEY=abcdefabcdefabcdefabcdefabcdefabcdef\n`,
    {mode: 0o600},
  )
  originalEnv = fs.readFileSync(path.join(work, '.env'), 'utf8')
  const check = cli(['wal', 'check'], {env: {}})
  expect(check.code, check.stderr).toBe(0)
}, 240_000)

afterAll(async () => {
  for (const dir of started) {
    if (fs.existsSync(path.join(dir, 'postmaster.pid')))
      spawnSync(path.join(pg.binDir, 'pg_ctl'), ['stop', '-D', dir, '-m', 'immediate', '-w'], {
        uid: pg.osUser?.uid,
        gid: pg.osUser?.gid,
      })
  }
  await pg?.stop()
})

describe('charge-ops recover', () => {
  it('leaves the old database serving when recovery cannot reach the target', async () => {
    const envBefore = fs.readFileSync(path.join(work, '.env'), 'utf8')
    const dataDir = path.join(pg.serverDir('new'), 'fail')
    const r = cli([
      'recover',
      '--target-time',
      new Date(Date.now() + 3_600_000).toISOString(),
      '--data-dir',
      dataDir,
      '--port',
      String(await freePort()),
      '--yes',
    ])
    expect(r.code).toBe(6)
    expect(r.stderr).toMatch(/beyond the archived WAL/)
    expect(r.stderr).toMatch(/old database keeps serving \(maintenance mode is off\)/)
    expect(fs.readFileSync(path.join(work, '.env'), 'utf8')).toBe(envBefore)
    expect(fs.existsSync(path.join(work, 'state', 'maintenance'))).toBe(false)
    fs.rmSync(path.join(work, 'state', 'recover.json'))
  }, 120_000)

  it('refuses while another recover holds the lock (exit 4, its pid), and a damaged journal (exit 1): nothing touched', async () => {
    const envBefore = fs.readFileSync(path.join(work, '.env'), 'utf8')
    const args = [
      'recover',
      '--latest',
      '--data-dir',
      path.join(pg.serverDir('new'), 'locked'),
      '--port',
      String(await freePort()),
      '--yes',
      '--json',
    ]
    const holder = spawn('sleep', ['60'])
    try {
      fs.mkdirSync(path.join(work, 'state'), {recursive: true})
      fs.writeFileSync(path.join(work, 'state', 'recover.lock'), `${holder.pid}\n`)
      const locked = cli(args)
      expect(locked.code, locked.stderr).toBe(4)
      expect(JSON.parse(locked.stdout).error.message).toBe(`another recover (pid ${holder.pid}) is running`)
    } finally {
      holder.kill('SIGKILL')
    }
    expect(fs.existsSync(path.join(work, 'state', 'recover.json'))).toBe(false)

    // the holder is gone: its lock is taken over, and the damaged journal is refused, never read as "none"
    fs.writeFileSync(path.join(work, 'state', 'recover.json'), '{"target": "latest", "done": {"maintenance"')
    const damaged = cli(args)
    expect(damaged.code, damaged.stderr).toBe(1)
    const error = JSON.parse(damaged.stdout).error
    expect(error.code).toBe('JOURNAL_UNREADABLE')
    expect(error.message).toContain(`the recover journal ${path.join(work, 'state', 'recover.json')} cannot be read`)
    expect(damaged.stderr).not.toMatch(/\n\s+at /)
    expect(fs.readFileSync(path.join(work, 'state', 'recover.json'), 'utf8')).toBe(
      '{"target": "latest", "done": {"maintenance"',
    )
    expect(fs.readFileSync(path.join(work, '.env'), 'utf8')).toBe(envBefore)
    expect(fs.existsSync(path.join(work, 'state', 'recover.lock'))).toBe(false)
    fs.rmSync(path.join(work, 'state', 'recover.json'))
  }, 120_000)

  it('runs the five steps, repoints DATABASE_URL and verifies; a rerun skips them', async () => {
    const dataDir = path.join(pg.serverDir('new'), 'ok')
    const port = await freePort()
    started.push(dataDir)
    const r = cli(['recover', '--latest', '--data-dir', dataDir, '--port', String(port), '--yes', '--json'])
    expect(r.code, r.stderr).toBe(0)
    const state = JSON.parse(r.stdout)
    expect(Object.keys(state.done).sort()).toEqual(['maintenance', 'replay', 'repoint', 'restore', 'verify'])
    expect(state.verify.migration.matches).toBe(true)
    expect(state.verify.migration.recovered).toBe('0005')
    expect(state.verify.rowCounts['public.probe']).toBe(500)
    expect(state.recovery.timeline).toBe(2)
    const env = fs.readFileSync(path.join(work, '.env'), 'utf8')
    expect(env).toContain(`@127.0.0.1:${port}/charge_analysis`)
    expect(env).toContain('SECRET_KEY=abcdef') // other lines untouched
    expect(fs.readFileSync(state.envBackup, 'utf8')).toContain(`@127.0.0.1:${pg.port}/charge_analysis`)
    expect(fs.existsSync(path.join(work, 'state', 'maintenance'))).toBe(false)
    expect(r.stdout).not.toContain(pg.password)

    const again = cli(['recover', '--latest', '--data-dir', dataDir, '--port', String(port), '--yes'])
    expect(again.code, again.stderr).toBe(0)
    expect(again.stderr.match(/already done/g)?.length).toBe(5)
  }, 240_000)

  it('behind a real PgBouncer: repoints its [databases] entry and reloads it; DATABASE_URL stays; the clients reach the recovered server', async () => {
    // PgBouncer refuses to run as root: it runs as the cluster's OS user, its files owned by it
    const dir = pg.serverDir('bouncer')
    const bouncerPort = await freePort()
    const ini = path.join(dir, 'pgbouncer.ini')
    const userlist = path.join(dir, 'userlist.txt')
    fs.writeFileSync(userlist, `"postgres" "${pg.password}"\n`, {mode: 0o600})
    fs.writeFileSync(
      ini,
      [
        '; generated by the test',
        '[databases]',
        `charge_analysis = host=127.0.0.1 port=${pg.port} dbname=charge_analysis`,
        '',
        '[pgbouncer]',
        'listen_addr = 127.0.0.1',
        `listen_port = ${bouncerPort}`,
        `unix_socket_dir =`,
        'auth_type = trust',
        `auth_file = ${userlist}`,
        'admin_users = postgres',
        'pool_mode = transaction',
        `logfile = ${path.join(dir, 'pgbouncer.log')}`,
        `pidfile = ${path.join(dir, 'pgbouncer.pid')}`,
        '',
      ].join('\n'),
      {mode: 0o640},
    )
    if (pg.osUser) for (const f of [ini, userlist]) fs.chownSync(f, pg.osUser.uid, pg.osUser.gid)
    const bouncer = spawn('pgbouncer', [ini], {uid: pg.osUser?.uid, gid: pg.osUser?.gid, stdio: 'ignore'})
    try {
      const viaBouncer = `postgresql://postgres:${encodeURIComponent(pg.password)}@127.0.0.1:${bouncerPort}/charge_analysis`
      const serverPort = async () => {
        const {default: pgc} = await import('pg')
        for (let i = 0; ; i++) {
          const c = new pgc.Client({connectionString: viaBouncer})
          try {
            await c.connect()
            const port = Number((await c.query('SELECT inet_server_port() AS p')).rows[0].p)
            await c.end()
            return port
          } catch (error) {
            await c.end().catch(() => {})
            if (i > 50) throw error
            await new Promise((r) => setTimeout(r, 100))
          }
        }
      }
      expect(await serverPort()).toBe(pg.port)

      const work2 = pg.serverDir('ops-bouncer')
      fs.symlinkSync(path.join(ROOT, 'service'), path.join(work2, 'service'))
      fs.writeFileSync(
        path.join(work2, 'charge-ops.yaml'),
        `stack: prod\npaths:\n  stateDir: state\nbackup:\n  repository: ${repo}\n`,
      )
      const envText = `DATABASE_URL=${viaBouncer}\nSECRET_KEY=abcdefabcdefabcdefabcdefabcdefabcdef\n`
      fs.writeFileSync(path.join(work2, '.env'), envText, {mode: 0o600})
      const dataDir = path.join(pg.serverDir('new'), 'bouncer')
      const port = await freePort()
      started.push(dataDir)
      const adminUrl = `postgresql://postgres@127.0.0.1:${bouncerPort}/pgbouncer`
      const r = spawnSync(
        process.execPath,
        [
          ENTRY,
          'recover',
          '--latest',
          '--data-dir',
          dataDir,
          '--port',
          String(port),
          '--pgbouncer-ini',
          ini,
          '--yes',
          '--json',
        ],
        {
          cwd: work2,
          encoding: 'utf8',
          env: {
            PATH: process.env.PATH,
            HOME: '/tmp',
            NO_COLOR: '1',
            CI: 'true',
            CHARGE_OPS_PGBOUNCER_ADMIN_URL: adminUrl,
          },
          timeout: 240_000,
        },
      )
      expect(r.status, r.stdout + r.stderr).toBe(0)
      const state = JSON.parse(r.stdout)
      expect(state.verify.rowCounts['public.probe']).toBe(500)
      // the clients' URL is untouched; through it they now reach the recovered server
      expect(fs.readFileSync(path.join(work2, '.env'), 'utf8')).toBe(envText)
      expect(await serverPort()).toBe(port)
      const text = fs.readFileSync(ini, 'utf8')
      expect(text).toContain(`charge_analysis = host=127.0.0.1 port=${port} dbname=charge_analysis`)
      expect(text).toContain(`listen_port = ${bouncerPort}`)
      // still PgBouncer's file (it must be able to read it on the next reload), the old one kept
      if (pg.osUser) expect(fs.statSync(ini).uid).toBe(pg.osUser.uid)
      expect(fs.readFileSync(state.pgbouncerBackup, 'utf8')).toContain(`port=${pg.port} dbname`)
      expect(r.stdout + r.stderr).not.toContain(pg.password)

      // the other way to reload (no admin console): SIGHUP to the pid in PgBouncer's pidfile
      const {reloadPgbouncer} = await import('../../src/restore/pgbouncer.js')
      const old = fs.readFileSync(state.pgbouncerBackup, 'utf8')
      fs.writeFileSync(ini, old)
      expect(await reloadPgbouncer({ini}, old)).toMatch(/^SIGHUP to pid \d+$/)
      // a signal is handled when PgBouncer gets to it: wait (up to 5 s) for the old server to answer
      let seen = 0
      for (let i = 0; i < 50 && seen !== pg.port; i++) {
        seen = await serverPort()
        if (seen !== pg.port) await new Promise((r) => setTimeout(r, 100))
      }
      expect(seen).toBe(pg.port)
    } finally {
      bouncer.kill('SIGTERM')
    }
  }, 240_000)
  it('killed at recover.after-replay, then at recover.after-verify: the journal says where it stopped; the reruns resume with the same server (no second one on the data dir), maintenance ends off', async () => {
    // the earlier test repointed the .env: start again from the original one
    fs.writeFileSync(path.join(work, '.env'), originalEnv, {mode: 0o600})
    fs.rmSync(path.join(work, 'state', 'recover.json'), {force: true})
    const faults = pg.serverDir('faults-recover')
    const dataDir = path.join(pg.serverDir('new'), 'killed')
    const port = await freePort()
    started.push(dataDir)
    const args = ['recover', '--latest', '--data-dir', dataDir, '--port', String(port), '--yes']
    const killAt = (point: string) => {
      const r = cli(args, {env: killPointEnv(point, faults)})
      readReached(faults, point, r.stderr)
      expect(r.signal, r.stderr).toBe('SIGKILL')
    }
    const journal = () => JSON.parse(fs.readFileSync(path.join(work, 'state', 'recover.json'), 'utf8'))
    const postmaster = () => Number(fs.readFileSync(path.join(dataDir, 'postmaster.pid'), 'utf8').split('\n')[0])
    const probeRows = async () => {
      const {default: pgc} = await import('pg')
      const c = new pgc.Client({
        connectionString: `postgresql://postgres:${encodeURIComponent(pg.password)}@127.0.0.1:${port}/charge_analysis`,
      })
      await c.connect()
      try {
        return Number((await c.query('SELECT count(*) AS n FROM probe')).rows[0].n)
      } finally {
        await c.end()
      }
    }

    // after step 3: the recovered server runs (promoted), the .env still names the old one, maintenance on
    killAt('recover.after-replay')
    expect(Object.keys(journal().done).sort()).toEqual(['maintenance', 'replay', 'restore'])
    expect(journal().finishedAt).toBeUndefined()
    expect(fs.readFileSync(path.join(work, '.env'), 'utf8')).toBe(originalEnv)
    expect(JSON.parse(fs.readFileSync(path.join(work, 'state', 'maintenance'), 'utf8')).reason).toBe(
      'charge-ops recover to the end of the archived WAL',
    )
    const server = postmaster()
    expect(process.kill(server, 0)).toBe(true)
    expect(await probeRows()).toBe(500)

    // the rerun resumes at step 4 (killed again once step 5 is recorded): it did not start a second server
    killAt('recover.after-verify')
    expect(postmaster()).toBe(server)
    expect(fs.readFileSync(path.join(work, '.env'), 'utf8')).toContain(`@127.0.0.1:${port}/charge_analysis`)
    expect(
      journal().finishedAt,
      'step 5 recorded without the recovery finished: a rerun skips every step and never switches maintenance off',
    ).toBeDefined()
    expect(fs.existsSync(path.join(work, 'state', 'maintenance')), 'maintenance left on').toBe(false)

    const again = cli(args)
    expect(again.code, again.stderr).toBe(0)
    expect(again.stderr.match(/already done/g)?.length).toBe(5)
    expect(postmaster()).toBe(server)
    expect(await probeRows()).toBe(500)
    expect(fs.existsSync(path.join(work, 'state', 'maintenance'))).toBe(false)
  }, 240_000)
})
