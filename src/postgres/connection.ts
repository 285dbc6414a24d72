/**
 * PostgreSQL connections for charge-ops: a pg client from a DATABASE_URL, the libpq environment
 * for child tools (pg_dump, pg_restore, psql, pg_basebackup: the password travels in PGPASSWORD,
 * never in argv), and a diagnosis of connection failures that names the likely cause.
 */
import type {Client, ClientConfig} from 'pg'

import {ConfigError, UnreachableError, type ErrorCode} from '../errors.js'
import {registerSecret} from '../output/redact.js'

export interface ConnectionTarget {
  host: string
  port: number
  user: string
  password?: string
  database: string
  /** libpq sslmode from the URL's query (?sslmode=require) */
  sslmode?: string
}

/** Parses a postgresql:// (or postgres://) URL; errors never echo the URL's password. */
export function parseDatabaseUrl(url: string): ConnectionTarget {
  let parsed: URL
  try {
    parsed = new URL(url)
  } catch {
    throw new ConfigError('DATABASE_URL is not a valid URL', {hint: 'Use postgresql://USER:PASSWORD@HOST:5432/DBNAME'})
  }
  if (!['postgresql:', 'postgres:'].includes(parsed.protocol)) {
    throw new ConfigError(`DATABASE_URL must start with postgresql://, not ${parsed.protocol}//`, {
      hint: 'Use postgresql://USER:PASSWORD@HOST:5432/DBNAME',
    })
  }
  // the raw password is a secret even when it does not decode: never let it reach an error
  registerSecret(parsed.password)
  const password = parsed.password ? decodeUrlPart(parsed.password, 'password') : undefined
  registerSecret(password)
  return {
    host: decodeUrlPart(parsed.hostname, 'host') || parsed.searchParams.get('host') || 'localhost',
    port: parsed.port ? Number(parsed.port) : 5432,
    user: parsed.username ? decodeUrlPart(parsed.username, 'user name') : 'postgres',
    password,
    database: decodeUrlPart(parsed.pathname.replace(/^\//, ''), 'database name') || 'postgres',
    sslmode: parsed.searchParams.get('sslmode') ?? undefined,
  }
}

/**
 * decodeURIComponent, but a malformed escape (`%zz`, a lone `%`) is a configuration error that
 * names the part of the URL — never its text, which may be the password — not a URIError (exit 70).
 */
function decodeUrlPart(text: string, part: string): string {
  try {
    return decodeURIComponent(text)
  } catch {
    throw new ConfigError(
      `DATABASE_URL: the ${part} has a malformed percent-escape (a % not followed by two hex digits)`,
      {
        code: 'DATABASE_URL_INVALID',
        hint: 'Percent-encode special characters in the URL: % is %25, @ is %40, : is %3A, / is %2F (e.g. node -p "encodeURIComponent(process.argv[1])" \'p@ss%\').',
      },
    )
  }
}

/** Builds a URL for the same server, another database (keeps credentials and options). */
export function withDatabase(url: string, database: string): string {
  const parsed = new URL(url)
  parsed.pathname = `/${encodeURIComponent(database)}`
  return parsed.toString()
}

/** libpq environment for child tools; merge into the child's env. */
export function libpqEnv(target: ConnectionTarget): Record<string, string> {
  const env: Record<string, string> = {
    PGHOST: target.host,
    PGPORT: String(target.port),
    PGUSER: target.user,
    PGDATABASE: target.database,
    // Never let a child fall back to a prompt: unattended runs must fail, not hang.
    PGCONNECT_TIMEOUT: '10',
  }
  if (target.password !== undefined) env.PGPASSWORD = target.password
  if (target.sslmode) env.PGSSLMODE = target.sslmode
  return env
}

export function clientConfig(
  target: ConnectionTarget,
  options: {connectTimeoutMs?: number; applicationName?: string} = {},
): ClientConfig {
  const ssl =
    target.sslmode && !['disable', 'allow', 'prefer'].includes(target.sslmode)
      ? {rejectUnauthorized: target.sslmode.startsWith('verify')}
      : undefined
  return {
    host: target.host,
    port: target.port,
    user: target.user,
    password: target.password,
    database: target.database,
    ssl,
    connectionTimeoutMillis: options.connectTimeoutMs ?? 10_000,
    application_name: options.applicationName ?? 'charge-ops',
  }
}

/** Opens a connected pg Client (pg is loaded lazily: only commands that talk to PostgreSQL pay for it). */
export async function connect(
  urlOrTarget: string | ConnectionTarget,
  options: {connectTimeoutMs?: number; applicationName?: string} = {},
): Promise<Client> {
  const target = typeof urlOrTarget === 'string' ? parseDatabaseUrl(urlOrTarget) : urlOrTarget
  const {default: pg} = await import('pg')
  const client = new pg.Client(clientConfig(target, options))
  // A server that goes away must not crash the process with an unhandled 'error' event.
  client.on('error', () => {})
  try {
    await client.connect()
  } catch (error) {
    await client.end().catch(() => {})
    throw diagnoseConnectionError(error, target)
  }
  return client
}

/** Runs `fn` with a connected client and always closes it. */
export async function withClient<T>(
  url: string | ConnectionTarget,
  fn: (client: Client) => Promise<T>,
  options?: {connectTimeoutMs?: number; applicationName?: string},
): Promise<T> {
  const client = await connect(url, options)
  try {
    return await fn(client)
  } finally {
    await client.end().catch(() => {})
  }
}

/** Turns a pg / socket error into an UnreachableError naming the likely cause and the fix. */
export function diagnoseConnectionError(error: unknown, target: ConnectionTarget): UnreachableError {
  const err = error as {code?: string; message?: string}
  const where = `${target.host}:${target.port}`
  const make = (code: ErrorCode, message: string, hint: string) =>
    new UnreachableError(message, {
      code,
      hint,
      cause: error,
      data: {host: target.host, port: target.port, database: target.database, user: target.user},
    })
  switch (err?.code) {
    case 'ECONNREFUSED':
      return make(
        'PG_REFUSED',
        `PostgreSQL at ${where} refused the connection`,
        'Is the server running and listening on that address (listen_addresses, port)? Check firewalls / security groups.',
      )
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
      return make(
        'PG_DNS',
        `PostgreSQL host "${target.host}" does not resolve (DNS)`,
        'Check the host name in DATABASE_URL and that DNS points at the right instance.',
      )
    case 'ETIMEDOUT':
    case 'EHOSTUNREACH':
    case 'ENETUNREACH':
      return make(
        'PG_TIMEOUT',
        `PostgreSQL at ${where} did not answer (timeout)`,
        'A firewall or security group is probably dropping the traffic; check the route to the server.',
      )
    case '28P01':
      return make(
        'PG_AUTH',
        `PostgreSQL rejected the password for user "${target.user}"`,
        'Check the password in DATABASE_URL (or the secret it comes from).',
      )
    case '28000':
      return /no pg_hba\.conf entry/.test(err.message ?? '')
        ? make(
            'PG_HBA',
            `pg_hba.conf on ${where} has no entry for user "${target.user}" from this host${/SSL off|no encryption/.test(err.message ?? '') ? ' without SSL' : ''}`,
            'Add a hostssl/host line for this client in pg_hba.conf (scram-sha-256), or connect with ?sslmode=require if only SSL connections are allowed.',
          )
        : make(
            'PG_AUTH',
            `PostgreSQL refused user "${target.user}": ${err.message}`,
            'Check the role exists and may log in.',
          )
    case '3D000':
      return make(
        'PG_NO_DATABASE',
        `database "${target.database}" does not exist on ${where}`,
        'Create it (charge-ops db bootstrap) or fix the database name in DATABASE_URL.',
      )
    case '57P03':
      return make(
        'PG_STARTING',
        `PostgreSQL at ${where} is starting up or shutting down`,
        'Wait for it to finish starting and retry.',
      )
    default:
      break
  }
  const message = err?.message ?? String(error)
  if (/does not support SSL|SSL off|server does not support SSL/i.test(message)) {
    return make(
      'PG_SSL',
      `PostgreSQL at ${where} does not accept SSL but sslmode requires it`,
      'Enable ssl=on on the server, or change sslmode in DATABASE_URL.',
    )
  }
  if (/timeout/i.test(message)) {
    return make(
      'PG_TIMEOUT',
      `PostgreSQL at ${where} did not answer in time`,
      'Check the network path, firewall and that the server is up.',
    )
  }
  return make(
    'PG_UNREACHABLE',
    `cannot connect to PostgreSQL at ${where}: ${message}`,
    'Check DATABASE_URL and that the server is reachable.',
  )
}

/** The server's major version (e.g. 15) from server_version_num. */
export async function serverMajorVersion(client: Client): Promise<number> {
  const {rows} = await client.query<{v: string}>("SELECT current_setting('server_version_num') AS v")
  return Math.floor(Number(rows[0].v) / 10_000)
}
