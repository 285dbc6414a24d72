/**
 * `db bootstrap`: the database and roles of the guide's §6.1.3, done idempotently and with the
 * guide's slips fixed:
 *  - three roles: an application role (CRUD only), a migration role (owns schema public: DDL) and
 *    a read-only reporting role (SELECT only, default_transaction_read_only);
 *  - the guide's stray `d \c` is gone (we connect to the database instead);
 *  - `CREATE SCHEMA IF NOT EXISTS public AUTHORIZATION …` does nothing when public exists (always):
 *    ownership and grants are set explicitly;
 *  - default privileges are declared FOR ROLE <migration role>, the role that creates the tables
 *    (the guide's version applied only to tables the admin creates).
 * Passwords come from the environment or secret files, travel as SCRAM verifiers computed here,
 * and are never printed. Each step probes the catalog before and after, so a second run reports
 * "unchanged" everywhere.
 */
import {faultPoint} from '../core/faults.js'
import type {Client} from 'pg'

import {UsageError} from '../errors.js'
import {silentLogger, type Logger} from '../output/logger.js'
import {MASK} from '../output/redact.js'
import {connect, parseDatabaseUrl, withDatabase} from '../postgres/connection.js'
import {scramVerifier, verifierMatches} from './bootstrap-scram.js'
import {quoteIdent} from '../postgres/sql.js'

export interface BootstrapRoles {
  app: string
  migration: string
  readonly: string
}

export interface BootstrapOptions {
  /** a superuser (or CREATEROLE + CREATEDB) URL; its database is only used to connect */
  adminUrl: string
  database: string
  roles: BootstrapRoles
  /** plain passwords (from env / files); a missing one leaves an existing password alone */
  passwords: Partial<Record<keyof BootstrapRoles, string>>
  dryRun?: boolean
  logger?: Logger
}

export interface BootstrapStep {
  description: string
  /** the SQL, passwords masked */
  sql: string
  /** null in a dry run */
  changed: boolean | null
}

export interface BootstrapResult {
  database: string
  dryRun: boolean
  steps: BootstrapStep[]
  changed: number
  /** connection URLs without passwords, for DATABASE_URL / MIGRATION_DATABASE_URL */
  urls: Record<keyof BootstrapRoles, string>
  warnings: string[]
}

const ROLE_NAME = /^[a-z_][a-z0-9_]{0,62}$/
/** "chargebt" as a bigint: one bootstrap at a time per cluster */
const BOOTSTRAP_LOCK_KEY = '7163082351322297460'

function quoteLiteral(value: string): string {
  return `'${value.replaceAll("'", "''")}'`
}

export function validateBootstrapNames(database: string, roles: BootstrapRoles): void {
  for (const [kind, name] of Object.entries(roles)) {
    if (!ROLE_NAME.test(name))
      throw new UsageError(`invalid ${kind} role name "${name}"`, {
        hint: 'Use lower-case letters, digits and underscores (e.g. charge_user).',
      })
  }
  if (new Set(Object.values(roles)).size !== 3)
    throw new UsageError('the app, migration and read-only roles must be three different roles')
  if (!/^[A-Za-z_][A-Za-z0-9_-]{0,62}$/.test(database))
    throw new UsageError(`invalid database name "${database}"`, {
      hint: 'Use letters, digits, _ and - (e.g. charge_analysis).',
    })
}

interface Step {
  description: string
  /** statements to run; `display` replaces secrets */
  statements: Array<{sql: string; display?: string}>
  /** a query whose result, before vs after, tells whether the step changed anything */
  probe?: string
  /** skip the step when this returns true (e.g. the role exists) */
  skip?: (client: Client) => Promise<boolean>
}

async function probeValue(client: Client, sql: string | undefined): Promise<string> {
  if (!sql) return ''
  const {rows} = await client.query(sql)
  return JSON.stringify(rows)
}

async function runSteps(client: Client, steps: Step[], dryRun: boolean, out: BootstrapStep[]): Promise<void> {
  for (const step of steps) {
    const display = step.statements.map((s) => s.display ?? s.sql).join(';\n') + ';'
    if (step.skip && (await step.skip(client))) {
      out.push({description: step.description, sql: display, changed: false})
      continue
    }
    if (dryRun) {
      out.push({description: step.description, sql: display, changed: null})
      continue
    }
    const before = await probeValue(client, step.probe)
    for (const s of step.statements) await client.query(s.sql)
    const after = await probeValue(client, step.probe)
    out.push({description: step.description, sql: display, changed: step.probe ? before !== after : true})
  }
}

async function roleExists(client: Client, role: string): Promise<boolean> {
  const {rows} = await client.query('SELECT 1 FROM pg_roles WHERE rolname = $1', [role])
  return rows.length > 0
}

