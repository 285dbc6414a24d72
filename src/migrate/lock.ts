/**
 * One migration runner per database: a session-level advisory lock held by the runner's own
 * connection (a direct connection: through PgBouncer in transaction mode the lock would not stick
 * to the session). A crashed runner's lock goes away with its connection.
 */
import type {Client} from 'pg'

import {LockHeldError} from '../errors.js'

/** "chargops" as a bigint: stable across versions, so old and new charge-ops exclude each other. */
export const MIGRATION_LOCK_KEY = '7163082351322296435'

export interface LockHolder {
  pid: number
  applicationName: string
  user: string
  clientAddr: string | null
  since: string | null
  state: string | null
}

export async function tryLock(client: Client): Promise<boolean> {
  const {rows} = await client.query<{ok: boolean}>('SELECT pg_try_advisory_lock($1::bigint) AS ok', [MIGRATION_LOCK_KEY])
  return rows[0].ok
}

export async function unlock(client: Client): Promise<void> {
  await client.query('SELECT pg_advisory_unlock($1::bigint)', [MIGRATION_LOCK_KEY])
}

/** Who holds the lock (pg_locks splits a bigint key into classid = high 32 bits, objid = low 32 bits). */
export async function lockHolder(client: Client): Promise<LockHolder | undefined> {
  const {rows} = await client.query<{pid: number; application_name: string; usename: string; client_addr: string | null; backend_start: Date | null; state: string | null}>(
    `SELECT a.pid, a.application_name, a.usename, host(a.client_addr) AS client_addr, a.backend_start, a.state
       FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
      WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1
        AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
        AND l.classid::bigint = ($1::bigint >> 32) AND l.objid::bigint = ($1::bigint & 4294967295)
      LIMIT 1`,
    [MIGRATION_LOCK_KEY],
  )
  const r = rows[0]
  if (!r) return undefined
  return {pid: r.pid, applicationName: r.application_name, user: r.usename, clientAddr: r.client_addr, since: r.backend_start ? r.backend_start.toISOString() : null, state: r.state}
}

/**
 * Takes the lock, polling until `waitMs` has passed (0: fail at once). Throws LockHeldError
 * (exit 4) naming the holder.
 */
export async function acquireMigrationLock(client: Client, options: {waitMs?: number; pollMs?: number; onWait?: (holder: LockHolder | undefined) => void} = {}): Promise<void> {
  const deadline = Date.now() + (options.waitMs ?? 0)
  let announced = false
  for (;;) {
    if (await tryLock(client)) return
    const holder = await lockHolder(client)
    if (Date.now() >= deadline) {
      const who = holder
        ? `pid ${holder.pid}${holder.applicationName ? ` (${holder.applicationName})` : ''}, user ${holder.user}${holder.clientAddr ? ` from ${holder.clientAddr}` : ''}, connected since ${holder.since}`
        : 'a session that just released it'
      throw new LockHeldError(`another migration run holds the migration lock: ${who}`, {
        hint: options.waitMs
          ? `It did not finish within the --lock-wait time. Wait for it, or if it is stuck, end it with SELECT pg_terminate_backend(${holder?.pid ?? '<pid>'}).`
          : `Wait for it to finish, or rerun with --lock-wait 60s to wait. If it is stuck: SELECT pg_terminate_backend(${holder?.pid ?? '<pid>'}).`,
        data: {holder},
      })
    }
    if (!announced) {
      options.onWait?.(holder)
      announced = true
    }
    await new Promise((resolve) => setTimeout(resolve, Math.min(options.pollMs ?? 250, Math.max(10, deadline - Date.now()))))
  }
}
