import {mkdtempSync, readFileSync, rmSync, writeFileSync, chmodSync} from 'node:fs'
import {tmpdir} from 'node:os'
import {join} from 'node:path'

import {afterAll, beforeAll, describe, expect, it} from 'vitest'

import {openBackupContext} from '../../src/backup/context.js'
import {backupDatabase} from '../../src/backup/db.js'
import {verifyBackup} from '../../src/restore/verify.js'
import {loadSettings} from '../../src/config/settings.js'
import {silentLogger} from '../../src/output/logger.js'
import {LocalStorage} from '../../src/repository/local-storage.js'
import {listBackups, partKey, readManifest} from '../../src/repository/manifest.js'
import {restoreDatabaseDump} from '../../src/restore/logical.js'
import {sharedPostgres} from '../support/index.js'

const pg = sharedPostgres()
let dbUrl: string
let dbName: string
let dir: string

const TABLES = ['public.sessions', 'public.samples', 'audit.events']

async function tableHashes(db: string): Promise<Record<string, string>> {
  const out: Record<string, string> = {}
  for (const t of TABLES) {
    const [row] = await pg.query<{h: string}>(
      `SELECT md5(coalesce(string_agg(x::text, '|' ORDER BY x::text), '')) AS h FROM ${t} x`,
      db,
    )
    out[t] = row.h
  }
  return out
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'co-backup-db-'))
  dbUrl = await pg.createDatabase()
  dbName = new URL(dbUrl).pathname.slice(1)
  await pg.query(
    `CREATE SCHEMA audit;
     CREATE TABLE sessions (id serial PRIMARY KEY, name text, started timestamptz DEFAULT now());
     CREATE TABLE samples (session_id int REFERENCES sessions(id), t int, voltage_v float8, current_a float8, note text);
     CREATE TABLE audit.events (id bigserial PRIMARY KEY, payload jsonb);
     INSERT INTO sessions (name) SELECT 'session ' || g FROM generate_series(1, 50) g;
     INSERT INTO samples SELECT 1 + (g % 50), g, 300 + random() * 100, random() * 200, CASE WHEN g % 7 = 0 THEN E'quote\\'s "and" \\\\ tab\\t' END FROM generate_series(1, 20000) g;
     INSERT INTO audit.events (payload) SELECT jsonb_build_object('n', g) FROM generate_series(1, 321) g;
     CREATE TABLE charge_ops_migrations (version text PRIMARY KEY, name text, success boolean);
     INSERT INTO charge_ops_migrations VALUES ('1', 'a', true), ('2', 'b', true), ('10', 'c', true), ('11', 'd', false);
     CREATE TABLE service_meta (key text PRIMARY KEY, value text NOT NULL);
     INSERT INTO service_meta VALUES ('version', '1.0.0');`,
    dbName,
  )
})

afterAll(() => {
  rmSync(dir, {recursive: true, force: true})
})

function context(repo: string, extra: {encrypt?: string; metricsFile?: string} = {}) {
  const settings = loadSettings({cwd: dir, env: {DATABASE_URL: dbUrl, CHARGE_OPS_REPO: repo}})
  return openBackupContext({
    settings,
    logger: silentLogger,
    encryptKeyFile: extra.encrypt,
    metricsFile: extra.metricsFile,
  })
}