/** The stored verifier, when we may read pg_authid (superuser); undefined when we cannot tell. */
async function storedPassword(client: Client, role: string): Promise<string | null | undefined> {
  try {
    const {rows} = await client.query<{p: string | null}>('SELECT rolpassword AS p FROM pg_authid WHERE rolname = $1', [
      role,
    ])
    return rows[0]?.p ?? null
  } catch {
    return undefined
  }
}

const ROLE_ATTRIBUTES = 'LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS INHERIT'

/** The SQL of a bootstrap, without passwords, in the order it runs. */
export interface BootstrapStatements {
  /** attributes every role is created with / converged to (`CREATE ROLE … WITH <these>`) */
  roleAttributes: string
  /** on the admin connection, when the database does not exist (not in a transaction) */
  createDatabase: string
  /** on the admin connection: who may connect */
  databaseAccess: string[]
  /** on the admin connection: the read-only role's per-database setting */
  readonlyDefaults: string[]
  /** inside the database: schema public owned by the migration role */
  schemaOwnership: string[]
  /** inside the database: privileges on what the migration role creates from now on */
  defaultPrivileges: string[]
  /** inside the database: grants on tables and sequences that already exist */
  existingGrants: string[]
}

/**
 * The statements `bootstrapDatabase` runs, as a pure function of the names: the one source of the
 * role / grant SQL, also rendered by `charge-ops init` into bootstrap.sql for psql.
 */
export function bootstrapStatements(database: string, roles: BootstrapRoles): BootstrapStatements {
  validateBootstrapNames(database, roles)
  const qdb = quoteIdent(database)
  const [app, mig, ro] = [quoteIdent(roles.app), quoteIdent(roles.migration), quoteIdent(roles.readonly)]
  return {
    roleAttributes: ROLE_ATTRIBUTES,
    createDatabase: `CREATE DATABASE ${qdb} WITH ENCODING 'UTF8' TEMPLATE template0`,
    databaseAccess: [
      `REVOKE CONNECT, TEMPORARY ON DATABASE ${qdb} FROM PUBLIC`,
      `GRANT CONNECT, TEMPORARY ON DATABASE ${qdb} TO ${app}, ${ro}`,
      // CREATE on the database: the migration role may add schemas and trusted extensions
      `GRANT CONNECT, TEMPORARY, CREATE ON DATABASE ${qdb} TO ${mig}`,
    ],
    readonlyDefaults: [`ALTER ROLE ${ro} IN DATABASE ${qdb} SET default_transaction_read_only = on`],
    schemaOwnership: [
      'REVOKE ALL ON SCHEMA public FROM PUBLIC',
      `ALTER SCHEMA public OWNER TO ${mig}`,
      `GRANT USAGE ON SCHEMA public TO ${app}, ${ro}`,
    ],
    defaultPrivileges: [
      `ALTER DEFAULT PRIVILEGES FOR ROLE ${mig} IN SCHEMA public GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO ${app}`,
      `ALTER DEFAULT PRIVILEGES FOR ROLE ${mig} IN SCHEMA public GRANT USAGE, SELECT ON SEQUENCES TO ${app}`,
      `ALTER DEFAULT PRIVILEGES FOR ROLE ${mig} IN SCHEMA public GRANT SELECT ON TABLES TO ${ro}`,
      `ALTER DEFAULT PRIVILEGES FOR ROLE ${mig} IN SCHEMA public GRANT SELECT ON SEQUENCES TO ${ro}`,
    ],
    existingGrants: [
      `GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO ${app}`,
      `GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO ${app}`,
      `GRANT SELECT ON ALL TABLES IN SCHEMA public TO ${ro}`,
      `GRANT SELECT ON ALL SEQUENCES IN SCHEMA public TO ${ro}`,
      // the application reads the migration history but never rewrites it
      `DO $$ BEGIN IF to_regclass('public.charge_ops_migrations') IS NOT NULL THEN REVOKE INSERT, UPDATE, DELETE, TRUNCATE ON public.charge_ops_migrations FROM ${app}; END IF; END $$`,
    ],
  }
}

const statementsOf = (list: string[]) => list.map((sql) => ({sql}))

