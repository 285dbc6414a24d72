/**
 * Faults, through the built CLI: two backups at once, the S3 server stopped at a kill point
 * mid-upload, the repository out of space, and the database password never in any child's argv.
 * (kill -9 at each step: test/e2e/kill-points.test.ts)
 */
import {spawnSync} from 'node:child_process'
import {existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync} from 'node:fs'
import {tmpdir} from 'node:os'
import {join} from 'node:path'

import {afterAll, beforeAll, describe, expect, it} from 'vitest'

import {dbHash, pauseAt, runCli, sharedPostgres, startCli, startS3} from '../support/index.js'

const pg = sharedPostgres()
let dir: string
let env: Record<string, string>
let password: string

const cli = (args: string[], extra: Record<string, string> = {}) =>
  runCli(args, {env: {...env, ...extra}, timeout: 120_000})

const start = (args: string[], extra: Record<string, string> = {}) => startCli(args, {env: {...env, ...extra}}).child

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'co-backup-e2e-'))
  const url = await pg.createDatabase()
  password = new URL(url).password
  await pg.query(
    `CREATE TABLE samples (id bigserial primary key, v float8, w float8, note text);
     INSERT INTO samples (v, w, note) SELECT random(), random(), md5(random()::text) FROM generate_series(1, 400000);`,
    new URL(url).pathname.slice(1),
  )
  mkdirp(join(dir, 'uploads'))
  for (let i = 0; i < 200; i++) writeFileSync(join(dir, 'uploads', `f${i}.csv`), Buffer.alloc(50_000, i))
  env = {DATABASE_URL: url, UPLOADS_DIR: join(dir, 'uploads'), CHARGE_OPS_STATE_DIR: join(dir, 'state'), NO_COLOR: '1'}
}, 120_000)
afterAll(() => rmSync(dir, {recursive: true, force: true}))

function mkdirp(p: string) {
  spawnSync('mkdir', ['-p', p])
}

