/**
 * restore db against real PostgreSQL: round trip (row hashes per table identical), refusal of a
 * non-empty target with nothing changed, a newer migration head refused without --force, a flipped
 * byte refused before anything is touched, the live database replaced under maintenance mode.
 */
import {existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync} from 'node:fs'
import {cpus, tmpdir} from 'node:os'
import {join} from 'node:path'

import {afterAll, beforeAll, describe, expect, it} from 'vitest'

import {openBackupContext} from '../../src/backup/context.js'
import {backupDatabase} from '../../src/backup/db.js'
import {loadSettings} from '../../src/config/settings.js'
import {silentLogger} from '../../src/output/logger.js'
import type {BackupManifest} from '../../src/repository/manifest.js'
import {partKey} from '../../src/repository/manifest.js'
import {restoreDatabase, type RestoreDbOptions} from '../../src/restore/logical-db.js'
import {sharedPostgres} from '../support/index.js'

const pg = sharedPostgres()
const MIGRATIONS = join(process.cwd(), 'test', 'fixtures', 'migrations', 'basic') // head 0003
let dir: string
let sourceUrl: string
let source: string
let manifest: BackupManifest

const dbName = (url: string) => new URL(url).pathname.slice(1)

/** md5 of every row of every user table, per table (the manifest's row counts are not enough). */
async function tableHashes(db: string): Promise<Record<string, string>> {
  const tables = await pg.query<{t: string}>(
    `SELECT format('%I.%I', schemaname, tablename) AS t FROM pg_tables WHERE schemaname NOT IN ('pg_catalog', 'information_schema') ORDER BY 1`,
    db,
  )
  const out: Record<string, string> = {}
  for (const {t} of tables) {
    const [row] = await pg.query<{h: string; n: number}>(
      `SELECT md5(coalesce(string_agg(x::text, '|' ORDER BY x::text), '')) AS h, count(*)::int AS n FROM ${t} x`,
      db,
    )
    out[t] = `${row.n}:${row.h}`
  }
  return out
}

/** The databases of the shared cluster whose names start with `prefix` (other test files run beside this one). */
async function databases(prefix = ''): Promise<string[]> {
  return (await pg.query<{d: string}>(`SELECT datname AS d FROM pg_database ORDER BY 1`))
    .map((r) => r.d)
    .filter((d) => d.startsWith(prefix))
}

function settingsFor(repo: string, liveUrl: string) {
  return loadSettings({
    cwd: dir,
    env: {DATABASE_URL: liveUrl, CHARGE_OPS_REPO: repo, CHARGE_OPS_STATE_DIR: join(dir, 'state')},
  })
}

async function backupOf(url: string, repo: string): Promise<BackupManifest> {
  const ctx = await openBackupContext({settings: settingsFor(repo, url), logger: silentLogger})
  return backupDatabase(ctx)
}

async function restore(repo: string, liveUrl: string, extra: Partial<RestoreDbOptions> = {}) {
  const settings = settingsFor(repo, liveUrl)
  const ctx = await openBackupContext({settings, logger: silentLogger})
  return restoreDatabase({
    settings,
    storage: ctx.storage,
    stack: ctx.stack,
    ref: 'latest',
    migrationsDir: MIGRATIONS,
    logger: silentLogger,
    confirm: async () => {},
    ...extra,
  })
}

