/**
 * `charge-ops recover` (the built CLI) against a real archived cluster: the five steps, the .env
 * repointed atomically with the old one kept, the migration version and rows verified, the state
 * file making a rerun a no-op; and a failing recovery that leaves the old database serving.
 */
import {spawnSync} from 'node:child_process'
import fs from 'node:fs'
import path from 'node:path'

import {afterAll, beforeAll, describe, expect, it} from 'vitest'

import {migrateUp} from '../../src/migrate/index.js'
import {archiveCommand} from '../../src/wal/command-lines.js'
import {freePort, startPostgres, type PgCluster} from '../support/index.js'

const ROOT = path.resolve(import.meta.dirname, '../..')
const ENTRY = path.join(ROOT, 'bin/run.js')
let pg: PgCluster
let repo: string
let work: string
const started: string[] = []

function cli(args: string[], options: {asServer?: boolean; env?: Record<string, string>} = {}) {
  const r = spawnSync(process.execPath, [ENTRY, ...args], {
    cwd: work,
    encoding: 'utf8',
    env: {PATH: process.env.PATH, HOME: '/tmp', NO_COLOR: '1', CI: 'true', ...options.env},
    uid: options.asServer ? pg.osUser?.uid : undefined,
    gid: options.asServer ? pg.osUser?.gid : undefined,
    timeout: 240_000,
  })
  return {code: r.status, stdout: r.stdout, stderr: r.stderr}
}

beforeAll(async () => {
  pg = await startPostgres({name: 'recover'})
  repo = pg.serverDir('repo')
  await pg.restart({archive_mode: 'on', archive_command: archiveCommand({repository: repo, stack: 'prod', entry: ENTRY})})
  const url = await pg.createDatabase('charge_analysis')
  await migrateUp({databaseUrl: url, migrationsDir: path.join(ROOT, 'service/migrations')})
  await pg.query('CREATE TABLE probe (id int PRIMARY KEY)', 'charge_analysis')
  const base = cli(['backup', 'base', '--repo', repo, '--stack', 'prod'], {asServer: true, env: {DATABASE_URL: url}})
  expect(base.code, base.stderr).toBe(0)
  await pg.query('INSERT INTO probe SELECT generate_series(1, 500)', 'charge_analysis')
  work = pg.serverDir('ops')
  fs.symlinkSync(path.join(ROOT, 'service'), path.join(work, 'service'))
  fs.writeFileSync(path.join(work, 'charge-ops.yaml'), `stack: prod\npaths:\n  stateDir: state\nbackup:\n  repository: ${repo}\n`)
  fs.writeFileSync(path.join(work, '.env'), `# backend\nAPP_NAME=Charge Analysis Backend\nDATABASE_URL=${url}\nSECRET_KEY=abcdefabcdefabcdefabcdefabcdefabcdef\n`, {mode: 0o600})
  const check = cli(['wal', 'check'], {env: {}})
  expect(check.code, check.stderr).toBe(0)
}, 240_000)

afterAll(async () => {
  for (const dir of started) {
    if (fs.existsSync(path.join(dir, 'postmaster.pid'))) spawnSync(path.join(pg.binDir, 'pg_ctl'), ['stop', '-D', dir, '-m', 'immediate', '-w'], {uid: pg.osUser?.uid, gid: pg.osUser?.gid})
  }
  await pg?.stop()
})

describe('charge-ops recover', () => {
  it('leaves the old database serving when recovery cannot reach the target', async () => {
    const envBefore = fs.readFileSync(path.join(work, '.env'), 'utf8')
    const dataDir = path.join(pg.serverDir('new'), 'fail')
    const r = cli(['recover', '--target-time', new Date(Date.now() + 3_600_000).toISOString(), '--data-dir', dataDir, '--port', String(await freePort()), '--yes'])
    expect(r.code).toBe(6)
    expect(r.stderr).toMatch(/beyond the archived WAL/)
    expect(r.stderr).toMatch(/old database keeps serving \(maintenance mode is off\)/)
    expect(fs.readFileSync(path.join(work, '.env'), 'utf8')).toBe(envBefore)
    expect(fs.existsSync(path.join(work, 'state', 'maintenance'))).toBe(false)
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
})
