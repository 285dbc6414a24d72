/**
 * restore db / restore files through the built CLI: exit codes of the refusals (nothing changed),
 * kill -9 at random moments (the live database is always the old or the restored one, never half),
 * and the rerun that finishes the job and leaves nothing behind.
 */
import {spawn, spawnSync} from 'node:child_process'
import {createHash} from 'node:crypto'
import {existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync} from 'node:fs'
import {tmpdir} from 'node:os'
import {dirname, join, relative} from 'node:path'

import {afterAll, beforeAll, describe, expect, it} from 'vitest'

import {sharedPostgres} from '../support/index.js'

const BIN = join(process.cwd(), 'bin', 'run.js')
const pg = sharedPostgres()
let dir: string
let env: Record<string, string>
let live: string
let repo: string
let backupHash: string

function cli(args: string[], extra: Record<string, string> = {}) {
  const r = spawnSync(process.execPath, [BIN, ...args], {env: {...process.env, ...env, ...extra}, encoding: 'utf8', timeout: 180_000})
  return {code: r.status, stdout: r.stdout, stderr: r.stderr}
}

function start(args: string[]) {
  return spawn(process.execPath, [BIN, ...args], {env: {...process.env, ...env}, stdio: ['ignore', 'ignore', 'ignore']})
}

/** One hash over every row of every user table. */
async function dbHash(db: string): Promise<string> {
  const tables = await pg.query<{t: string}>(`SELECT format('%I.%I', schemaname, tablename) AS t FROM pg_tables WHERE schemaname NOT IN ('pg_catalog', 'information_schema') ORDER BY 1`, db)
  const parts: string[] = []
  for (const {t} of tables) {
    const [row] = await pg.query<{h: string}>(`SELECT md5(coalesce(string_agg(x::text, '|' ORDER BY x::text), '')) AS h FROM ${t} x`, db)
    parts.push(`${t}=${row.h}`)
  }
  return parts.join(',')
}

function treeHash(base: string): string {
  const out: string[] = []
  const walk = (d: string) => {
    for (const e of readdirSync(d, {withFileTypes: true}).sort((a, b) => (a.name < b.name ? -1 : 1))) {
      const full = join(d, e.name)
      if (e.isDirectory()) walk(full)
      else out.push(`${relative(base, full)}:${createHash('sha256').update(readFileSync(full)).digest('hex')}`)
    }
  }
  walk(base)
  return out.join('\n')
}

const POPULATE = `CREATE TABLE samples (id bigserial PRIMARY KEY, session int, v float8, note text);
  INSERT INTO samples (session, v, note) SELECT g % 300, random(), md5(g::text) FROM generate_series(1, 300000) g;
  CREATE INDEX samples_session ON samples (session);
  CREATE TABLE sessions AS SELECT g AS id, 'session ' || g AS name FROM generate_series(1, 300) g;`

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'co-restore-e2e-'))
  repo = join(dir, 'repo')
  const sourceUrl = await pg.createDatabase()
  const source = new URL(sourceUrl).pathname.slice(1)
  await pg.query(POPULATE, source)
  const liveUrl = await pg.createDatabase()
  live = new URL(liveUrl).pathname.slice(1)
  await pg.query(`CREATE TABLE current_data (id int); INSERT INTO current_data SELECT generate_series(1, 1000);`, live)
  mkdirSync(join(dir, 'uploads', 'a'), {recursive: true})
  for (let i = 0; i < 150; i++) writeFileSync(join(dir, 'uploads', 'a', `f${i}.csv`), Buffer.alloc(60_000, i))
  env = {UPLOADS_DIR: join(dir, 'uploads'), CHARGE_OPS_STATE_DIR: join(dir, 'state'), CHARGE_OPS_STAGING_DIR: join(dir, 'staging'), NO_COLOR: '1'}
  mkdirSync(join(dir, 'staging'))
  const b = cli(['backup', 'db', '--repo', repo, '--json'], {DATABASE_URL: sourceUrl})
  expect(b.code, b.stderr).toBe(0)
  const f = cli(['backup', 'files', '--repo', repo, '--json'], {DATABASE_URL: sourceUrl})
  expect(f.code, f.stderr).toBe(0)
  backupHash = await dbHash(source)
  env.DATABASE_URL = liveUrl
}, 180_000)

afterAll(() => rmSync(dir, {recursive: true, force: true}))