/** Each role: created (with its password, if given) or its attributes and changed password set again. */
async function planRoleSteps(admin: Client, options: BootstrapOptions, warnings: string[]): Promise<Step[]> {
  const roleSteps: Step[] = []
  for (const kind of ['migration', 'app', 'readonly'] as const) {
    const role = options.roles[kind]
    const q = quoteIdent(role)
    const password = options.passwords[kind]
    const exists = await roleExists(admin, role)
    const verifier = password === undefined ? undefined : scramVerifier(password)
    const passwordClause = verifier ? ` PASSWORD ${quoteLiteral(verifier)}` : ''
    const passwordDisplay = verifier ? ` PASSWORD '${MASK}'` : ''
    const probe = `SELECT rolname, rolcanlogin, rolsuper, rolcreatedb, rolcreaterole, rolreplication, rolbypassrls, rolinherit FROM pg_roles WHERE rolname = ${quoteLiteral(role)}`
    if (!exists) {
      if (password === undefined)
        warnings.push(
          `role ${role} is created with no password yet; give one in ${envNameOf(kind)} or --${kind}-password-file and rerun before using it`,
        )
      roleSteps.push({
        description: `create ${kind} role ${role}`,
        statements: [
          {
            sql: `CREATE ROLE ${q} WITH ${ROLE_ATTRIBUTES}${passwordClause}`,
            display: `CREATE ROLE ${q} WITH ${ROLE_ATTRIBUTES}${passwordDisplay}`,
          },
        ],
        probe,
      })
      continue
    }
    roleSteps.push({
      description: `${kind} role ${role}: attributes`,
      statements: [{sql: `ALTER ROLE ${q} WITH ${ROLE_ATTRIBUTES}`}],
      probe,
    })
    if (password !== undefined) {
      const stored = await storedPassword(admin, role)
      const same = stored !== undefined && verifierMatches(stored, password)
      roleSteps.push({
        description: `${kind} role ${role}: password`,
        statements: [
          {
            sql: `ALTER ROLE ${q} WITH PASSWORD ${quoteLiteral(verifier!)}`,
            display: `ALTER ROLE ${q} WITH PASSWORD '${MASK}'`,
          },
        ],
        skip: async () => same,
      })
    }
  }
  return roleSteps
}

/** The database (CREATE DATABASE cannot run in a transaction; each query here autocommits), who may connect, read-only defaults. */
function databaseSteps(
  database: string,
  roles: BootstrapRoles,
  sql: ReturnType<typeof bootstrapStatements>,
  dbExists: boolean,
): Step[] {
  const dbAcl = `SELECT datacl::text FROM pg_database WHERE datname = ${quoteLiteral(database)}`
  return [
    {
      description: `create database ${database}`,
      statements: [{sql: sql.createDatabase}],
      skip: async () => dbExists,
    },
    {
      description: `database ${database}: only the three roles may connect`,
      statements: statementsOf(sql.databaseAccess),
      probe: dbAcl,
    },
    {
      description: `${roles.readonly}: read-only transactions by default in ${database}`,
      statements: statementsOf(sql.readonlyDefaults),
      probe: `SELECT setconfig::text FROM pg_db_role_setting s JOIN pg_roles r ON r.oid = s.setrole JOIN pg_database d ON d.oid = s.setdatabase WHERE r.rolname = ${quoteLiteral(roles.readonly)} AND d.datname = ${quoteLiteral(database)}`,
    },
  ]
}

/** Inside the database: schema ownership, default privileges, grants on what exists. */
function schemaStepsOf(roles: BootstrapRoles, sql: ReturnType<typeof bootstrapStatements>): Step[] {
  return [
    {
      description: 'schema public: owned by the migration role, no CREATE for PUBLIC',
      statements: statementsOf(sql.schemaOwnership),
      probe: `SELECT nspowner::regrole::text, nspacl::text FROM pg_namespace WHERE nspname = 'public'`,
    },
    {
      description: `default privileges on tables and sequences ${roles.migration} creates`,
      statements: statementsOf(sql.defaultPrivileges),
      probe: `SELECT defaclobjtype, defaclacl::text FROM pg_default_acl a JOIN pg_namespace n ON n.oid = a.defaclnamespace WHERE n.nspname = 'public' AND a.defaclrole = ${quoteLiteral(roles.migration)}::regrole ORDER BY 1`,
    },
    {
      description: 'grants on tables and sequences that already exist (a rerun after migrations)',
      statements: statementsOf(sql.existingGrants),
      probe: `SELECT c.relname, c.relacl::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p', 'v', 'm', 'S') ORDER BY 1`,
    },
  ]
}

