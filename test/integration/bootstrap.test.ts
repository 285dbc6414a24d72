import {randomBytes} from 'node:crypto'
import {mkdtempSync} from 'node:fs'
import {tmpdir} from 'node:os'
import {join} from 'node:path'

import pg from 'pg'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'

import {bootstrapDatabase, type BootstrapRoles} from '../../src/install/bootstrap.js'
import {migrateUp} from '../../src/migrate/index.js'
import {sharedPostgres} from '../support/index.js'
import {runCli, runToKillPoint} from '../support/cli.js'

const suffix = randomBytes(4).toString('hex')
const roles: BootstrapRoles = {app: `app_${suffix}`, migration: `mig_${suffix}`, readonly: `ro_${suffix}`}
const database = `boot_${suffix}`
const passwords = {app: `app-pw-${suffix}-x`, migration: `mig-pw-${suffix}-y`, readonly: `ro pw ${suffix} z`}

function urlFor(role: keyof BootstrapRoles): string {
  const cluster = sharedPostgres()
  return `postgresql://${roles[role]}:${encodeURIComponent(passwords[role])}@${cluster.host}:${cluster.port}/${database}`
}

async function as<T>(role: keyof BootstrapRoles, fn: (c: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({connectionString: urlFor(role)})
  await client.connect()
  try {
    return await fn(client)
  } finally {
    await client.end()
  }
}

const sqlState = async (p: Promise<unknown>) =>
  p.then(
    () => 'ok',
    (e: {code?: string}) => e.code,
  )

describe('db bootstrap', () => {
  const adminUrl = () => sharedPostgres().url('postgres')

  afterAll(async () => {
    const cluster = sharedPostgres()
    await cluster.query(`DROP DATABASE IF EXISTS ${database} WITH (FORCE)`)
    for (const r of Object.values(roles)) await cluster.query(`DROP ROLE IF EXISTS ${r}`)
  })

  let first: Awaited<ReturnType<typeof bootstrapDatabase>>
  beforeAll(async () => {
    first = await bootstrapDatabase({adminUrl: adminUrl(), database, roles, passwords})
  })

  it('creates the roles and the database, and a second run changes nothing', async () => {
    expect(first.steps.find((s) => s.description.startsWith('create database'))?.changed).toBe(true)
    expect(first.changed).toBeGreaterThanOrEqual(5)
    const second = await bootstrapDatabase({adminUrl: adminUrl(), database, roles, passwords})
    expect(second.steps.filter((s) => s.changed).map((s) => s.description)).toEqual([])
    expect(second.changed).toBe(0)
    const rows = await sharedPostgres().query<{rolname: string; rolsuper: boolean; rolcreatedb: boolean}>(
      `SELECT rolname, rolsuper, rolcreatedb FROM pg_roles WHERE rolname = ANY($1) ORDER BY rolname`,
      'postgres',
      [Object.values(roles)],
    )
    expect(rows.map((r) => r.rolname).sort()).toEqual(Object.values(roles).sort())
    expect(rows.every((r) => !r.rolsuper && !r.rolcreatedb)).toBe(true)
  })

  it('never sends the plain password: pg_authid holds a SCRAM verifier, the steps show a mask', async () => {
    const [row] = await sharedPostgres().query<{p: string}>(
      `SELECT rolpassword AS p FROM pg_authid WHERE rolname = $1`,
      'postgres',
      [roles.app],
    )
    expect(row.p).toMatch(/^SCRAM-SHA-256\$4096:/)
    const shown = JSON.stringify(first)
    for (const pw of Object.values(passwords)) expect(shown).not.toContain(pw)
    expect(shown).toContain('******')
  })

  it('gives the migration role DDL, the app role CRUD only, the read-only role SELECT only', async () => {
    await as('migration', (c) => c.query('CREATE TABLE readings (id bigserial PRIMARY KEY, v real NOT NULL)'))
    // app: CRUD on the migration role's table (default privileges), sequences usable, no DDL
    await as('app', async (c) => {
      await c.query('INSERT INTO readings (v) VALUES (1.5), (2.5)')
      await c.query('UPDATE readings SET v = v + 1 WHERE v > 2')
      await c.query('DELETE FROM readings WHERE v < 2')
      const {rows} = await c.query('SELECT v FROM readings')
      expect(rows).toEqual([{v: 3.5}])
      expect(await sqlState(c.query('CREATE TABLE app_owned (id int)'))).toBe('42501')
      expect(await sqlState(c.query('DROP TABLE readings'))).toBe('42501')
      expect(await sqlState(c.query('TRUNCATE readings'))).toBe('42501')
    })
    await as('readonly', async (c) => {
      const {rows} = await c.query('SELECT count(*)::int AS n FROM readings')
      expect(rows[0].n).toBe(1)
      expect(await sqlState(c.query('INSERT INTO readings (v) VALUES (9)'))).toMatch(/^(25006|42501)$/)
      await c.query('SET default_transaction_read_only = off')
      expect(await sqlState(c.query('INSERT INTO readings (v) VALUES (9)'))).toBe('42501')
      expect(await sqlState(c.query('CREATE TABLE ro_owned (id int)'))).toBe('42501')
    })
  })

  it('lets the migration role run the migrations; the app uses the tables but cannot rewrite the history', async () => {
    // the guard against an untracked schema: the table of the previous test is refused…
    await expect(
      migrateUp({databaseUrl: urlFor('migration'), migrationsDir: 'test/fixtures/migrations/basic'}),
    ).rejects.toMatchObject({code: 'SCHEMA_NOT_EMPTY', exitCode: 3})
    await as('migration', (c) => c.query('DROP TABLE readings'))
    const result = await migrateUp({databaseUrl: urlFor('migration'), migrationsDir: 'test/fixtures/migrations/basic'})
    expect(result.applied.map((a) => a.version)).toEqual(['0001', '0002', '0003'])
    await as('app', async (c) => {
      await c.query(`INSERT INTO charging_sessions (vehicle_id) VALUES ('ev-1')`)
      const {rows} = await c.query('SELECT count(*)::int AS n FROM charge_ops_migrations')
      expect(rows[0].n).toBe(3)
      expect(await sqlState(c.query('DELETE FROM charge_ops_migrations'))).toBe('42501')
    })
    // a rerun after migrations keeps it that way
    const again = await bootstrapDatabase({adminUrl: adminUrl(), database, roles, passwords})
    expect(again.changed).toBe(0)
    await as('app', async (c) => expect(await sqlState(c.query('DELETE FROM charge_ops_migrations'))).toBe('42501'))
  })

  it('dry run changes nothing', async () => {
    const other = `boot_dry_${suffix}`
    const result = await bootstrapDatabase({
      adminUrl: adminUrl(),
      database: other,
      roles: {app: `a2_${suffix}`, migration: `m2_${suffix}`, readonly: `r2_${suffix}`},
      passwords,
      dryRun: true,
    })
    expect(result.steps.length).toBeGreaterThan(5)
    expect(result.steps.every((s) => s.changed === null || s.changed === false)).toBe(true)
    const rows = await sharedPostgres().query(
      `SELECT 1 FROM pg_database WHERE datname = $1 UNION ALL SELECT 1 FROM pg_roles WHERE rolname = $2`,
      'postgres',
      [other, `a2_${suffix}`],
    )
    expect(rows).toEqual([])
  })
})

describe('db bootstrap killed between its steps', () => {
  const id = randomBytes(4).toString('hex')
  const killedRoles: BootstrapRoles = {app: `kapp_${id}`, migration: `kmig_${id}`, readonly: `kro_${id}`}
  const killedDb = `kboot_${id}`
  afterAll(async () => {
    const cluster = sharedPostgres()
    await cluster.query(`DROP DATABASE IF EXISTS ${killedDb} WITH (FORCE)`)
    for (const r of Object.values(killedRoles)) await cluster.query(`DROP ROLE IF EXISTS ${r}`)
  })

  it('db.bootstrap.roles-created, then db.bootstrap.database-created: each rerun converges (no duplicate role / database error); the last changes nothing and the grants are right', async () => {
    const faultDir = mkdtempSync(join(tmpdir(), 'boot-faults-'))
    const args = [
      'db',
      'bootstrap',
      '--database',
      killedDb,
      '--app-role',
      killedRoles.app,
      '--migration-role',
      killedRoles.migration,
      '--readonly-role',
      killedRoles.readonly,
      '--json',
    ]
    const env = {
      ADMIN_DATABASE_URL: sharedPostgres().url('postgres'),
      APP_DB_PASSWORD: 'app-pw-killed-1',
      MIGRATION_DB_PASSWORD: 'mig-pw-killed-2',
      READONLY_DB_PASSWORD: 'ro-pw-killed-3',
      DATABASE_URL: undefined,
      CI: 'true',
    }
    const cluster = sharedPostgres()
    const present = async () => ({
      roles: (
        await cluster.query<{rolname: string}>(
          'SELECT rolname FROM pg_roles WHERE rolname = ANY($1) ORDER BY 1',
          'postgres',
          [Object.values(killedRoles)],
        )
      ).map((r) => r.rolname),
      database:
        (await cluster.query('SELECT 1 FROM pg_database WHERE datname = $1', 'postgres', [killedDb])).length === 1,
    })

    await runToKillPoint('db.bootstrap.roles-created', args, {env, faultDir})
    expect(await present()).toEqual({roles: Object.values(killedRoles).sort(), database: false})
    await runToKillPoint('db.bootstrap.database-created', args, {env, faultDir})
    expect((await present()).database).toBe(true)
    // the schema is not the migration role's yet: the kill landed before the grants
    expect(
      (
        await cluster.query<{o: string}>(
          `SELECT pg_get_userbyid(nspowner) AS o FROM pg_namespace WHERE nspname = 'public'`,
          killedDb,
        )
      )[0]!.o,
    ).not.toBe(killedRoles.migration)

    const rerun = runCli(args, {env})
    expect(rerun.code, rerun.out).toBe(0)
    const done = JSON.parse(rerun.stdout)
    expect(done.steps.filter((s: {changed: boolean}) => s.changed).length).toBeGreaterThan(0)
    // the roles and the database are found, not created again: no role to create, the database's step skipped
    const creating = done.steps.filter((s: {description: string}) => /^create /.test(s.description))
    expect(creating.map((s: {description: string; changed: boolean}) => [s.description, s.changed])).toEqual([
      [`create database ${killedDb}`, false],
    ])
    const again = runCli(args, {env})
    expect(again.code, again.out).toBe(0)
    expect(JSON.parse(again.stdout).changed).toBe(0)
    expect(
      (
        await cluster.query<{o: string}>(
          `SELECT pg_get_userbyid(nspowner) AS o FROM pg_namespace WHERE nspname = 'public'`,
          killedDb,
        )
      )[0]!.o,
    ).toBe(killedRoles.migration)
    const app = new pg.Client({
      connectionString: `postgresql://${killedRoles.app}:app-pw-killed-1@${cluster.host}:${cluster.port}/${killedDb}`,
    })
    await app.connect()
    try {
      expect(await sqlState(app.query('CREATE TABLE nope (id int)'))).toBe('42501')
    } finally {
      await app.end()
    }
  })
})
