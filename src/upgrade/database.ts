/**
 * What the upgrade asks of the stack's database: the schema head, the migrations a rollback would
 * revert, the orphaned session of a killed migration run, and the restore of the step-1 backup.
 */
import {hostname} from 'node:os'

import type {Client} from 'pg'

import type {Logger} from '../output/logger.js'
import {quoteIdent} from '../postgres/sql.js'

/** The highest successfully applied migration (null: none / no history table). */
export async function schemaHead(client: Client): Promise<string | null> {
  const exists = await client.query<{t: string | null}>(`SELECT to_regclass('charge_ops_migrations')::text AS t`)
  if (!exists.rows[0]?.t) return null
  const {rows} = await client.query<{version: string}>(
    `SELECT version FROM charge_ops_migrations WHERE success ORDER BY version::numeric DESC LIMIT 1`,
  )
  return rows[0]?.version ?? null
}

export async function readSchemaHead(databaseUrl: string): Promise<string | null> {
  const {withClient} = await import('../postgres/connection.js')
  return withClient(databaseUrl, (c) => schemaHead(c), {connectTimeoutMs: 5000})
}

/** Applied versions above `head`, and failed (interrupted no-transaction) entries. */
export async function appliedAbove(
  databaseUrl: string,
  head: string | null,
): Promise<{versions: string[]; failed: string[]}> {
  const {withClient} = await import('../postgres/connection.js')
  return withClient(databaseUrl, async (client) => {
    const exists = await client.query<{t: string | null}>(`SELECT to_regclass('charge_ops_migrations')::text AS t`)
    if (!exists.rows[0]?.t) return {versions: [], failed: []}
    const {rows} = await client.query<{version: string; success: boolean}>(
      `SELECT version, success FROM charge_ops_migrations ORDER BY version::numeric`,
    )
    const above = rows.filter((r) => head === null || BigInt(r.version) > BigInt(head))
    return {
      versions: above.filter((r) => r.success).map((r) => r.version),
      failed: rows.filter((r) => !r.success).map((r) => r.version),
    }
  })
}

/**
 * A migration run killed mid-statement leaves its PostgreSQL session working (and holding the
 * migration advisory lock) until the statement ends. Sessions whose application_name names a
 * charge-ops migrate process of this host that no longer exists are terminated, which rolls their
 * transaction back at once.
 */
export async function terminateOrphanedMigrationSessions(databaseUrl: string, logger?: Logger): Promise<number[]> {
  const {withClient} = await import('../postgres/connection.js')
  const host = hostname()
  return withClient(databaseUrl, async (client) => {
    const {rows} = await client.query<{pid: number; application_name: string}>(
      `SELECT pid, application_name FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid() AND application_name LIKE 'charge-ops migrate (pid %'`,
    )
    const killed: number[] = []
    for (const row of rows) {
      const m = /^charge-ops migrate \(pid (\d+) on (.+)\)$/.exec(row.application_name)
      if (!m || m[2] !== host) continue
      const runner = Number(m[1])
      let alive = true
      try {
        process.kill(runner, 0)
      } catch (error) {
        alive = (error as NodeJS.ErrnoException).code === 'EPERM'
      }
      if (alive) continue
      logger?.warn(
        `terminating PostgreSQL session ${row.pid} of the killed migration run (pid ${runner}): its transaction is rolled back`,
      )
      await client.query('SELECT pg_terminate_backend($1)', [row.pid])
      killed.push(row.pid)
    }
    // pg_terminate_backend returns before the backend is gone (and its locks released).
    for (let i = 0; i < 50 && killed.length > 0; i++) {
      const left = await client.query(`SELECT 1 FROM pg_stat_activity WHERE pid = ANY($1::int[])`, [killed])
      if (left.rowCount === 0) break
      await new Promise((r) => setTimeout(r, 100))
    }
    return killed
  })
}

/** Non-system schemas of the database. */
export async function userSchemas(client: Client): Promise<string[]> {
  const {rows} = await client.query<{nspname: string}>(
    `SELECT nspname FROM pg_namespace WHERE nspname NOT IN ('information_schema') AND nspname NOT LIKE 'pg\\_%' ORDER BY nspname`,
  )
  return rows.map((r) => r.nspname)
}

/**
 * Empties the database for a full restore of the step-1 dump: drops the schemas that were not
 * there before the upgrade and recreates `public` (with its owner and grants) empty. The service is
 * stopped at this point; other sessions of the database are terminated first.
 */
export async function resetSchemasForRestore(databaseUrl: string, keep: string[], logger?: Logger): Promise<void> {
  const {withClient} = await import('../postgres/connection.js')
  await withClient(databaseUrl, async (client) => {
    await client.query(
      `SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()`,
    )
    const schemas = await userSchemas(client)
    const owner = await client.query<{owner: string; acl: string[] | null}>(
      `SELECT pg_get_userbyid(nspowner) AS owner, nspacl::text[] AS acl FROM pg_namespace WHERE nspname = 'public'`,
    )
    await client.query('BEGIN')
    try {
      for (const schema of schemas) {
        if (schema === 'public' || !keep.includes(schema)) {
          logger?.info(`dropping schema ${schema} for the restore`)
          await client.query(`DROP SCHEMA ${quoteIdent(schema)} CASCADE`)
        }
      }
      // The dump recreates every schema it holds except public (pg_dump leaves public to the target).
      for (const schema of schemas)
        if (schema !== 'public' && keep.includes(schema))
          await client.query(`DROP SCHEMA IF EXISTS ${quoteIdent(schema)} CASCADE`)
      await client.query(`CREATE SCHEMA public`)
      const row = owner.rows[0]
      if (row) {
        await client.query(`ALTER SCHEMA public OWNER TO ${quoteIdent(row.owner)}`)
        await client.query(`REVOKE ALL ON SCHEMA public FROM PUBLIC`)
        for (const item of row.acl ?? []) {
          // aclitem text: grantee=privs/grantor ("" grantee = PUBLIC)
          const m = /^("?)(.*)\1=([a-zA-Z*]*)\/.+$/.exec(item)
          if (!m) continue
          const grantee = m[2] === '' ? 'PUBLIC' : quoteIdent(m[2]!)
          const privileges = [m[3]!.includes('U') ? 'USAGE' : '', m[3]!.includes('C') ? 'CREATE' : ''].filter(Boolean)
          if (privileges.length > 0) await client.query(`GRANT ${privileges.join(', ')} ON SCHEMA public TO ${grantee}`)
        }
      } else {
        await client.query(`REVOKE ALL ON SCHEMA public FROM PUBLIC`)
      }
      await client.query('COMMIT')
    } catch (error) {
      await client.query('ROLLBACK').catch(() => {})
      throw error
    }
  })
}

/** Whether the connecting role is a superuser (pg_restore then keeps owners and grants). */
export async function isSuperuser(databaseUrl: string): Promise<boolean> {
  const {withClient} = await import('../postgres/connection.js')
  return withClient(
    databaseUrl,
    async (c) => (await c.query<{s: string}>(`SELECT current_setting('is_superuser') AS s`)).rows[0]?.s === 'on',
  )
}