const SCHEMA = `
  CREATE SCHEMA audit;
  CREATE TABLE sessions (id serial PRIMARY KEY, name text, started timestamptz DEFAULT now());
  CREATE TABLE samples (session_id int REFERENCES sessions(id), t int, voltage_v float8, note text);
  CREATE INDEX samples_session ON samples (session_id);
  CREATE TABLE audit.events (id bigserial PRIMARY KEY, payload jsonb);
  CREATE VIEW session_sizes AS SELECT session_id, count(*) FROM samples GROUP BY 1;
  INSERT INTO sessions (name) SELECT 'session ' || g FROM generate_series(1, 40) g;
  INSERT INTO samples SELECT 1 + (g % 40), g, 300 + random() * 100, CASE WHEN g % 9 = 0 THEN E'quote\\'s "x" \\\\ tab\\t' END FROM generate_series(1, 30000) g;
  INSERT INTO audit.events (payload) SELECT jsonb_build_object('n', g) FROM generate_series(1, 250) g;
  CREATE TABLE charge_ops_migrations (version text PRIMARY KEY, name text, success boolean);
  INSERT INTO charge_ops_migrations VALUES ('0001', 'a', true), ('0002', 'b', true), ('0003', 'c', true);`

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'co-restore-db-'))
  sourceUrl = await pg.createDatabase()
  source = dbName(sourceUrl)
  await pg.query(SCHEMA, source)
  manifest = await backupOf(sourceUrl, join(dir, 'repo'))
})

afterAll(() => rmSync(dir, {recursive: true, force: true}))

