import pg from 'pg'

export type Pool = pg.Pool
export type PoolClient = pg.PoolClient

/**
 * sslmode as libpq (and charge-ops) reads it: `require` encrypts without verifying the server's
 * certificate, only `verify-ca` / `verify-full` verify. node-postgres alone would treat `require`
 * as verify-full and refuse the compose stack's self-signed PostgreSQL certificate.
 */
export function poolTarget(databaseUrl: string): {connectionString: string; ssl?: {rejectUnauthorized: boolean}} {
  let url: URL
  try {
    url = new URL(databaseUrl)
  } catch {
    return {connectionString: databaseUrl}
  }
  const mode = url.searchParams.get('sslmode')
  if (!mode) return {connectionString: databaseUrl}
  url.searchParams.delete('sslmode')
  const ssl = ['disable', 'allow', 'prefer'].includes(mode)
    ? undefined
    : {rejectUnauthorized: mode.startsWith('verify')}
  return {connectionString: url.toString(), ...(ssl ? {ssl} : {})}
}

export function createPool(databaseUrl: string, options: {max?: number; applicationName: string}): pg.Pool {
  const pool = new pg.Pool({
    ...poolTarget(databaseUrl),
    max: options.max ?? 10,
    application_name: options.applicationName,
    connectionTimeoutMillis: 5000,
  })
  // An idle client losing its server must not crash the process: the next query reconnects.
  pool.on('error', () => {})
  return pool
}

export async function inTransaction<T>(pool: pg.Pool, fn: (client: pg.PoolClient) => Promise<T>): Promise<T> {
  const client = await pool.connect()
  try {
    await client.query('BEGIN')
    const result = await fn(client)
    await client.query('COMMIT')
    return result
  } catch (error) {
    await client.query('ROLLBACK').catch(() => {})
    throw error
  } finally {
    client.release()
  }
}

/** Fails clearly when the schema has not been migrated (the service never migrates itself). */
export async function assertSchema(pool: pg.Pool): Promise<void> {
  const {rows} = await pool.query<{missing: string[]}>(
    `SELECT array_agg(t) FILTER (WHERE to_regclass(t) IS NULL) AS missing
       FROM unnest(ARRAY['uploads','analyses','findings','knowledge_passages','finding_passages','service_meta']) AS t`,
  )
  const missing = rows[0]?.missing ?? []
  if (missing && missing.length > 0) {
    throw new Error(
      `the database schema is not migrated (missing tables: ${missing.join(', ')}); run \`charge-ops migrate up\``,
    )
  }
}
