/**
 * The postgres/bootstrap.sql `charge-ops init` writes, run the way the guide and the postgres
 * image run it — `psql -v ON_ERROR_STOP=1 -f bootstrap.sql` with postgres.env in the environment
 * (never argv) — against a real PostgreSQL 15: it stops before touching anything when a password
 * is missing, a second run changes nothing, no password reaches the server log even with
 * log_statement = all, each role has exactly its privileges, and the catalog ends up the same as
 * after `charge-ops db bootstrap` (bootstrapDatabase), the module both are rendered from.
 */
import {spawnSync} from 'node:child_process'
import {mkdtempSync, readFileSync, writeFileSync} from 'node:fs'
import {tmpdir} from 'node:os'
import {join} from 'node:path'

import pg from 'pg'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'

import {parseAnswers, parseAnswersFile} from '../../src/install/answers.js'
import {bootstrapDatabase} from '../../src/install/bootstrap.js'
import {planInit} from '../../src/install/plan.js'
import {migrateUp} from '../../src/migrate/index.js'
import {startPostgres, type PgCluster} from '../support/index.js'

const root = join(import.meta.dirname, '..', '..')
const fixture = join(root, 'test', 'fixtures', 'init', 'answers-compose.yaml')
const SECRETS = {
  secretKey: 'k'.repeat(64),
  postgresPassword: 'p'.repeat(48),
  appDbPassword: 'a9'.repeat(24),
  migratorDbPassword: 'm8'.repeat(24),
  redisPassword: 'r'.repeat(48),
}
const READER_PASSWORD = 'reader-pw-0f1e2d3c4b5a'
const DB = 'charge_analysis'
const ROLES = {app: 'charge_user', migration: 'charge_migrator', readonly: 'charge_reader'}

let cluster: PgCluster
let dir: string
let sqlFile: string
let postgresEnv: Record<string, string>

function psql(extraEnv: Record<string, string>) {
  // only what psql needs: the connection (PGPASSWORD) and the passwords, all through the environment
  const env = {PATH: process.env.PATH ?? '/usr/bin:/bin', ...cluster.env(), PGDATABASE: 'postgres', ...extraEnv}
  const r = spawnSync(join(cluster.binDir, 'psql'), ['-X', '-q', '-v', 'ON_ERROR_STOP=1', '-f', sqlFile], {
    env,
    encoding: 'utf8',
    timeout: 60_000,
  })
  return {status: r.status, out: `${r.stdout}${r.stderr}`}
}

