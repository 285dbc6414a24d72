/**
 * Bounds on `backup base`'s waits. `pg_basebackup -X none` makes the SERVER wait, at the end of
 * the backup, until the backup's last WAL segment is archived (wait event BackupWaitWalArchive);
 * when archive_command fails that wait never ends, and our own `--wal-timeout` would only start
 * counting after it. So a monitor connection watches our walsender (found by its
 * application_name) and, once it has waited `timeoutSec` for the archive, we stop pg_basebackup,
 * terminate the walsender (it does not notice its client is gone while it waits) and report what
 * `pg_stat_archiver` says. SIGTERM / SIGINT take the same clean-up path.
 */
import type {Client} from 'pg'

import {UnreachableError} from '../errors.js'
import type {Logger} from '../output/logger.js'
import type {ConnectionTarget} from '../postgres/connection.js'

export interface ArchiverStatus {
  lastArchivedWal: string | null
  lastArchivedAt: string | null
  lastFailedWal: string | null
  lastFailedAt: string | null
  failedCount: number
}

export async function readArchiverStatus(client: Client): Promise<ArchiverStatus> {
  const {rows} = await client.query<{
    la: string | null
    lat: Date | null
    lf: string | null
    lft: Date | null
    fc: string
  }>(
    'SELECT last_archived_wal AS la, last_archived_time AS lat, last_failed_wal AS lf, last_failed_time AS lft, failed_count::text AS fc FROM pg_stat_archiver',
  )
  const r = rows[0]
  return {
    lastArchivedWal: r.la,
    lastArchivedAt: r.lat?.toISOString() ?? null,
    lastFailedWal: r.lf,
    lastFailedAt: r.lft?.toISOString() ?? null,
    failedCount: Number(r.fc),
  }
}

export function describeArchiver(status: ArchiverStatus | undefined): string {
  if (!status) return 'pg_stat_archiver could not be read'
  const failed = status.lastFailedWal
    ? `archive_command last failed on ${status.lastFailedWal} at ${status.lastFailedAt} (${status.failedCount} failures)`
    : 'archive_command has not failed'
  return `pg_stat_archiver: ${failed}; last archived ${status.lastArchivedWal ? `${status.lastArchivedWal} at ${status.lastArchivedAt}` : 'never'}`
}

/** Exit 5: the backup's WAL did not reach the repository in time (archiving is down or too slow). */
export function walNotArchivedError(
  id: string,
  what: string,
  timeoutSec: number,
  status: ArchiverStatus | undefined,
): UnreachableError {
  return new UnreachableError(
    `backup ${id}: ${what} within ${timeoutSec}s — ${describeArchiver(status)}. pg_basebackup was stopped, the lock released; the backup is left incomplete (no manifest)`,
    {
      code: 'BACKUP_WAL_NOT_ARCHIVED',
      hint: "The server log has archive_command's error; fix it, check with `charge-ops wal check`, then run `backup base` again (or raise --wal-timeout if archiving is only slow).",
      data: {archiver: status},
    },
  )
}

export interface ArchiveWaitMonitor {
  /** resolves when our walsender has waited `timeoutSec` for the archive (never rejects) */
  expired: Promise<{walsenderPid: number}>
  /** terminates our walsender (if any), reads pg_stat_archiver */
  abort(): Promise<ArchiverStatus | undefined>
  stop(): Promise<void>
}

/**
 * Watches the walsender serving `applicationName`. A monitor that cannot connect is reported once
 * and leaves the wait unbounded (the data phase still runs: a backup is not refused for it).
 */
export async function watchArchiveWait(
  target: ConnectionTarget,
  applicationName: string,
  timeoutSec: number,
  logger: Logger,
  pollMs = 500,
): Promise<ArchiveWaitMonitor> {
  const {connect} = await import('../postgres/connection.js')
  let client: Client | undefined
  try {
    client = await connect(target, {applicationName: `${applicationName} (monitor)`, connectTimeoutMs: 10_000})
  } catch (error) {
    logger.warn(`cannot watch the server's wait for the WAL archive (${(error as Error).message}); it is not bounded`)
  }
  let stopped = false
  let walsenderPid: number | undefined
  let timer: NodeJS.Timeout | undefined
  const expired = new Promise<{walsenderPid: number}>((resolve) => {
    if (!client) return
    let since: number | undefined
    const poll = async () => {
      if (stopped) return
      try {
        const {rows} = await client!.query<{pid: number; wait_event: string | null}>(
          "SELECT pid, wait_event FROM pg_stat_activity WHERE application_name = $1 AND backend_type = 'walsender'",
          [applicationName],
        )
        walsenderPid = rows[0]?.pid ?? walsenderPid
        if (rows[0]?.wait_event === 'BackupWaitWalArchive') {
          since ??= Date.now()
          if (Date.now() - since >= timeoutSec * 1000) return resolve({walsenderPid: rows[0].pid})
        } else since = undefined
      } catch {
        // a lost monitor connection ends the watch; the backup goes on
        return
      }
      if (!stopped) timer = setTimeout(() => void poll(), pollMs)
    }
    void poll()
  })
  return {
    expired,
    async abort() {
      stopped = true
      if (timer) clearTimeout(timer)
      if (!client) return undefined
      try {
        // Looked up now, not from the last poll: a signal can arrive before any poll saw the
        // walsender. With a timeout pg_terminate_backend waits until the backend has exited, so no
        // walsender is left behind by the time we release the lock and exit.
        await client.query(
          "SELECT pg_terminate_backend(pid, 10000) FROM pg_stat_activity WHERE backend_type = 'walsender' AND (application_name = $1 OR pid = $2)",
          [applicationName, walsenderPid ?? 0],
        )
        return await readArchiverStatus(client)
      } catch {
        return undefined
      }
    },
    async stop() {
      stopped = true
      if (timer) clearTimeout(timer)
      await client?.end().catch(() => {})
    },
  }
}

/**
 * SIGTERM / SIGINT while a backup runs: the handler only records the signal (the backup then
 * cleans up like on a timeout); `reraise` sends it again with the default action once the lock
 * is released, so the process still ends by that signal.
 */
export function trapSignals(): {
  interrupted: Promise<NodeJS.Signals>
  dispose(): void
  reraise(signal: NodeJS.Signals): never
} {
  let fire: (signal: NodeJS.Signals) => void = () => {}
  const interrupted = new Promise<NodeJS.Signals>((resolve) => (fire = resolve))
  const handlers = (['SIGTERM', 'SIGINT'] as const).map((signal) => {
    const handler = () => fire(signal)
    process.on(signal, handler)
    return [signal, handler] as const
  })
  const dispose = () => {
    for (const [signal, handler] of handlers) process.off(signal, handler)
  }
  return {
    interrupted,
    dispose,
    reraise(signal) {
      dispose()
      process.kill(process.pid, signal)
      // the default action ends the process before this matters
      throw new Error(`interrupted by ${signal}`)
    },
  }
}

export class BackupInterrupted extends Error {
  constructor(readonly signal: NodeJS.Signals) {
    super(`interrupted by ${signal}`)
  }
}
