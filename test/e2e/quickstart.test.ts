/**
 * The quick start as a newcomer runs it: `npm run quickstart` in a fresh copy of the project.
 *
 * The copy holds the files git tracks (as they are in the working tree, so uncommitted changes to
 * tracked files are tested too; `git clone` of HEAD would silently test older code). node_modules
 * is symlinked from the working tree rather than installed (`npm ci` would download ~300 MB on
 * every run); everything else — build, sandbox, servers, sample data — happens from scratch in the
 * copy, with its own .charge-ops/sandbox.
 * CHARGE_OPS_E2E_COPY=worktree also copies untracked (not ignored) files: for checking work that
 * is not committed yet.
 */
import {execFileSync, spawn} from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'

import {afterAll, beforeAll, describe, expect, it} from 'vitest'

import {cleanEnv, run, runUnchecked} from '../support/index.js'
import {pidAlive} from '../support/process.js'

const ROOT = path.resolve(import.meta.dirname, '../..')
let work: string
let home: string

beforeAll(() => {
  // a clone inside a home directory of mode 0700 (root's on Debian): PostgreSQL's OS user cannot
  // enter it, and the quick start must work anyway (issue 14, item 7)
  home = fs.mkdtempSync(path.join(os.tmpdir(), 'charge-ops-home-'))
  fs.chmodSync(home, 0o700)
  work = path.join(home, 'charge-ops')
  fs.mkdirSync(work)
  const extra = process.env.CHARGE_OPS_E2E_COPY === 'worktree' ? ['--cached', '--others', '--exclude-standard'] : []
  const files = execFileSync('git', ['ls-files', '-z', ...extra], {cwd: ROOT, encoding: 'utf8'})
    .split('\0')
    .filter(Boolean)
  for (const file of files) {
    const from = path.join(ROOT, file)
    if (!fs.existsSync(from)) continue // deleted in the working tree
    fs.mkdirSync(path.dirname(path.join(work, file)), {recursive: true})
    fs.copyFileSync(from, path.join(work, file))
    fs.chmodSync(path.join(work, file), fs.statSync(from).mode)
  }
  fs.symlinkSync(path.join(ROOT, 'node_modules'), path.join(work, 'node_modules'))
})

afterAll(async () => {
  if (!work) return
  await runUnchecked('node', ['bin/run.js', 'sandbox', 'down', '--purge', '--yes'], {cwd: work})
  fs.rmSync(home, {recursive: true, force: true})
})

