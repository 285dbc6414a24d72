/**
 * restore db / restore files through the built CLI: exit codes of the refusals (nothing changed)
 * (kill -9 at each step: test/e2e/kill-points.test.ts).
 */
import {existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync} from 'node:fs'
import {tmpdir} from 'node:os'
import {join} from 'node:path'

import {afterAll, beforeAll, describe, expect, it} from 'vitest'

import {dbHash, runCli, sharedPostgres} from '../support/index.js'

const pg = sharedPostgres()
let dir: string
let env: Record<string, string>
let live: string
let repo: string

const cli = (args: string[], extra: Record<string, string> = {}) => runCli(args, {env: {...env, ...extra}})

const POPULATE = `CREATE TABLE samples (id bigserial PRIMARY KEY, session int, v float8, note text);
  INSERT INTO samples (session, v, note) SELECT g % 300, random(), md5(g::text) FROM generate_series(1, 300000) g;
  CREATE INDEX samples_session ON samples (session);
  CREATE TABLE sessions AS SELECT g AS id, 'session ' || g AS name FROM generate_series(1, 300) g;`

const dbHashOf = (db: string) => dbHash(pg, db)

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
  env = {
    UPLOADS_DIR: join(dir, 'uploads'),
    CHARGE_OPS_STATE_DIR: join(dir, 'state'),
    CHARGE_OPS_STAGING_DIR: join(dir, 'staging'),
    NO_COLOR: '1',
  }
  mkdirSync(join(dir, 'staging'))
  const b = cli(['backup', 'db', '--repo', repo, '--json'], {DATABASE_URL: sourceUrl})
  expect(b.code, b.stderr).toBe(0)
  const f = cli(['backup', 'files', '--repo', repo, '--json'], {DATABASE_URL: sourceUrl})
  expect(f.code, f.stderr).toBe(0)
  env.DATABASE_URL = liveUrl
}, 180_000)

afterAll(() => rmSync(dir, {recursive: true, force: true}))

describe('restore db (built CLI)', () => {
  it('a non-empty live database is refused without --clean, and without --yes: exit 2, nothing changed', async () => {
    const before = await dbHashOf(live)
    const plain = cli(['restore', 'db', 'latest', '--repo', repo])
    expect(plain.code).toBe(2)
    expect(plain.stderr).toMatch(/not empty.*nothing was restored/)
    expect(plain.stderr).toMatch(/--clean --yes/)
    const noYes = cli(['restore', 'db', 'latest', '--repo', repo, '--clean', '--json'])
    expect(noYes.code).toBe(2)
    expect(JSON.parse(noYes.stdout).error.code).toBe('CONFIRMATION_REQUIRED')
    expect(await dbHashOf(live)).toBe(before)
    expect(existsSync(join(dir, 'state', 'maintenance'))).toBe(false)
  })

  // kill -9 at each step of restore db (pg_restore running, before / after the swap): at named
  // kill points in test/e2e/kill-points.test.ts, asserting the state each one leaves
})

describe('restore files (built CLI)', () => {
  // kill -9 at each step of restore files: test/e2e/kill-points.test.ts

  it('no --yes without a terminal: exit 2, nothing touched', () => {
    const r = cli(['restore', 'files', 'latest', '--repo', repo])
    expect(r.code).toBe(2)
    expect(r.stderr).toMatch(/--yes/)
  })
})