describe('backup faults (built CLI)', () => {
  // kill -9 of backup db / files: at named kill points in test/e2e/kill-points.test.ts (the kill
  // lands at the same step every run; the random-moment kills here could not tell where they hit)

  it('two backups at once: one exits 4 naming the holder', async () => {
    const repo = join(dir, 'repo-two')
    // zstd -19 keeps the first backup running for a while (it is stopped once the second ran)
    const slow = join(dir, 'slow.yaml')
    writeFileSync(slow, 'backup:\n  compression:\n    level: 19\n    threads: 1\n')
    const first = start(['backup', 'db', '--repo', repo, '--quiet'], {CHARGE_OPS_CONFIG: slow})
    let second: ReturnType<typeof cli> | undefined
    for (let i = 0; i < 2000 && !second && first.exitCode === null; i++) {
      await new Promise((r) => setTimeout(r, 30))
      if (existsSync(repo) && readdirSync(repo, {recursive: true}).some((p) => String(p).endsWith('backup.lock')))
        second = cli(['backup', 'files', '--repo', repo])
    }
    first.kill('SIGTERM')
    await new Promise((r) => (first.exitCode === null && first.signalCode === null ? first.once('exit', r) : r(null)))
    expect(second?.code).toBe(4)
    expect(second?.stderr).toMatch(/backup db.*pid \d+/)
  }, 120_000)

  it('the password is in no child argv: wrappers record the argv of every pg_dump / pg_restore / zstd / tar', async () => {
    // A shim directory: each wrapper writes its own argv ("$@" and /proc/$$/cmdline) and whether
    // PGPASSWORD is set (never its value) to a record of its own (one file per process: pg_dump and
    // zstd run at once, and their lines interleaved in one shared log), then execs the real binary.
    // pg_dump / pg_restore are found through CHARGE_OPS_PG_BINDIR, zstd and tar through PATH.
    const shim = join(dir, 'shim')
    const logs = join(dir, 'argv')
    mkdirp(shim)
    mkdirp(logs)
    const real: Record<string, string> = {
      pg_dump: '/usr/lib/postgresql/15/bin/pg_dump',
      pg_restore: '/usr/lib/postgresql/15/bin/pg_restore',
      zstd: spawnSync('sh', ['-c', 'command -v zstd'], {encoding: 'utf8'}).stdout.trim(),
      tar: spawnSync('sh', ['-c', 'command -v tar'], {encoding: 'utf8'}).stdout.trim(),
    }
    for (const [name, target] of Object.entries(real)) {
      expect(existsSync(target), `${name} at ${target}`).toBe(true)
      writeFileSync(
        join(shim, name),
        `#!/bin/sh\n{ echo "=== ${name} pid $$"; for a in "$@"; do echo "arg: $a"; done; echo "cmdline: $(tr '\\0' ' ' < /proc/$$/cmdline)"; if [ -n "$PGPASSWORD" ]; then echo "env: PGPASSWORD set"; fi; } > '${logs}/'$$\nexec '${target}' "$@"\n`,
        {mode: 0o755},
      )
    }
    const repo = join(dir, 'repo-argv')
    const shimEnv = {CHARGE_OPS_PG_BINDIR: shim, PATH: `${shim}:${process.env.PATH}`}
    const b = cli(['backup', 'all', '--repo', repo, '--json'], shimEnv)
    expect([0, 1], b.stderr).toContain(b.code) // 1: cross-store findings (no uploads table), still complete
    const target = `argv_${Date.now().toString(36)}`
    const r = cli(['restore', 'db', 'latest', '--repo', repo, '--target-db', target, '--jobs', '2', '--json'], shimEnv)
    expect(r.code, r.stdout + r.stderr).toBe(0)
    const records = readdirSync(logs).map((f) => readFileSync(join(logs, f), 'utf8').replace(/^=== /, ''))
    const text = records.join('\n')
    const of = (name: string) => records.filter((rec) => rec.startsWith(`${name} `))
    // the wrappers really ran: the check below is not vacuous
    expect(of('pg_dump').some((rec) => rec.includes('arg: --snapshot='))).toBe(true)
    expect(of('pg_restore').some((rec) => rec.includes('arg: --jobs=2'))).toBe(true)
    expect(of('zstd').length).toBeGreaterThanOrEqual(2)
    expect(of('tar').length).toBeGreaterThanOrEqual(1)
    const connecting = [...of('pg_dump'), ...of('pg_restore')].filter((rec) => !rec.includes('arg: --version'))
    expect(connecting.length).toBeGreaterThanOrEqual(2)
    for (const rec of connecting) expect(rec).toContain('env: PGPASSWORD set')
    expect(password.length).toBeGreaterThan(8)
    expect(text).not.toContain(password)
    expect(text).not.toContain(encodeURIComponent(password))
    expect(b.stdout + b.stderr + r.stdout + r.stderr).not.toContain(password)
  }, 180_000)

  it('the repository runs out of space (2 MB tmpfs) → exit 5 REPOSITORY_NO_SPACE, nothing listed as complete', async () => {
    const repo = join(dir, 'repo-full')
    mkdirp(repo)
    const mount = spawnSync('mount', ['-t', 'tmpfs', '-o', 'size=2m', 'tmpfs', repo], {encoding: 'utf8'})
    expect(mount.status, `mount -t tmpfs failed (the test needs root): ${mount.stderr}`).toBe(0)
    try {
      const b = cli(['backup', 'db', '--repo', repo, '--json'])
      expect(b.code, b.stdout + b.stderr).toBe(5)
      expect(JSON.parse(b.stdout).error).toMatchObject({code: 'REPOSITORY_NO_SPACE', exitCode: 5})
      const list = cli(['backup', 'list', '--repo', repo, '--all', '--json'])
      expect(list.code).toBe(0)
      expect(JSON.parse(list.stdout).backups).toEqual([])
      // the failed run deleted its part: the space is free again
      const df = spawnSync('df', ['-B1', '--output=used', repo], {encoding: 'utf8'}).stdout.trim().split('\n').pop()
      expect(Number(df)).toBeLessThan(200_000)
    } finally {
      const umount = spawnSync('umount', [repo], {encoding: 'utf8'})
      expect(umount.status, umount.stderr).toBe(0)
    }
  }, 120_000)

  it('the S3 server stopped at a kill point mid-upload (repository.s3.multipart-started) → exit 5, nothing listed, the lock names the failed run; with S3 back the rerun succeeds and restores identical', async () => {
    // the server's storage outlives the server: the same bucket is served again after the crash
    const store = mkdtempSync(join(dir, 's3-store-'))
    let s3 = await startS3({process: true, dir: store})
    const faults = mkdtempSync(join(dir, 'faults-'))
    try {
      const repo = `s3://${s3.bucket}/charge`
      const point = 'repository.s3.multipart-started'
      const paused = pauseAt(point, ['backup', 'db', '--repo', repo, '--json'], {
        env: {...env, ...s3.env},
        faultDir: faults,
      })
      // paused with the multipart upload under way: the server dies now, not after some guessed time
      const marker = await paused.reached(120_000)
      expect(marker.uploadId, 'paused inside a multipart upload').toBeTruthy()
      await s3.kill('SIGKILL')
      paused.resume()
      const {code, stdout} = await paused.exited
      expect(code).toBe(5)
      expect(JSON.parse(stdout).error.message).toMatch(/S3/)
      expect(JSON.parse(stdout).error.message).not.toContain(password)

      // S3 back (same storage, a new port): nothing listed, no object under the part's key, the
      // lock the failed run could not delete names it
      await s3.stop()
      s3 = await startS3({process: true, dir: store})
      const list = cli(['backup', 'list', '--repo', repo, '--all', '--json'], s3.env)
      expect(list.code, list.stderr).toBe(0)
      expect(JSON.parse(list.stdout).backups).toEqual([])
      expect(await s3.readObject(marker.key)).toBeUndefined()
      expect(JSON.parse((await s3.readObject('charge/charge-analysis/locks/backup.lock'))!)).toMatchObject({
        pid: marker.pid,
        command: 'backup db',
      })

      const rerun = cli(['backup', 'db', '--repo', repo, '--json'], s3.env)
      expect(rerun.code, rerun.stderr).toBe(0)
      const target = `s3down_${Date.now().toString(36)}`
      const restored = cli(
        ['restore', 'db', JSON.parse(rerun.stdout).id, '--repo', repo, '--target-db', target, '--json'],
        s3.env,
      )
      expect(restored.code, restored.stderr).toBe(0)
      expect(await dbHash(pg, target)).toBe(await dbHash(pg, new URL(env.DATABASE_URL).pathname.slice(1)))
    } finally {
      await s3.stop()
      rmSync(store, {recursive: true, force: true})
    }
  }, 300_000)

  it('S3 round trip: backup db, list, verify', async () => {
    // a separate process: spawnSync blocks this one, an in-process server could not answer
    const s3 = await startS3({process: true})
    try {
      const repo = `s3://${s3.bucket}/charge`
      const b = cli(['backup', 'db', '--repo', repo, '--json'], s3.env)
      expect(b.code, b.stdout + b.stderr).toBe(0)
      const v = cli(['backup', 'verify', 'latest', '--repo', repo, '--json'], s3.env)
      expect(v.code, v.stdout).toBe(0)
      expect(JSON.parse(v.stdout).ok).toBe(true)
      const again = cli(['backup', 'db', '--repo', repo, '--json'], s3.env)
      expect(again.code).toBe(0)
      expect(JSON.parse(cli(['backup', 'list', '--repo', repo, '--json'], s3.env).stdout).backups).toHaveLength(2)
    } finally {
      await s3.stop()
    }
  }, 120_000)
})
