/**
 * The built CLI (`npm run build` first): exit codes, --json shapes, stderr vs stdout, no password
 * in any output, and two real processes competing for the migration lock.
 */
import {spawn} from 'node:child_process'
import {mkdtempSync, rmSync, writeFileSync} from 'node:fs'
import {tmpdir} from 'node:os'
import {join} from 'node:path'

import pg from 'pg'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'

import {sharedPostgres, waitUntil} from '../support/index.js'

interface Result {
  code: number | null
  stdout: string
  stderr: string
}

const BIN = join(process.cwd(), 'bin/run.js')

function cli(args: string[], env: Record<string, string> = {}, cwd = process.cwd()): Promise<Result> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [BIN, ...args], {env: {PATH: process.env.PATH, HOME: process.env.HOME, CI: 'true', ...env}, cwd})
    let stdout = ''
    let stderr = ''
    child.stdout.on('data', (d) => (stdout += d))
    child.stderr.on('data', (d) => (stderr += d))
    child.on('error', reject)
    child.on('close', (code) => resolve({code, stdout, stderr}))
  })
}

/** A CLI run whose stderr can be watched while it runs. */
function cliLive(args: string[], env: Record<string, string> = {}): {result: Promise<Result>; stderr: () => string} {
  let stderr = ''
  const result = new Promise<Result>((resolve, reject) => {
    const child = spawn(process.execPath, [BIN, ...args], {env: {PATH: process.env.PATH, HOME: process.env.HOME, CI: 'true', ...env}})
    let stdout = ''
    child.stdout.on('data', (d) => (stdout += d))
    child.stderr.on('data', (d) => (stderr += d))
    child.on('error', reject)
    child.on('close', (code) => resolve({code, stdout, stderr}))
  })
  return {result, stderr: () => stderr}
}

let dir: string
let url: string
let password: string

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'charge-ops-migrate-e2e-'))
  writeFileSync(join(dir, '0001_sessions.sql'), '-- charge-ops:up\nCREATE TABLE sessions (id bigint PRIMARY KEY);\n-- charge-ops:down\nDROP TABLE sessions;\n')
  // 0002 waits on a gate (an advisory lock) the concurrency test holds: the first run keeps the
  // migration lock exactly as long as the test wants, however slowly the other CLIs start
  writeFileSync(join(dir, '0002_slow.sql'), '-- charge-ops:lock-timeout 120s\n-- charge-ops:up\nCREATE TABLE slow (id int);\nSELECT pg_advisory_xact_lock(4242);\n-- charge-ops:down\nDROP TABLE slow;\n')
  url = await sharedPostgres().createDatabase()
  password = sharedPostgres().password
})
afterAll(() => rmSync(dir, {recursive: true, force: true}))