describe('npm run quickstart', () => {
  it(
    'builds, creates the sandbox (killed twice on the way: at sandbox.up.postgres-started and sandbox.up.chroma-spawned), analyses the samples, and is reusable; a killed down is finished by the next',
    {timeout: 600_000},
    async () => {
      const sandbox = path.join(work, '.charge-ops/sandbox')
      const faults = path.join(home, 'faults')
      fs.mkdirSync(faults)
      const marker = (point: string) => {
        expect(fs.existsSync(path.join(faults, `${point}.reached`)), `${point} was not reached`).toBe(true)
        return JSON.parse(fs.readFileSync(path.join(faults, `${point}.reached`), 'utf8'))
      }
      const killEnv = (point: string) => cleanEnv({CI: 'true', CHARGE_OPS_KILL_AT: point, CHARGE_OPS_FAULT_DIR: faults})
      const postmaster = () =>
        Number(fs.readFileSync(path.join(sandbox, 'pg/data/postmaster.pid'), 'utf8').split('\n')[0])

      // killed once PostgreSQL runs: the cluster is up, nothing after it started
      const killed = await runUnchecked('npm', ['run', 'quickstart', '--silent'], {
        cwd: work,
        env: killEnv('sandbox.up.postgres-started'),
        timeoutMs: 540_000,
      })
      expect(killed.code, killed.stderr).not.toBe(0)
      const atPostgres = marker('sandbox.up.postgres-started')
      expect(pidAlive(atPostgres.pid)).toBe(false)
      expect(atPostgres.postmaster).toBe(postmaster())
      expect(pidAlive(atPostgres.postmaster)).toBe(true)
      // the 0700 home: the cluster was put where the postgres user can reach it, by itself
      expect(killed.stderr).toMatch(/which cannot enter .*: its data is in \/var\/lib\/charge-ops\/sandbox-pg\//)
      for (const f of ['run/redis.pid', 'run/chroma.pid', 'run/api.pid'])
        expect(fs.existsSync(path.join(sandbox, f)), f).toBe(false)

      // killed once Chroma was spawned, before it answered: it keeps starting (detached, as meant)
      await runUnchecked('node', ['--', 'bin/run.js', 'sandbox', 'up'], {
        cwd: work,
        env: killEnv('sandbox.up.chroma-spawned'),
        timeoutMs: 120_000,
      })
      const chroma: number = marker('sandbox.up.chroma-spawned').chroma
      expect(pidAlive(chroma)).toBe(true)
      expect(postmaster(), 'no second PostgreSQL on the data dir').toBe(atPostgres.postmaster)
      // held before it answers (SIGSTOP to its process group) until the rerun says it waits for it:
      // a rerun that started a second Chroma on the same port and data dir lost this one for good
      process.kill(-chroma, 'SIGSTOP')
      let first: {code: number | null; stdout: string; stderr: string}
      try {
        first = await new Promise((resolve, reject) => {
          const child = spawn('npm', ['run', 'quickstart', '--silent'], {
            cwd: work,
            env: cleanEnv({CI: 'true'}),
            stdio: ['ignore', 'pipe', 'pipe'],
            timeout: 540_000,
            killSignal: 'SIGKILL',
          })
          let stdout = ''
          let stderr = ''
          child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d))
          child.stderr.setEncoding('utf8').on('data', (d: string) => {
            stderr += d
            if (stderr.includes(`waiting for the Chroma server an earlier run started (pid ${chroma})`))
              process.kill(-chroma, 'SIGCONT')
          })
          child.once('error', reject)
          child.once('close', (code) => resolve({code, stdout, stderr}))
        })
      } finally {
        process.kill(-chroma, 'SIGCONT')
      }
      expect(first.code, first.stderr).toBe(0)
      // progress on stderr, the summary on stdout
      expect(first.stderr).toContain('== charge-ops sandbox up')
      expect(first.stderr).toContain('PostgreSQL 15 cluster — already running')
      expect(first.stderr).toMatch(/✓ Chroma — already running/)
      expect(fs.readFileSync(path.join(sandbox, 'run/chroma.pid'), 'utf8').trim()).toBe(String(chroma))
      expect(postmaster()).toBe(atPostgres.postmaster)
      expect(first.stderr).toMatch(/✓ Migrate — 5 migrations applied/)
      expect(first.stdout).toMatch(/sessions analysed {3}5\/5/)
      // the one URL to open: the service serves the built UI
      expect(first.stdout).toMatch(/Open the web UI +http:\/\/127\.0\.0\.1:\d+\/ /)
      const findings = Number(/findings {12}(\d+):/.exec(first.stdout)?.[1])
      expect(findings).toBeGreaterThan(0)
      expect(first.stdout).toContain('→ Battery over-temperature during DC fast charging')
      expect(first.stdout).toContain('export CHARGE_OPS_CONFIG=')

      // the .env holds fresh secrets, private to the user; nothing printed them
      expect(fs.statSync(path.join(sandbox, '.env')).mode & 0o777).toBe(0o600)
      const secretKey = /^SECRET_KEY=(.+)$/m.exec(fs.readFileSync(path.join(sandbox, '.env'), 'utf8'))![1]!
      expect(first.stdout + first.stderr).not.toContain(secretKey)

      // the data really is in PostgreSQL, and the service answers as the docs say
      const env = cleanEnv({CHARGE_OPS_CONFIG: path.join(sandbox, 'charge-ops.yaml')})
      const status = JSON.parse(
        (await run('node', ['bin/run.js', 'service', 'status', '--json'], {cwd: work, env} as never)).stdout,
      )
      expect(status.running).toBe(true)
      expect(status.health.status).toBe('ok')
      const token = (await run('node', ['bin/run.js', 'service', 'token'], {cwd: work, env} as never)).stdout.trim()
      const sessions = (await (
        await fetch(`${status.health.url}/api/v1/sessions`, {headers: {authorization: `Bearer ${token}`}})
      ).json()) as {total: number; sessions: Array<{status: string; findingsCount: number}>}
      expect(sessions.total).toBe(5)
      expect(sessions.sessions.every((s) => s.status === 'done')).toBe(true)
      expect(sessions.sessions.reduce((n, s) => n + s.findingsCount, 0)).toBe(findings)

      // the printed next steps run as printed (charge-ops is not on PATH: they say node -- bin/run.js)
      expect(first.stdout).toContain(
        'node -- bin/run.js backup all && node -- bin/run.js backup verify latest --restore-drill',
      )
      const backup = await runUnchecked('node', ['bin/run.js', 'backup', 'all', '--json'], {cwd: work, env} as never)
      expect(backup.code, backup.stdout + backup.stderr).toBe(0)
      const drill = await runUnchecked(
        'node',
        ['bin/run.js', 'backup', 'verify', 'latest', '--restore-drill', '--json'],
        {cwd: work, env} as never,
      )
      expect(drill.code, drill.stdout + drill.stderr).toBe(0)
      expect(JSON.parse(drill.stdout).restoreDrill).toMatchObject({
        rowCountsMatch: true,
        skippedExtensions: ['pg_stat_statements'],
      })
      // `sandbox env` points a shell at the sandbox, admin URL included, without printing a password;
      // restore db then runs as the superuser and keeps owners and grants
      const envLines = (await run('node', ['bin/run.js', 'sandbox', 'env'], {cwd: work, env} as never)).stdout
      expect(envLines).toContain('CHARGE_OPS_ADMIN_URL="$(cat ')
      expect(envLines).not.toMatch(/postgresql:\/\//)
      const copy = await runUnchecked(
        'bash',
        [
          '-c',
          'eval "$(node bin/run.js sandbox env)" && node bin/run.js restore db latest --target-db qs_copy --yes --json',
        ],
        {cwd: work, env} as never,
      )
      expect(copy.code, copy.stdout + copy.stderr).toBe(0)
      expect(JSON.parse(copy.stdout)).toMatchObject({database: 'qs_copy', mismatches: [], skippedExtensions: []})
      const slow = await runUnchecked('node', ['bin/run.js', 'db', 'slow-queries', '--json'], {cwd: work, env} as never)
      expect(slow.code, slow.stdout + slow.stderr).toBe(0)
      expect(JSON.parse(slow.stdout).queries.length).toBeGreaterThan(0)

      // running it again reuses everything
      const second = await runUnchecked('npm', ['run', 'quickstart', '--silent'], {
        cwd: work,
        env: cleanEnv({CI: 'true'}),
        timeoutMs: 300_000,
      })
      expect(second.code, second.stderr).toBe(0)
      expect(second.stderr).not.toContain('== npm run build')
      expect(second.stderr).toContain('PostgreSQL 15 cluster — already running')
      expect(second.stderr).toContain('5 sessions already uploaded')
      const again = JSON.parse(
        (await run('node', ['bin/run.js', 'service', 'status', '--json'], {cwd: work, env} as never)).stdout,
      )
      expect(again.processes.map((p: {pid: number}) => p.pid)).toEqual(
        status.processes.map((p: {pid: number}) => p.pid),
      )

      // down --purge stops every process and deletes the sandbox
      const pids: number[] = status.processes.map((p: {pid: number}) => p.pid)
      for (const f of ['run/redis.pid', 'run/chroma.pid'])
        pids.push(Number(fs.readFileSync(path.join(sandbox, f), 'utf8').trim()))
      pids.push(postmaster())
      expect(pids).toContain(chroma)
      // a down killed after Chroma stopped: the service and Chroma are gone, Redis and PostgreSQL run
      const killedDown = await runUnchecked('node', ['--', 'bin/run.js', 'sandbox', 'down'], {
        cwd: work,
        env: killEnv('sandbox.down.chroma-stopped'),
      })
      expect(killedDown.signal, killedDown.stderr).toBe('SIGKILL')
      marker('sandbox.down.chroma-stopped')
      for (const pid of [...status.processes.map((p: {pid: number}) => p.pid), chroma])
        expect(pidAlive(pid), `pid ${pid}`).toBe(false)
      expect(pidAlive(postmaster())).toBe(true)
      const down = await run('node', ['bin/run.js', 'sandbox', 'down', '--purge', '--yes'], {cwd: work})
      expect(down.stdout).toContain('stopped: redis, postgres')
      expect(fs.existsSync(sandbox)).toBe(false)
      for (const pid of pids) expect(pidAlive(pid), `pid ${pid}`).toBe(false)
    },
  )
})
