/**
 * An operator's bad night, through the built CLI (issue 14, items 5 and 6): bad input is a clear
 * error with its documented exit code — never 70 "this is a bug" — and a restore drill of a backup
 * that prune deletes meanwhile is not reported as verified.
 */
import {existsSync, mkdtempSync, rmSync, truncateSync, writeFileSync} from 'node:fs'
import {tmpdir} from 'node:os'
import {join} from 'node:path'

import {afterAll, beforeAll, describe, expect, it} from 'vitest'

import {pauseAt, runCli, sharedPostgres} from '../support/index.js'

const pg = sharedPostgres()
let dir: string
let env: Record<string, string>
let password: string

/** Runs bin/run.js as the installed `charge-ops` runs: through its shebang, not `node bin/run.js`. */
const cli = (args: string[], extra: Record<string, string> = {}) =>
  runCli(args, {env: {...env, ...extra}, shebang: true, timeout: 120_000})

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'co-mistakes-'))
  const url = await pg.createDatabase()
  password = new URL(url).password
  await pg.query(
    `CREATE TABLE t (id int primary key, v text); INSERT INTO t SELECT g, md5(g::text) FROM generate_series(1, 2000) g;`,
    new URL(url).pathname.slice(1),
  )
  env = {DATABASE_URL: url, CHARGE_OPS_STATE_DIR: join(dir, 'state'), NO_COLOR: '1', CHARGE_OPS_FAULT_DIR: dir}
}, 120_000)
afterAll(() => rmSync(dir, {recursive: true, force: true}))

function expectClean(r: ReturnType<typeof cli>, code: number, errorCode: string) {
  expect(r.code, r.out).toBe(code)
  expect(JSON.parse(r.stdout).error.code).toBe(errorCode)
  expect(r.out).not.toMatch(/this is a bug|\n\s+at /)
  expect(r.out).not.toContain(password)
}

describe('bad input is never exit 70', () => {
  it('--repo naming a file: exit 2 REPOSITORY_NOT_DIRECTORY for backup list and backup db', () => {
    const file = join(dir, 'not-a-dir')
    writeFileSync(file, 'x')
    expectClean(cli(['backup', 'list', '--repo', file, '--json']), 2, 'REPOSITORY_NOT_DIRECTORY')
    expectClean(cli(['backup', 'db', '--repo', file, '--json']), 2, 'REPOSITORY_NOT_DIRECTORY')
  })

  it('a malformed percent-escape in DATABASE_URL: exit 2 before any backup id is announced, the password not shown', () => {
    const bad = env.DATABASE_URL.replace(`:${password}@`, `:${password}%zz@`)
    const r = cli(['backup', 'db', '--repo', join(dir, 'repo-url'), '--json'], {DATABASE_URL: bad})
    expectClean(r, 2, 'DATABASE_URL_INVALID')
    expect(r.stderr).not.toMatch(/backup \d{8}T/)
    expect(r.out).not.toContain(`${password}%zz`)
  })

  it("--env-file is charge-ops' flag, not Node's: a missing file is charge-ops' exit 2, a present one is read by charge-ops", () => {
    const missing = cli([
      'backup',
      'list',
      '--repo',
      join(dir, 'repo-env'),
      '--env-file',
      join(dir, 'nonexistent', '.env'),
      '--json',
    ])
    expect(missing.out).not.toContain('node:')
    expect(missing.code, missing.out).toBe(2)
    expect(missing.out).not.toMatch(/this is a bug/)
    // a real file: its CHARGE_OPS_* are charge-ops' settings (the repository comes from it)
    const envFile = join(dir, 'backend.env')
    writeFileSync(envFile, `DATABASE_URL=${env.DATABASE_URL}\n`, {mode: 0o600})
    const ok = cli(['backup', 'list', '--repo', join(dir, 'repo-env'), '--env-file', envFile, '--json'], {
      DATABASE_URL: '',
    })
    expect(ok.code, ok.out).toBe(0)
  })

  it('a truncated manifest: exit 1 MANIFEST_INVALID with a hint, no stack trace', () => {
    const repo = join(dir, 'repo-trunc')
    const b = cli(['backup', 'db', '--repo', repo, '--json'])
    expect(b.code, b.out).toBe(0)
    const id = JSON.parse(b.stdout).id
    truncateSync(join(repo, 'charge-analysis', 'backups', id, 'manifest.json'), 40)
    const show = cli(['backup', 'show', id, '--repo', repo, '--json'])
    expectClean(show, 1, 'MANIFEST_INVALID')
    expect(JSON.parse(show.stdout).error.hint).toMatch(/Restore another one/)
  })
})

describe('a restore drill of a backup deleted meanwhile', () => {
  it('prune deletes the backup while the drill runs: exit 1 BACKUP_DELETED, not "verified"', async () => {
    const repo = join(dir, 'repo-drill')
    const first = cli(['backup', 'db', '--repo', repo, '--json'])
    expect(first.code, first.out).toBe(0)
    const old = JSON.parse(first.stdout).id
    expect(cli(['backup', 'db', '--repo', repo, '--json']).code).toBe(0)
    // the drill stops at the named point, after the scratch restore and before it records the result
    const drill = pauseAt(
      'backup.verify.before-record',
      ['backup', 'verify', old, '--restore-drill', '--repo', repo, '--json'],
      {env, shebang: true, faultDir: dir},
    )
    await drill.reached(60_000)
    const prune = cli([
      'backup',
      'prune',
      '--repo',
      repo,
      '--keep-last',
      '1',
      '--keep-days',
      '0',
      '--daily',
      '0',
      '--weekly',
      '0',
      '--monthly',
      '0',
      '--yes',
      '--json',
    ])
    expect(prune.code, prune.out).toBe(0)
    expect(JSON.parse(prune.stdout).deleted.map((d: {id: string}) => d.id)).toEqual([old])
    drill.resume()
    const {code, stdout} = await drill.exited
    expect(code).toBe(1)
    expect(JSON.parse(stdout).error.code).toBe('BACKUP_DELETED')
    // and nothing resurrected the deleted backup's manifest
    expect(existsSync(join(repo, 'charge-analysis', 'backups', old, 'manifest.json'))).toBe(false)
  }, 180_000)
})