describe('restore db', () => {
  it('round trip into a new database (--target-db): every table identical, no scratch database left', async () => {
    const target = `rt_${Date.now().toString(36)}`
    const result = await restore(join(dir, 'repo'), sourceUrl, {targetDb: target, jobs: 1})
    expect(result).toMatchObject({
      id: manifest.id,
      database: target,
      live: false,
      replaced: false,
      mismatches: [],
      maintenance: 'not needed',
    })
    expect(result.rowCounts['public.samples']).toBe(30000)
    expect(await tableHashes(target)).toEqual(await tableHashes(source))
    const names = await databases()
    expect(names.filter((n) => n.startsWith(target))).toEqual([target])
    // the view and the index came back too
    expect(await pg.query(`SELECT count(*)::int AS n FROM session_sizes`, target)).toEqual([{n: 40}])
    expect(await pg.query(`SELECT indexname FROM pg_indexes WHERE indexname = 'samples_session'`, target)).toHaveLength(
      1,
    )
  })

  it('a role that is not a member of the owners is refused with the fix (exit 2), nothing left behind', async () => {
    const ownedUrl = await pg.createDatabase()
    const owned = dbName(ownedUrl)
    await pg.query(
      `DROP ROLE IF EXISTS rs_owner; DROP ROLE IF EXISTS rs_restorer; CREATE ROLE rs_owner; CREATE ROLE rs_restorer LOGIN PASSWORD 'rs-pw' CREATEDB`,
    )
    await pg.query(
      `CREATE TABLE t (id int) ; ALTER TABLE t OWNER TO rs_owner; ALTER DEFAULT PRIVILEGES FOR ROLE rs_owner IN SCHEMA public GRANT SELECT ON TABLES TO PUBLIC; INSERT INTO t VALUES (1);`,
      owned,
    )
    const repo = join(dir, 'repo-owners')
    await backupOf(ownedUrl, repo)
    const asRestorer = new URL(ownedUrl)
    asRestorer.username = 'rs_restorer'
    asRestorer.password = 'rs-pw'
    const target = `owners_${Date.now().toString(36)}`
    const error = await restore(repo, ownedUrl, {targetDb: target, jobs: 1, adminUrl: asRestorer.toString()}).catch(
      (e: unknown) => e,
    )
    expect(error).toMatchObject({code: 'RESTORE_NEEDS_SUPERUSER', exitCode: 2})
    expect(String((error as Error).message)).toMatch(/member of role "rs_owner"|must be owner/)
    expect(String((error as {hint: string}).hint)).toMatch(/CHARGE_OPS_ADMIN_URL/)
    expect(await databases(target)).toEqual([])
  })

  it('parallel (--jobs 2) round trip', async () => {
    const target = `rtj_${Date.now().toString(36)}`
    const result = await restore(join(dir, 'repo'), sourceUrl, {targetDb: target, jobs: 2})
    expect(result.jobs).toBe(2)
    expect(await tableHashes(target)).toEqual(await tableHashes(source))
  })

  it('refuses a non-empty target without --clean (exit 2) and changes nothing; --clean asks first', async () => {
    const liveUrl = await pg.createDatabase()
    const live = dbName(liveUrl)
    await pg.query(`CREATE TABLE keep_me (id int); INSERT INTO keep_me SELECT generate_series(1, 77);`, live)
    const before = await tableHashes(live)
    const dbsBefore = await databases(live)
    await expect(restore(join(dir, 'repo'), liveUrl)).rejects.toMatchObject({code: 'TARGET_NOT_EMPTY', exitCode: 2})
    // --clean, but the confirmation is refused (no --yes): still nothing touched
    let asked = ''
    await expect(
      restore(join(dir, 'repo'), liveUrl, {
        clean: true,
        confirm: async (q) => {
          asked = q
          throw Object.assign(new Error('refused'), {code: 'CONFIRMATION_REQUIRED', exitCode: 2})
        },
      }),
    ).rejects.toMatchObject({code: 'CONFIRMATION_REQUIRED'})
    expect(asked).toContain(live)
    expect(await tableHashes(live)).toEqual(before)
    expect(await databases(live)).toEqual(dbsBefore)
    expect(existsSync(join(dir, 'state', 'maintenance'))).toBe(false)
  })

  it('--clean --yes replaces the live database under maintenance mode, switched off afterwards', async () => {
    const liveUrl = await pg.createDatabase()
    const live = dbName(liveUrl)
    await pg.query(
      `${SCHEMA} DELETE FROM samples WHERE t % 2 = 0; CREATE TABLE extra (x int); GRANT CONNECT ON DATABASE ${live} TO PUBLIC;`,
      live,
    )
    let maintenanceDuringRestore: boolean | undefined
    const result = await restore(join(dir, 'repo'), liveUrl, {
      clean: true,
      progress: (label) => {
        if (label.startsWith('restore ')) maintenanceDuringRestore = existsSync(join(dir, 'state', 'maintenance'))
        return {add() {}, bytes: 0, done() {}}
      },
    })
    expect(result).toMatchObject({live: true, replaced: true, maintenance: 'switched on and off', mismatches: []})
    expect(maintenanceDuringRestore).toBe(true)
    expect(existsSync(join(dir, 'state', 'maintenance'))).toBe(false)
    expect(await tableHashes(live)).toEqual(await tableHashes(source))
    const names = await databases()
    expect(names.filter((n) => n.startsWith(live))).toEqual([live])
  })

  it('--keep-previous keeps the replaced database', async () => {
    const liveUrl = await pg.createDatabase()
    const live = dbName(liveUrl)
    await pg.query(`CREATE TABLE old_data (id int); INSERT INTO old_data VALUES (1), (2);`, live)
    const result = await restore(join(dir, 'repo'), liveUrl, {clean: true, keepPrevious: true})
    expect(result.previousKeptAs).toMatch(new RegExp(`^${live}_pre_\\d{8}_\\d{6}$`))
    // no --jobs: 2 (staging file) when there are two cores and the temp dir has room, as here
    expect(result.jobs).toBe(cpus().length >= 2 ? 2 : 1)
    expect(await pg.query(`SELECT count(*)::int AS n FROM old_data`, result.previousKeptAs!)).toEqual([{n: 2}])
    expect(await tableHashes(live)).toEqual(await tableHashes(source))
  })

  it('a backup whose migration head is newer than the installed migrations is refused without --force', async () => {
    const newerUrl = await pg.createDatabase()
    await pg.query(`${SCHEMA} INSERT INTO charge_ops_migrations VALUES ('0009', 'future', true);`, dbName(newerUrl))
    const repo = join(dir, 'repo-newer')
    const m = await backupOf(newerUrl, repo)
    expect(m.migrationHead).toBe('0009')
    const target = `mh_${Date.now().toString(36)}`
    await expect(restore(repo, sourceUrl, {targetDb: target})).rejects.toMatchObject({
      code: 'MIGRATION_HEAD_NEWER',
      exitCode: 2,
    })
    expect((await databases()).filter((n) => n.startsWith(target))).toEqual([])
    const forced = await restore(repo, sourceUrl, {targetDb: target, force: true})
    expect(forced.migrationHead).toBe('0009')
    expect(await pg.query(`SELECT max(version) AS v FROM charge_ops_migrations`, target)).toEqual([{v: '0009'}])
  })

  it('a flipped byte in the dump is refused (exit 1): target identical, scratch database gone (--jobs 1 streaming and --jobs 2 staging)', async () => {
    const repo = join(dir, 'repo-flip')
    const m = await backupOf(sourceUrl, repo)
    const file = join(repo, ...partKey('charge-analysis', m.id, m.parts[0].name).split('/'))
    const bytes = readFileSync(file)
    bytes[Math.floor(bytes.length / 3)] ^= 0x10
    writeFileSync(file, bytes)
    const liveUrl = await pg.createDatabase()
    const live = dbName(liveUrl)
    await pg.query(`CREATE TABLE precious (id int); INSERT INTO precious SELECT generate_series(1, 5);`, live)
    const before = await tableHashes(live)
    expect(before['public.precious']).toMatch(/^5:/)
    const dbsBefore = await databases(live)
    for (const jobs of [1, 2]) {
      await expect(restore(repo, liveUrl, {clean: true, jobs})).rejects.toMatchObject({
        code: 'CHECKSUM_MISMATCH',
        exitCode: 1,
      })
      expect(await tableHashes(live)).toEqual(before)
      expect(await databases(live)).toEqual(dbsBefore)
      expect(dbsBefore).toEqual([live]) // no scratch database, no previous copy
      expect(existsSync(join(dir, 'state', 'maintenance'))).toBe(false)
    }
  })

  it('a part that decompresses and restores cleanly but does not hash to the manifest is refused at the end: scratch dropped, target identical', async () => {
    // the streamed hash is the only thing that can catch this one (zstd and pg_restore are happy)
    const repo = join(dir, 'repo-sha')
    const m = await backupOf(sourceUrl, repo)
    const manifestFile = join(repo, ...partKey('charge-analysis', m.id, 'manifest.json').split('/'))
    const recorded = JSON.parse(readFileSync(manifestFile, 'utf8')) as BackupManifest
    recorded.parts[0].sha256 = recorded.parts[0].sha256.replace(/^./, (c) => (c === '0' ? '1' : '0'))
    writeFileSync(manifestFile, JSON.stringify(recorded))
    const liveUrl = await pg.createDatabase()
    const live = dbName(liveUrl)
    await pg.query(`CREATE TABLE precious (id int); INSERT INTO precious SELECT generate_series(1, 9);`, live)
    const before = await tableHashes(live)
    const dbsBefore = await databases(live)
    let restoreStarted = false
    const error = await restore(repo, liveUrl, {
      clean: true,
      progress: (label) => {
        if (label.startsWith('restore ')) restoreStarted = true
        return {add() {}, bytes: 0, done() {}}
      },
    }).catch((e: unknown) => e)
    expect(error).toMatchObject({code: 'CHECKSUM_MISMATCH', exitCode: 1})
    expect(restoreStarted).toBe(true) // one pass: the check happened on the restore's own read
    expect(await tableHashes(live)).toEqual(before)
    expect(await databases(live)).toEqual(dbsBefore)
    expect(existsSync(join(dir, 'state', 'maintenance'))).toBe(false)
  })

  it('cleans up the leftovers of an interrupted restore on the next run', async () => {
    const target = `lo_${Date.now().toString(36)}`
    // what a kill during pg_restore leaves: a half-filled scratch database
    await pg.query(`CREATE DATABASE ${target}_restoring`)
    await pg.query(`CREATE TABLE half (x int)`, `${target}_restoring`)
    const result = await restore(join(dir, 'repo'), sourceUrl, {targetDb: target})
    expect(result.recovered).toEqual([`dropped ${target}_restoring`])
    expect(await tableHashes(target)).toEqual(await tableHashes(source))
    expect((await databases()).filter((n) => n.startsWith(target))).toEqual([target])
  })
})