export async function bootstrapDatabase(options: BootstrapOptions): Promise<BootstrapResult> {
  const logger = options.logger ?? silentLogger
  const {roles, database} = options
  validateBootstrapNames(database, roles)
  const dryRun = Boolean(options.dryRun)
  const warnings: string[] = []
  const steps: BootstrapStep[] = []
  const admin = await connect(options.adminUrl, {applicationName: 'charge-ops db bootstrap'})
  try {
    if (!dryRun) await admin.query('SELECT pg_advisory_lock($1::bigint)', [BOOTSTRAP_LOCK_KEY])
    const {rows: me} = await admin.query<{superuser: boolean; createrole: boolean; createdb: boolean}>(
      'SELECT rolsuper AS superuser, rolcreaterole AS createrole, rolcreatedb AS createdb FROM pg_roles WHERE rolname = current_user',
    )
    if (!me[0].superuser && !(me[0].createrole && me[0].createdb)) {
      throw new UsageError('the admin role may not create roles and databases', {
        hint: 'Use a superuser (postgres) or a role with CREATEROLE and CREATEDB for --admin-url.',
      })
    }

    // --- roles (cluster-wide)
    const roleSteps = await planRoleSteps(admin, options, warnings)
    await runSteps(admin, roleSteps, dryRun, steps)
    if (!dryRun) await faultPoint('db.bootstrap.roles-created')

    // --- the database (CREATE DATABASE cannot run in a transaction; each query here autocommits)
    const {rows: dbRows} = await admin.query('SELECT 1 FROM pg_database WHERE datname = $1', [database])
    const dbExists = dbRows.length > 0
    const sql = bootstrapStatements(database, roles)
    await runSteps(admin, databaseSteps(database, roles, sql, dbExists), dryRun, steps)
    // roles and database there, schema ownership and grants not yet: a rerun probes each and converges
    if (!dryRun) await faultPoint('db.bootstrap.database-created')

    // --- inside the database: schema ownership, grants, default privileges
    const schemaSteps = schemaStepsOf(roles, sql)
    if (dryRun && !dbExists) {
      await runSteps(
        admin,
        schemaSteps.map((s) => ({...s, probe: undefined})),
        true,
        steps,
      )
    } else {
      const inDb = await connect(withDatabase(options.adminUrl, database), {applicationName: 'charge-ops db bootstrap'})
      try {
        await runSteps(inDb, schemaSteps, dryRun, steps)
      } finally {
        await inDb.end().catch(() => {})
      }
    }
    if (!dryRun) await admin.query('SELECT pg_advisory_unlock($1::bigint)', [BOOTSTRAP_LOCK_KEY])
  } finally {
    await admin.end().catch(() => {})
  }

  const target = parseDatabaseUrl(options.adminUrl)
  const host = target.host.includes(':') ? `[${target.host}]` : target.host
  const url = (role: string) =>
    `postgresql://${role}@${host}:${target.port}/${encodeURIComponent(database)}${target.sslmode ? `?sslmode=${target.sslmode}` : ''}`
  const changed = steps.filter((s) => s.changed === true).length
  for (const w of warnings) logger.warn(w)
  return {
    database,
    dryRun,
    steps,
    changed,
    urls: {app: url(roles.app), migration: url(roles.migration), readonly: url(roles.readonly)},
    warnings,
  }
}

export function envNameOf(kind: keyof BootstrapRoles): string {
  return {app: 'APP_DB_PASSWORD', migration: 'MIGRATION_DB_PASSWORD', readonly: 'READONLY_DB_PASSWORD'}[kind]
}

/**
 * Reads a password from a secret file (first line, trailing newline dropped), registers it with the
 * redactor, and warns when the file is readable by group or others.
 */
export async function readPasswordFile(path: string, logger: Logger = silentLogger): Promise<string> {
  const {readFileSync, statSync} = await import('node:fs')
  const {registerSecret} = await import('../output/redact.js')
  let text: string
  try {
    const mode = statSync(path).mode & 0o777
    if ((mode & 0o077) !== 0)
      logger.warn(`${path} is readable by others (mode ${mode.toString(8).padStart(4, '0')}); chmod 600 ${path}`)
    text = readFileSync(path, 'utf8')
  } catch (error) {
    throw new UsageError(
      `cannot read the password file ${path}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`,
      {hint: 'Check the path and that this user may read it.'},
    )
  }
  const password = text.split(/\r?\n/)[0]
  if (!password) throw new UsageError(`the password file ${path} is empty`)
  registerSecret(password)
  return password
}

/** Passwords from --*-password-file, else APP_DB_PASSWORD / MIGRATION_DB_PASSWORD / READONLY_DB_PASSWORD. */
export async function collectPasswords(
  files: Partial<Record<keyof BootstrapRoles, string>>,
  env: NodeJS.ProcessEnv = process.env,
  logger: Logger = silentLogger,
): Promise<Partial<Record<keyof BootstrapRoles, string>>> {
  const {registerSecret} = await import('../output/redact.js')
  const out: Partial<Record<keyof BootstrapRoles, string>> = {}
  for (const kind of ['app', 'migration', 'readonly'] as const) {
    const file = files[kind]
    if (file) out[kind] = await readPasswordFile(file, logger)
    else if (env[envNameOf(kind)]) {
      out[kind] = env[envNameOf(kind)]
      registerSecret(out[kind])
    }
  }
  return out
}
