/**
 * One migration runner per database: a session-level advisory lock held by the runner's own
 * connection (a direct connection: through PgBouncer in transaction mode the lock would not stick
 * to the session). A crashed runner's lock goes away with its connection — unless the runner died
 * while one of its statements ran: its session then lives on, holding the lock, until it next reads
 * from the socket; the next run recognises the dead runner by name and takes the lock over.
 */
import {hostname} from 'node:os'

import type {Client} from 'pg'

import {pidAlive} from '../core/proc/pid.js'
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
  const {rows} = await client.query<{ok: boolean}>('SELECT pg_try_advisory_lock($1::bigint) AS ok', [
    MIGRATION_LOCK_KEY,
  ])
  return rows[0].ok
}

export async function unlock(client: Client): Promise<void> {
  await client.query('SELECT pg_advisory_unlock($1::bigint)', [MIGRATION_LOCK_KEY])
}

/** Who holds the lock (pg_locks splits a bigint key into classid = high 32 bits, objid = low 32 bits). */
export async function lockHolder(client: Client): Promise<LockHolder | undefined> {
  const {rows} = await client.query<{
    pid: number
    application_name: string
    usename: string
    client_addr: string | null
    backend_start: Date | null
    state: string | null
  }>(
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
  return {
    pid: r.pid,
    applicationName: r.application_name,
    user: r.usename,
    clientAddr: r.client_addr,
    since: r.backend_start ? r.backend_start.toISOString() : null,
    state: r.state,
  }
}

/**
 * The pid of the charge-ops run whose session holds the lock, when that run was on this host and no
 * longer runs. Every run names itself in its session's application_name (engine.ts: `charge-ops
 * migrate (pid N on HOST)`, cut at 63 bytes by PostgreSQL: a cut host name is compared as a prefix).
 * A killed run's session outlives it while a statement runs — PostgreSQL notices the closed socket
 * only when it next reads — and keeps the lock: that session has no client left to answer to.
 */
export function deadRunOf(holder: LockHolder): number | undefined {
  const m = /^charge-ops migrate \(pid (\d+) on ([^)]*)(\)?)$/.exec(holder.applicationName)
  if (!m) return undefined
  const host = hostname()
  if (!(m[3] ? m[2] === host : host.startsWith(m[2]) && m[2].length > 0)) return undefined
  const pid = Number(m[1])
  return pidAlive(pid) ? undefined : pid
}

/**
 * Takes the lock, polling until `waitMs` has passed (0: fail at once). A lock held by the session of
 * a dead run (deadRunOf) is taken over: that session is ended (its transaction rolls back) and the
 * lock taken once it is gone. Otherwise throws LockHeldError (exit 4) naming the holder.
 */
export async function acquireMigrationLock(
  client: Client,
  options: {
    waitMs?: number
    pollMs?: number
    onWait?: (holder: LockHolder | undefined) => void
    onTakeover?: (holder: LockHolder, deadPid: number) => void
  } = {},
): Promise<void> {
  const deadline = Date.now() + (options.waitMs ?? 0)
  let announced = false
  for (;;) {
    if (await tryLock(client)) return
    const holder = await lockHolder(client)
    const deadPid = holder && deadRunOf(holder)
    if (holder && deadPid !== undefined && (await endSession(client, holder.pid))) {
      options.onTakeover?.(holder, deadPid)
      continue
    }
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
    await new Promise((resolve) =>
      setTimeout(resolve, Math.min(options.pollMs ?? 250, Math.max(10, deadline - Date.now()))),
    )
  }
}

/** Ends a server session and waits (up to 30 s) until it is gone; false when it may not be ended (no privilege). */
async function endSession(client: Client, pid: number): Promise<boolean> {
  try {
    const {rows} = await client.query<{ok: boolean}>('SELECT pg_terminate_backend($1) AS ok', [pid])
    if (!rows[0].ok) return false
  } catch {
    return false // not the same role and no pg_signal_backend: report the holder as before
  }
  // pg_terminate_backend only signals: the lock goes when the backend has exited
  const deadline = Date.now() + 30_000
  while (Date.now() < deadline) {
    const {rows} = await client.query<{n: string}>('SELECT count(*) AS n FROM pg_stat_activity WHERE pid = $1', [pid])
    if (rows[0].n === '0') return true
    await new Promise((resolve) => setTimeout(resolve, 50))
  }
  return true
}
