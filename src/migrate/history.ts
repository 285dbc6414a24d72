/**
 * The history table `charge_ops_migrations`: one row per applied (or baselined, or failed
 * no-transaction) migration. A transactional migration's row is written in the migration's own
 * transaction, so the row exists exactly when the schema change does.
 */
import type {Client} from 'pg'
import {quoteIdent} from '../postgres/sql.js'

export const HISTORY_TABLE = 'charge_ops_migrations'

export type HistoryKind = 'sql' | 'baseline'

export interface HistoryRow {
  version: string
  name: string
  checksum: string
  appliedAt: string
  executionMs: number
  appliedBy: string
  /** false: a no-transaction migration that failed or was interrupted (may be partly applied) */
  success: boolean
  kind: HistoryKind
}

const CREATE_SQL = `
CREATE TABLE IF NOT EXISTS ${HISTORY_TABLE} (
  version      text PRIMARY KEY CHECK (version ~ '^[0-9]+$'),
  name         text NOT NULL,
  checksum     text NOT NULL,
  applied_at   timestamptz NOT NULL DEFAULT now(),
  execution_ms integer NOT NULL DEFAULT 0,
  applied_by   text NOT NULL DEFAULT current_user,
  success      boolean NOT NULL DEFAULT true,
  kind         text NOT NULL DEFAULT 'sql' CHECK (kind IN ('sql', 'baseline'))
)`

/** Quoted name of the history table in the connection's current schema, or null when absent. */
export async function historyTableExists(client: Client): Promise<boolean> {
  const {rows} = await client.query<{t: string | null}>(`SELECT to_regclass($1) AS t`, [HISTORY_TABLE])
  return rows[0].t !== null
}

/**
 * Creates the history table when missing. The application role gets default privileges on the
 * migration role's tables (db bootstrap); it may read the history but never rewrite it.
 */
export async function ensureHistoryTable(client: Client): Promise<void> {
  if (await historyTableExists(client)) return
  await client.query('BEGIN')
  try {
    await client.query(CREATE_SQL)
    const {rows} = await client.query<{grantee: string}>(
      `SELECT DISTINCT grantee FROM information_schema.role_table_grants
        WHERE table_name = $1 AND table_schema = current_schema() AND privilege_type IN ('INSERT','UPDATE','DELETE','TRUNCATE')
          AND grantee <> current_user AND grantee <> (SELECT tableowner FROM pg_tables WHERE tablename = $1 AND schemaname = current_schema())`,
      [HISTORY_TABLE],
    )
    for (const {grantee} of rows) {
      await client.query(
        `REVOKE INSERT, UPDATE, DELETE, TRUNCATE ON ${HISTORY_TABLE} FROM ${grantee === 'PUBLIC' ? 'PUBLIC' : quoteIdent(grantee)}`,
      )
    }
    await client.query('COMMIT')
  } catch (error) {
    await client.query('ROLLBACK').catch(() => {})
    // Another runner created it between our check and CREATE (no lock for dry runs / status).
    if ((error as {code?: string}).code === '23505' || (error as {code?: string}).code === '42P07') return
    throw error
  }
}

export async function readHistory(client: Client): Promise<HistoryRow[]> {
  if (!(await historyTableExists(client))) return []
  const {rows} = await client.query<{
    version: string
    name: string
    checksum: string
    applied_at: Date
    execution_ms: number
    applied_by: string
    success: boolean
    kind: HistoryKind
  }>(
    `SELECT version, name, checksum, applied_at, execution_ms, applied_by, success, kind FROM ${HISTORY_TABLE} ORDER BY version::numeric`,
  )
  return rows.map((r) => ({
    version: r.version,
    name: r.name,
    checksum: r.checksum,
    appliedAt: r.applied_at.toISOString(),
    executionMs: r.execution_ms,
    appliedBy: r.applied_by,
    success: r.success,
    kind: r.kind,
  }))
}

export async function insertHistory(
  client: Client,
  row: {
    version: string
    name: string
    checksum: string
    executionMs: number
    appliedBy: string
    success: boolean
    kind: HistoryKind
  },
): Promise<void> {
  await client.query(
    `INSERT INTO ${HISTORY_TABLE} (version, name, checksum, execution_ms, applied_by, success, kind) VALUES ($1, $2, $3, $4, $5, $6, $7)
     ON CONFLICT (version) DO UPDATE SET name = EXCLUDED.name, checksum = EXCLUDED.checksum, applied_at = now(),
       execution_ms = EXCLUDED.execution_ms, applied_by = EXCLUDED.applied_by, success = EXCLUDED.success, kind = EXCLUDED.kind`,
    [row.version, row.name, row.checksum, row.executionMs, row.appliedBy, row.success, row.kind],
  )
}

export async function markSucceeded(client: Client, version: string, executionMs: number): Promise<void> {
  await client.query(
    `UPDATE ${HISTORY_TABLE} SET success = true, execution_ms = $2, applied_at = now() WHERE version = $1`,
    [version, executionMs],
  )
}

export async function deleteHistory(client: Client, version: string): Promise<void> {
  await client.query(`DELETE FROM ${HISTORY_TABLE} WHERE version = $1`, [version])
}

export async function updateChecksum(client: Client, version: string, checksum: string, name: string): Promise<void> {
  await client.query(`UPDATE ${HISTORY_TABLE} SET checksum = $2, name = $3 WHERE version = $1`, [
    version,
    checksum,
    name,
  ])
}
