/**
 * `backup base` bounds every wait it starts. With archive_command failing, pg_basebackup -X none
 * makes the server wait forever for the backup's last segment (BackupWaitWalArchive); charge-ops
 * must stop pg_basebackup, end that wait (terminate the walsender), release the lock and exit 5
 * naming pg_stat_archiver's last failure — within --wal-timeout, not never. SIGTERM takes the same
 * clean-up path. Real cluster; the built CLI, run as the server's OS user.
 */
import {spawn, spawnSync} from 'node:child_process'
import fs from 'node:fs'
import path from 'node:path'

import {afterAll, beforeAll, describe, expect, it} from 'vitest'

import {archiveCommand} from '../../src/wal/command-lines.js'
import {startPostgres, type PgCluster} from '../support/index.js'

const ROOT = path.resolve(import.meta.dirname, '../..')
const ENTRY = path.join(ROOT, 'bin/run.js')
const STACK = 'bw'

let pg: PgCluster
let repo: string

const env = () => ({PATH: process.env.PATH!, HOME: '/tmp', NO_COLOR: '1', DATABASE_URL: pg.url()})
const asServer = () => ({uid: pg.osUser?.uid, gid: pg.osUser?.gid})

/** Backends still waiting for the archive on behalf of a base backup, and pg_basebackup processes. */
async function leftovers() {
  const waiting = await pg.query<{n: string}>(
    "SELECT count(*)::text AS n FROM pg_stat_activity WHERE wait_event = 'BackupWaitWalArchive' OR application_name LIKE 'charge-ops backup base%'",
  )
  // pg_basebackup processes of this cluster (others may run on the machine): PGPORT in their environment
  const ps = spawnSync('pgrep', ['-x', 'pg_basebackup'], {encoding: 'utf8'})
  const ours = ps.stdout
    .split('\n')
    .filter(Boolean)
    .filter((pid) => {
      try {
        return fs.readFileSync(`/proc/${pid}/environ`, 'utf8').split('\0').includes(`PGPORT=${pg.port}`)
      } catch {
        return false
      }
    })
  return {walsenders: Number(waiting[0].n), pgBasebackup: ours.length}
}

beforeAll(async () => {
  pg = await startPostgres({name: 'base-waits'})
  repo = pg.serverDir('repo')
  await pg.restart({
    archive_mode: 'on',
    archive_command: archiveCommand({repository: repo, stack: STACK, entry: ENTRY, node: process.execPath}),
  })
  await pg.query('CREATE TABLE t AS SELECT generate_series(1, 1000) AS id')
  const check = spawnSync(process.execPath, [ENTRY, 'wal', 'check', '--repo', repo, '--stack', STACK], {
    env: env(),
    encoding: 'utf8',
  })
  expect(check.status, check.stderr).toBe(0)
  // from now on every push fails: the timeline's directory is read-only for the server's user
  const tl = path.join(repo, STACK, 'wal', '00000001')
  fs.chmodSync(tl, 0o555)
  await pg.query('SELECT pg_switch_wal()')
}, 240_000)

afterAll(async () => {
  await pg?.stop()
})

describe('backup base when archiving fails', () => {
  it("stops within --wal-timeout: exit 5 naming the archiver's last failure, no walsender left waiting, lock released", async () => {
    const started = Date.now()
    const r = spawnSync(
      process.execPath,
      [ENTRY, 'backup', 'base', '--repo', repo, '--stack', STACK, '--wal-timeout', '5'],
      {env: env(), encoding: 'utf8', timeout: 120_000, ...asServer()},
    )
    const seconds = (Date.now() - started) / 1000
    expect(r.signal, 'still waiting after 120 s').toBeNull()
    expect(r.status, r.stderr).toBe(5)
    expect(r.stderr).toMatch(
      /did not end within 5s — pg_stat_archiver: archive_command last failed on 0000000100000000000000\w\w at \S+ \(\d+ failures\)/,
    )
    expect(r.stderr).not.toMatch(/\n\s+at /) // no stack trace
    expect(seconds).toBeLessThan(60)
    expect(await leftovers()).toEqual({walsenders: 0, pgBasebackup: 0})
    expect(fs.existsSync(path.join(repo, STACK, 'locks', 'backup.lock'))).toBe(false)
    const backups = fs.existsSync(path.join(repo, STACK, 'backups'))
      ? fs.readdirSync(path.join(repo, STACK, 'backups'))
      : []
    for (const id of backups) expect(fs.existsSync(path.join(repo, STACK, 'backups', id, 'manifest.json'))).toBe(false)
  }, 150_000)

  it('on SIGTERM while the server waits: pg_basebackup stopped, walsender ended, lock released, killed by SIGTERM', async () => {
    const child = spawn(
      process.execPath,
      [ENTRY, 'backup', 'base', '--repo', repo, '--stack', STACK, '--wal-timeout', '600'],
      {env: env(), stdio: ['ignore', 'pipe', 'pipe'], ...asServer()},
    )
    let stderr = ''
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString()))
    const exited = new Promise<{code: number | null; signal: NodeJS.Signals | null}>((resolve) =>
      child.on('exit', (code, signal) => resolve({code, signal})),
    )
    // wait until the server waits for the archive on our behalf
    const deadline = Date.now() + 60_000
    while (
      (await leftovers()).walsenders === 0 ||
      (
        await pg.query<{n: string}>(
          "SELECT count(*)::text AS n FROM pg_stat_activity WHERE wait_event = 'BackupWaitWalArchive'",
        )
      )[0].n === '0'
    ) {
      expect(Date.now() < deadline, stderr).toBe(true)
      await new Promise((r) => setTimeout(r, 200))
    }
    child.kill('SIGTERM')
    const end = await exited
    expect(end.signal, stderr).toBe('SIGTERM')
    // the walsender is gone when charge-ops exits (pg_terminate_backend waits); the monitor's own
    // session may take a moment after its Terminate message to leave pg_stat_activity
    expect((await leftovers()).pgBasebackup).toBe(0)
    expect(
      await pg.query(
        "SELECT pid, application_name, wait_event, state, backend_start::text FROM pg_stat_activity WHERE backend_type = 'walsender'",
      ),
      stderr,
    ).toEqual([])
    const settled = Date.now() + 5_000
    while ((await leftovers()).walsenders > 0 && Date.now() < settled) await new Promise((r) => setTimeout(r, 100))
    expect(await leftovers()).toEqual({walsenders: 0, pgBasebackup: 0})
    expect(fs.existsSync(path.join(repo, STACK, 'locks', 'backup.lock'))).toBe(false)
  }, 150_000)
})