describe('restore db (built CLI)', () => {
  it('a non-empty live database is refused without --clean, and without --yes: exit 2, nothing changed', async () => {
    const before = await dbHash(live)
    const plain = cli(['restore', 'db', 'latest', '--repo', repo])
    expect(plain.code).toBe(2)
    expect(plain.stderr).toMatch(/not empty.*nothing was restored/)
    expect(plain.stderr).toMatch(/--clean --yes/)
    const noYes = cli(['restore', 'db', 'latest', '--repo', repo, '--clean', '--json'])
    expect(noYes.code).toBe(2)
    expect(JSON.parse(noYes.stdout).error.code).toBe('CONFIRMATION_REQUIRED')
    expect(await dbHash(live)).toBe(before)
    expect(existsSync(join(dir, 'state', 'maintenance'))).toBe(false)
  })

  it('kill -9 at random moments: the live database is always the old or the restored one; the rerun finishes and leaves nothing', async () => {
    const oldHash = await dbHash(live)
    const seen = new Set<string>()
    for (let trial = 0; trial < 6; trial++) {
      const child = start(['restore', 'db', 'latest', '--repo', repo, '--clean', '--yes', '--jobs', '2', '--quiet'])
      // spread over the whole run: start-up, checks, pg_restore, the swap, after the end
      await new Promise((r) => setTimeout(r, 500 + trial * 1300 + Math.floor(Math.random() * 800)))
      child.kill('SIGKILL')
      await new Promise((r) => (child.exitCode === null && child.signalCode === null ? child.once('exit', r) : r(null)))
      const h = await dbHash(live)
      expect([oldHash, backupHash]).toContain(h)
      seen.add(h === oldHash ? 'old' : 'restored')
    }
    const rerun = cli(['restore', 'db', 'latest', '--repo', repo, '--clean', '--yes', '--json'])
    expect(rerun.code, rerun.stdout + rerun.stderr).toBe(0)
    const result = JSON.parse(rerun.stdout)
    expect(result).toMatchObject({database: live, live: true, replaced: true, mismatches: []})
    expect(await dbHash(live)).toBe(backupHash)
    const names = (await pg.query<{d: string}>(`SELECT datname AS d FROM pg_database`)).map((r) => r.d).filter((d) => d.startsWith(live))
    expect(names).toEqual([live])
    // maintenance left on by a killed run was ours: switched off by the rerun
    expect(existsSync(join(dir, 'state', 'maintenance'))).toBe(false)
    expect(readdirSync(join(dir, 'staging'))).toEqual([])
    console.log(`restore db kill trials saw: ${[...seen].join(', ')}`)
  }, 300_000)
})

describe('restore files (built CLI)', () => {
  it('kill -9 at random moments, then a rerun: every file identical to the backup, nothing left beside the folder', async () => {
    const uploads = join(dir, 'uploads')
    const atBackup = treeHash(uploads)
    rmSync(join(uploads, 'a', 'f7.csv'))
    writeFileSync(join(uploads, 'a', 'f8.csv'), 'changed')
    for (let trial = 0; trial < 6; trial++) {
      const child = start(['restore', 'files', 'latest', '--repo', repo, '--yes', '--quiet'])
      await new Promise((r) => setTimeout(r, 300 + Math.floor(Math.random() * 1200)))
      child.kill('SIGKILL')
      await new Promise((r) => (child.exitCode === null && child.signalCode === null ? child.once('exit', r) : r(null)))
    }
    const rerun = cli(['restore', 'files', 'latest', '--repo', repo, '--yes', '--json'])
    expect(rerun.code, rerun.stdout + rerun.stderr).toBe(0)
    expect(treeHash(uploads)).toBe(atBackup)
    expect(readdirSync(dirname(uploads)).filter((n) => n.includes('.restore-') || n.includes('.old-'))).toEqual([])
    expect(existsSync(join(dir, 'state', 'restore-files.json'))).toBe(false)
    expect(existsSync(join(dir, 'state', 'restore-files.lock'))).toBe(false)
    expect(existsSync(join(dir, 'state', 'maintenance'))).toBe(false)
  }, 300_000)

  it('no --yes without a terminal: exit 2, nothing touched', () => {
    const r = cli(['restore', 'files', 'latest', '--repo', repo])
    expect(r.code).toBe(2)
    expect(r.stderr).toMatch(/--yes/)
  })
})