describe('backup db', () => {
  it('round trip: backup → verify --restore-drill → restored rows identical', async () => {
    const repo = join(dir, 'repo1')
    const metricsFile = join(dir, 'metrics.prom')
    const ctx = await context(repo, {metricsFile})
    const manifest = await backupDatabase(ctx)
    expect(manifest.kind).toBe('db')
    expect(manifest.db?.rowCounts).toMatchObject({'public.sessions': 50, 'public.samples': 20000, 'audit.events': 321})
    expect(manifest.migrationHead).toBe('10')
    expect(manifest.serviceVersion).toBe('1.0.0')
    expect(manifest.db?.lsn).toMatch(/^[0-9A-F]+\/[0-9A-F]+$/)
    expect(manifest.parts[0]).toMatchObject({name: 'db.dump.zst', compression: 'zstd', component: 'db'})
    // zstd frame magic: the stored part really is zstd
    const stored = readFileSync(join(repo, ...partKey(ctx.stack, manifest.id, 'db.dump.zst').split('/')))
    expect(stored.readUInt32LE(0)).toBe(0xfd2fb528)
    // the password never reaches the manifest
    const password = new URL(dbUrl).password
    expect(
      readFileSync(join(repo, ...partKey(ctx.stack, manifest.id, 'manifest.json').split('/')), 'utf8'),
    ).not.toContain(password)

    const verified = await verifyBackup(ctx, 'latest', {restoreDrill: true})
    expect(verified.ok).toBe(true)
    expect(verified.restoreDrill?.rowCountsMatch).toBe(true)
    const again = await readManifest(ctx.storage, ctx.stack, manifest.id)
    expect(again.verification?.restoreDrill?.durationMs).toBeGreaterThan(0)
    const metrics = readFileSync(metricsFile, 'utf8')
    expect(metrics).toMatch(/charge_ops_backup_last_success_timestamp_seconds\{kind="db",stack="charge-analysis"\} \d+/)
    expect(metrics).toMatch(/charge_ops_backup_restore_drill_seconds\{kind="db",stack="charge-analysis"\} [\d.]+/)
    // no scratch database left behind (by name: other files' drills may run on the shared cluster meanwhile)
    expect(
      await pg.query(`SELECT datname FROM pg_database WHERE datname = $1`, 'postgres', [
        verified.restoreDrill!.database,
      ]),
    ).toEqual([])

    // a role that may not create databases: a clear usage error (exit 2) naming the fix, not a bug
    await pg.query(
      `DROP ROLE IF EXISTS drill_nocreate; CREATE ROLE drill_nocreate LOGIN PASSWORD 'drill-pw' NOCREATEDB`,
    )
    const weak = new URL(dbUrl)
    weak.username = 'drill_nocreate'
    weak.password = 'drill-pw'
    const refused = await verifyBackup(ctx, 'latest', {restoreDrill: true, drillUrl: weak.toString()}).catch(
      (error: unknown) => error,
    )
    expect(refused).toMatchObject({code: 'DRILL_NO_CREATEDB', exitCode: 2})
    expect(String((refused as {hint: string}).hint)).toMatch(/CHARGE_OPS_ADMIN_URL/)
    const {describeError} = await import('../../src/errors.js')
    const {withClient} = await import('../../src/postgres/connection.js')
    // and any other privilege the server refuses is reported as such (exit 2), not as a bug (70)
    const denied = await withClient(weak.toString(), (c) => c.query('CREATE DATABASE nope')).catch(
      (error: unknown) => error,
    )
    expect(describeError(denied)).toMatchObject({code: 'PG_PERMISSION_DENIED', exitCode: 2, data: {sqlstate: '42501'}})

    // restore into a fresh database and compare a hash of every table
    const targetUrl = await pg.createDatabase()
    await restoreDatabaseDump({storage: ctx.storage, manifest, targetUrl, logger: silentLogger})
    expect(await tableHashes(new URL(targetUrl).pathname.slice(1))).toEqual(await tableHashes(dbName))
  })

  it('encrypted: the stored part holds no plaintext, restores with the key, refuses a loose key file', async () => {
    const repo = join(dir, 'repo-enc')
    const keyFile = join(dir, 'backup.key')
    writeFileSync(keyFile, 'ab'.repeat(32) + '\n', {mode: 0o600})
    const ctx = await context(repo, {encrypt: keyFile})
    const manifest = await backupDatabase(ctx)
    expect(manifest.encryption?.keyId).toMatch(/^[0-9a-f]{16}$/)
    const stored = readFileSync(join(repo, ...partKey(ctx.stack, manifest.id, manifest.parts[0].name).split('/')))
    expect(stored.subarray(0, 6).toString()).toBe('COENC1')
    const targetUrl = await pg.createDatabase()
    const result = await restoreDatabaseDump({
      storage: ctx.storage,
      manifest,
      targetUrl,
      logger: silentLogger,
      encryption: ctx.encryption,
    })
    expect(result.mismatches).toEqual([])
    await expect(
      restoreDatabaseDump({storage: ctx.storage, manifest, targetUrl: await pg.createDatabase(), logger: silentLogger}),
    ).rejects.toMatchObject({code: 'KEY_REQUIRED'})
    chmodSync(keyFile, 0o644)
    await expect(context(repo, {encrypt: keyFile})).rejects.toMatchObject({code: 'KEY_FILE_MODE', exitCode: 2})
  })

  it('a flipped byte in a part → verify fails naming it; restore refuses before touching anything', async () => {
    const repo = join(dir, 'repo-flip')
    const ctx = await context(repo)
    const manifest = await backupDatabase(ctx)
    const file = join(repo, ...partKey(ctx.stack, manifest.id, 'db.dump.zst').split('/'))
    const bytes = readFileSync(file)
    bytes[Math.floor(bytes.length / 2)] ^= 0x01
    writeFileSync(file, bytes)
    const result = await verifyBackup(ctx, manifest.id)
    expect(result.ok).toBe(false)
    expect(result.parts.filter((p) => !p.ok).map((p) => p.part)).toEqual(['db.dump.zst'])
    const targetUrl = await pg.createDatabase()
    await expect(
      restoreDatabaseDump({storage: ctx.storage, manifest, targetUrl, logger: silentLogger}),
    ).rejects.toMatchObject({exitCode: 1, code: 'CHECKSUM_MISMATCH'})
    const tables = await pg.query(
      `SELECT count(*)::int AS n FROM pg_tables WHERE schemaname = 'public'`,
      new URL(targetUrl).pathname.slice(1),
    )
    expect(tables[0].n).toBe(0)
  })

  it('a role that may create databases but not untrusted extensions restores a database holding pg_stat_statements', async () => {
    const sourceUrl = await pg.createDatabase()
    const source = new URL(sourceUrl).pathname.slice(1)
    await pg.query(
      `CREATE EXTENSION pg_stat_statements; CREATE TABLE kept (id int); INSERT INTO kept SELECT generate_series(1, 1234);`,
      source,
    )
    await pg.query(`DROP ROLE IF EXISTS drill_createdb; CREATE ROLE drill_createdb LOGIN PASSWORD 'drill-pw' CREATEDB`)
    const asRole = new URL(sourceUrl)
    asRole.username = 'drill_createdb'
    asRole.password = 'drill-pw'
    // the names of this test's own drills: other files' drills may run on the shared cluster meanwhile
    const drills: string[] = []
    for (const jobs of [1, 2]) {
      const repo = join(dir, `repo-ext-${jobs}`)
      const settings = loadSettings({cwd: dir, env: {DATABASE_URL: sourceUrl, CHARGE_OPS_REPO: repo}})
      const ctx = await openBackupContext({settings, logger: silentLogger})
      await backupDatabase(ctx, {jobs})
      // the drill as that role: pg_restore would stop at CREATE EXTENSION; it is left out and said
      const verified = await verifyBackup(ctx, 'latest', {restoreDrill: true, drillUrl: asRole.toString(), jobs})
      expect(verified.restoreDrill).toMatchObject({rowCountsMatch: true, skippedExtensions: ['pg_stat_statements']})
      // a superuser restores it whole
      const full = await verifyBackup(ctx, 'latest', {restoreDrill: true, jobs})
      expect(full.restoreDrill).toMatchObject({rowCountsMatch: true, skippedExtensions: []})
      drills.push(verified.restoreDrill!.database, full.restoreDrill!.database)
    }
    expect(drills).toHaveLength(4)
    expect(await pg.query(`SELECT datname FROM pg_database WHERE datname = ANY($1)`, 'postgres', [drills])).toEqual([])
  })

  it('jobs mode (directory format) round-trips', async () => {
    const repo = join(dir, 'repo-jobs')
    const ctx = await context(repo)
    const manifest = await backupDatabase(ctx, {jobs: 2})
    expect(manifest.db?.format).toBe('directory')
    const targetUrl = await pg.createDatabase()
    const result = await restoreDatabaseDump({storage: ctx.storage, manifest, targetUrl, logger: silentLogger, jobs: 2})
    expect(result.mismatches).toEqual([])
    expect(await tableHashes(new URL(targetUrl).pathname.slice(1))).toEqual(await tableHashes(dbName))
    expect((await listBackups(new LocalStorage(repo), ctx.stack)).complete).toHaveLength(1)
  })
})