describe('charge-ops migrate (built CLI)', () => {
  it('status --exit-code exits 3 while migrations are pending, with a JSON error', async () => {
    const r = await cli(['migrate', 'status', '--exit-code', '--json', '--dir', dir], {MIGRATION_DATABASE_URL: url})
    expect(r.code).toBe(3)
    const body = JSON.parse(r.stdout)
    expect(body.error).toMatchObject({code: 'MIGRATIONS_PENDING', exitCode: 3})
    expect(body.error.data.pending).toBe(2)
    expect(r.stdout + r.stderr).not.toContain(password)
  })

  it('--dry-run prints the plan and SQL and changes nothing', async () => {
    const r = await cli(['migrate', 'up', '--dry-run', '--dir', dir, '--database-url', url])
    expect(r.code, r.stderr + r.stdout).toBe(0)
    expect(r.stdout).toContain('dry run: would apply 2 migrations')
    expect(r.stdout).toContain('CREATE TABLE sessions (id bigint PRIMARY KEY);')
    const rows = await sharedPostgres().query(`SELECT to_regclass('charge_ops_migrations') AS t`, new URL(url).pathname.slice(1))
    expect(rows).toEqual([{t: null}])
  })

  it('two processes at once: one applies, one without --lock-wait exits 4 naming the holder, one with --lock-wait waits and finds nothing to do', async () => {
    const env = {MIGRATION_DATABASE_URL: url}
    const db = new URL(url).pathname.slice(1)
    const gate = new pg.Client({connectionString: url})
    await gate.connect()
    let first: Promise<Result> | undefined
    let second: Result
    let third: Result
    try {
      await gate.query('SELECT pg_advisory_lock(4242)')
      first = cli(['migrate', 'up', '--dir', dir, '--json'], env)
      // the first run holds the migration lock once it waits at the gate
      await waitUntil(async () => (await sharedPostgres().query<{n: string}>(`SELECT count(*) AS n FROM pg_stat_activity WHERE datname = $1 AND wait_event_type = 'Lock' AND query LIKE '%pg_advisory_xact_lock(4242)%'`, 'postgres', [db]))[0]!.n !== '0', {timeoutMs: 30_000, intervalMs: 20, what: 'the first migrate up to wait at the gate'})
      second = await cli(['migrate', 'up', '--dir', dir], env)
      // without --json: its "waiting for the migration lock" line on stderr says it really waited
      const waiting = cliLive(['migrate', 'up', '--dir', dir, '--lock-wait', '60s'], env)
      await waitUntil(async () => /waiting for the migration lock held by pid \d+/.test(waiting.stderr()), {timeoutMs: 30_000, what: 'the --lock-wait run to wait for the lock'})
      await gate.query('SELECT pg_advisory_unlock(4242)')
      third = await waiting.result
    } finally {
      await gate.end()
    }
    const one = await first
    expect(one.code).toBe(0)
    expect(JSON.parse(one.stdout).applied.map((a: {version: string}) => a.version)).toEqual(['0001', '0002'])
    expect(second.code).toBe(4)
    expect(second.stderr).toMatch(/another migration run holds the migration lock: pid \d+ \(charge-ops migrate/)
    expect(second.stderr).toContain('--lock-wait')
    expect(second.stdout).toBe('')
    expect(third.code).toBe(0)
    expect(third.stdout.trim()).toBe('up to date (at 0002)')
    const rows = await sharedPostgres().query(`SELECT version FROM charge_ops_migrations ORDER BY 1`, new URL(url).pathname.slice(1))
    expect(rows).toEqual([{version: '0001'}, {version: '0002'}])
  }, 150_000)

  it('status, current and history report the applied state; status --exit-code now exits 0', async () => {
    const status = await cli(['migrate', 'status', '--exit-code', '--dir', dir, '--database-url', url])
    expect(status.code).toBe(0)
    expect(status.stdout).toMatch(/0002\s+slow\s+applied/)
    const current = await cli(['migrate', 'current', '--json', '--dir', dir, '--database-url', url])
    expect(JSON.parse(current.stdout)).toEqual({current: '0002', name: 'slow', pending: 0})
    const history = await cli(['migrate', 'history', '--json', '--database-url', url])
    expect(JSON.parse(history.stdout).migrations.map((m: {version: string; success: boolean}) => [m.version, m.success])).toEqual([['0001', true], ['0002', true]])
  })

  it('down needs --yes when not interactive (exit 2), then reverts one step', async () => {
    const refused = await cli(['migrate', 'down', '--dir', dir, '--database-url', url])
    expect(refused.code).toBe(2)
    expect(refused.stderr).toContain('--yes')
    const done = await cli(['migrate', 'down', '--yes', '--json', '--dir', dir, '--database-url', url])
    expect(done.code).toBe(0)
    expect(JSON.parse(done.stdout)).toMatchObject({direction: 'down', current: '0001', applied: [{version: '0002'}]})
  })

  it('validate exits 1 on an edited applied migration and explains the fix', async () => {
    writeFileSync(join(dir, '0001_sessions.sql'), '-- charge-ops:up\nCREATE TABLE sessions (id bigint PRIMARY KEY, extra text);\n-- charge-ops:down\nDROP TABLE sessions;\n')
    const r = await cli(['migrate', 'validate', '--json', '--dir', dir, '--database-url', url])
    expect(r.code).toBe(1)
    expect(JSON.parse(r.stdout).problems).toEqual([expect.objectContaining({kind: 'changed', version: '0001'})])
    const up = await cli(['migrate', 'up', '--dir', dir, '--database-url', url])
    expect(up.code).toBe(3)
    expect(up.stderr).toContain('was edited after it was applied')
    expect(up.stderr).not.toContain('    at ') // no stack without --verbose
  })

  it('create numbers the next file; lint exits 1 on errors with JSON findings', async () => {
    const created = await cli(['migrate', 'create', 'Add sessions index', '--no-transaction', '--dir', dir, '--json'])
    expect(JSON.parse(created.stdout)).toMatchObject({version: '0003', name: 'add_sessions_index'})
    const lint = await cli(['migrate', 'lint', '--json', '--dir', 'test/fixtures/migrations/lint'])
    expect(lint.code).toBe(1)
    expect(JSON.parse(lint.stdout)).toMatchObject({errors: 5, warnings: 1})
  })

  it('a missing database URL is a usage error with a hint', async () => {
    // run from an empty directory: no charge-ops.yaml, no .env, no DATABASE_URL
    const r = await cli(['migrate', 'status', '--dir', dir], {}, dir)
    expect(r.code).toBe(2)
    expect(r.stderr).toContain('the database URL is not configured')
    expect(r.stderr).toContain('--database-url')
  })
})