async function as<T>(role: keyof typeof ROLES, password: string, fn: (c: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({host: cluster.host, port: cluster.port, user: ROLES[role], password, database: DB})
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

/** Roles' attributes, database ACL and settings, schema owner / ACL, default privileges — with the names replaced. */
async function catalogState(database: string, roles: typeof ROLES): Promise<string> {
  const q = cluster.query.bind(cluster)
  const state = {
    roles: await q(
      `SELECT rolname, rolcanlogin, rolsuper, rolcreatedb, rolcreaterole, rolreplication, rolbypassrls, rolinherit, rolconfig FROM pg_roles WHERE rolname = ANY($1) ORDER BY array_position($1, rolname::text)`,
      'postgres',
      [[roles.migration, roles.app, roles.readonly]],
    ),
    database: await q(
      `SELECT pg_get_userbyid(datdba) AS owner, datacl::text, pg_encoding_to_char(encoding) AS encoding FROM pg_database WHERE datname = $1`,
      'postgres',
      [database],
    ),
    settings: await q(
      `SELECT r.rolname, s.setconfig FROM pg_db_role_setting s JOIN pg_roles r ON r.oid = s.setrole JOIN pg_database d ON d.oid = s.setdatabase WHERE d.datname = $1 ORDER BY 1`,
      'postgres',
      [database],
    ),
    schema: await q(
      `SELECT nspowner::regrole::text AS owner, nspacl::text FROM pg_namespace WHERE nspname = 'public'`,
      database,
    ),
    defaults: await q(
      `SELECT defaclrole::regrole::text AS role, defaclobjtype, defaclacl::text FROM pg_default_acl a JOIN pg_namespace n ON n.oid = a.defaclnamespace WHERE n.nspname = 'public' ORDER BY 1, 2`,
      database,
    ),
  }
  let text = JSON.stringify(state, null, 1)
  for (const [kind, name] of Object.entries(roles)) text = text.replace(new RegExp(`\\b${name}\\b`, 'g'), `<${kind}>`)
  return text.replace(new RegExp(`\\b${database}\\b`, 'g'), '<db>')
}

describe('init bootstrap.sql on a real PostgreSQL 15', () => {
  beforeAll(async () => {
    cluster = await startPostgres({name: 'init-roles', conf: {log_statement: 'all'}})
    dir = mkdtempSync(join(tmpdir(), 'init-roles-sql-'))
    const answers = parseAnswers(parseAnswersFile(readFileSync(fixture, 'utf8'), fixture), fixture)
    const files = planInit(answers, {secrets: SECRETS, installDir: dir})
    sqlFile = join(dir, 'bootstrap.sql')
    writeFileSync(sqlFile, files.find((f) => f.path === 'postgres/bootstrap.sql')!.content)
    postgresEnv = Object.fromEntries(
      files
        .find((f) => f.path === 'postgres.env')!
        .content.split('\n')
        .filter((l) => /^[A-Z_]+=/.test(l))
        .map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]),
    )
  })
  afterAll(async () => {
    await cluster?.stop()
  })

  it('the file holds no secret and names the three roles of db bootstrap', () => {
    const text = readFileSync(sqlFile, 'utf8')
    for (const secret of Object.values(SECRETS)) expect(text).not.toContain(secret)
    for (const role of Object.values(ROLES)) expect(text).toContain(`"${role}"`)
    expect(postgresEnv.CHARGE_APP_DB_PASSWORD).toBe(SECRETS.appDbPassword)
  })

  it('without the passwords in the environment: exit 3 with the reason, nothing created', async () => {
    const r = psql({})
    expect(r.status, r.out).toBe(3)
    expect(r.out).toContain('CHARGE_APP_DB_PASSWORD is not set (load postgres.env first)')
    const r2 = psql({CHARGE_APP_DB_PASSWORD: SECRETS.appDbPassword})
    expect(r2.status, r2.out).toBe(3)
    expect(r2.out).toContain('CHARGE_MIGRATOR_DB_PASSWORD is not set')
    expect(
      await cluster.query(
        `SELECT rolname FROM pg_roles WHERE rolname = ANY($1) UNION ALL SELECT datname FROM pg_database WHERE datname = $2`,
        'postgres',
        [Object.values(ROLES), DB],
      ),
    ).toEqual([])
  })

  it('psql -f with postgres.env: succeeds, and a second run changes nothing', async () => {
    const first = psql(postgresEnv)
    expect(first.status, first.out).toBe(0)
    const before = await catalogState(DB, ROLES)
    expect(before).toContain('"owner": "<migration>"')
    const second = psql(postgresEnv)
    expect(second.status, second.out).toBe(0)
    expect(await catalogState(DB, ROLES)).toBe(before)
  })

  it('no password in the server log, even with log_statement = all', () => {
    const log = readFileSync(cluster.logFile, 'utf8')
    expect(log).toMatch(/statement: SET log_statement = 'none'/) // the log did record statements
    for (const secret of [SECRETS.appDbPassword, SECRETS.migratorDbPassword]) expect(log).not.toContain(secret)
  })

  it('migrator runs the migrations; app gets CRUD only; reader cannot log in without its password', async () => {
    const mig = SECRETS.migratorDbPassword
    const migrationUrl = `postgresql://${ROLES.migration}:${mig}@${cluster.host}:${cluster.port}/${DB}`
    const result = await migrateUp({
      databaseUrl: migrationUrl,
      migrationsDir: join(root, 'test', 'fixtures', 'migrations', 'basic'),
    })
    expect(result.applied.map((a) => a.version)).toEqual(['0001', '0002', '0003'])
    await as('migration', mig, (c) => c.query('CREATE TABLE readings (id bigserial PRIMARY KEY, v real NOT NULL)'))
    // a rerun after migrations (as after a restore) keeps the application's rights as they are
    expect(psql(postgresEnv).status).toBe(0)
    await as('app', SECRETS.appDbPassword, async (c) => {
      await c.query('INSERT INTO readings (v) VALUES (1.5), (2.5)')
      await c.query('UPDATE readings SET v = v + 1 WHERE v > 2')
      await c.query('DELETE FROM readings WHERE v < 2')
      expect((await c.query('SELECT v FROM readings')).rows).toEqual([{v: 3.5}])
      await c.query(`INSERT INTO charging_sessions (vehicle_id) VALUES ('ev-1')`)
      expect(await sqlState(c.query('CREATE TABLE app_owned (id int)'))).toBe('42501')
      expect(await sqlState(c.query('DROP TABLE readings'))).toBe('42501')
      expect(await sqlState(c.query('TRUNCATE readings'))).toBe('42501')
      expect(await sqlState(c.query('DELETE FROM charge_ops_migrations'))).toBe('42501')
    })
    expect(await sqlState(as('readonly', READER_PASSWORD, async () => {}))).toBe('28P01')
  })

  it('with CHARGE_READER_DB_PASSWORD the reader logs in and only reads', async () => {
    const r = psql({...postgresEnv, CHARGE_READER_DB_PASSWORD: READER_PASSWORD})
    expect(r.status, r.out).toBe(0)
    await as('readonly', READER_PASSWORD, async (c) => {
      expect((await c.query('SELECT count(*)::int AS n FROM readings')).rows[0].n).toBe(1)
      expect(await sqlState(c.query('INSERT INTO readings (v) VALUES (9)'))).toBe('25006') // read-only transaction
      await c.query('SET default_transaction_read_only = off')
      expect(await sqlState(c.query('INSERT INTO readings (v) VALUES (9)'))).toBe('42501')
      expect(await sqlState(c.query('CREATE TABLE ro_owned (id int)'))).toBe('42501')
    })
    expect(readFileSync(cluster.logFile, 'utf8')).not.toContain(READER_PASSWORD)
  })

  it('leaves the catalog exactly as db bootstrap (bootstrapDatabase) does', async () => {
    const other = {app: 'cmp_user', migration: 'cmp_migrator', readonly: 'cmp_reader'}
    await bootstrapDatabase({
      adminUrl: cluster.url('postgres'),
      database: 'cmp_analysis',
      roles: other,
      passwords: {app: 'x'.repeat(20), migration: 'y'.repeat(20), readonly: 'z'.repeat(20)},
    })
    const fromBootstrap = await catalogState('cmp_analysis', other)
    const fromInit = await catalogState(DB, ROLES)
    expect(fromInit).toBe(fromBootstrap)
    expect(fromInit).toContain('default_transaction_read_only=on')
  })
})
