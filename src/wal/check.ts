/**
 * `wal check` — like pgBackRest's check: the server's archive settings, the repository's
 * cluster identity, then a forced WAL switch and a wait until that very segment is in the
 * repository. Reports archive lag from pg_stat_archiver.
 */
import type {Client} from 'pg'

import {ChecksFailedError, ConfigError} from '../errors.js'
import type {Logger} from '../output/logger.js'
import type {RepositoryStorage} from '../repository/storage.js'
import {ClusterMismatchError, findWalObject, readClusterIdentity} from './archive.js'
import {parseWalFileName} from './names.js'

export interface WalCheckResult {
  ok: boolean
  systemIdentifier: string
  postgresVersion: string
  archiveMode: string
  archiveCommand: string
  switchedSegment: string
  arrivedAfterMs: number
  repositoryKey: string
  lag: {
    currentSegment: string
    lastArchivedSegment: string | null
    lastArchivedAt: string | null
    segmentsBehind: number | null
    secondsSinceLastArchive: number | null
    failedCount: number
    lastFailedSegment: string | null
    lastFailedAt: string | null
    /** segments PostgreSQL marked ready and archive_command has not yet taken (null: not readable with this role) */
    readyBacklog: number | null
  }
}

/** A backlog this long means archiving falls behind (or fails) and pg_wal grows: said loudly. */
export const READY_BACKLOG_WARNING = 8

/**
 * The .ready files in pg_wal/archive_status: what waits for archive_command. pg_ls_archive_statusdir()
 * needs superuser or pg_monitor; without it the count is unknown (null), never a failure.
 */
async function readyBacklog(client: Client): Promise<number | null> {
  try {
    const row = await one<{n: string}>(
      client,
      "SELECT count(*)::text AS n FROM pg_ls_archive_statusdir() WHERE name LIKE '%.ready'",
    )
    return Number(row.n)
  } catch {
    return null
  }
}

export interface WalCheckOptions {
  storage: RepositoryStorage
  stack: string
  databaseUrl: string
  timeoutMs?: number
  pollMs?: number
  logger?: Logger
}

async function one<T>(client: Client, sql: string): Promise<T> {
  return (await client.query(sql)).rows[0] as T
}

export async function checkWalArchiving(options: WalCheckOptions): Promise<WalCheckResult> {
  const {withClient} = await import('../postgres/connection.js')
  const timeoutMs = options.timeoutMs ?? 60_000
  const pollMs = options.pollMs ?? 200
  return withClient(options.databaseUrl, async (client) => {
    const info = await one<{sysid: string; version: string; mode: string; command: string; recovery: boolean}>(
      client,
      `SELECT (SELECT system_identifier::text FROM pg_control_system()) AS sysid, current_setting('server_version') AS version,
              current_setting('archive_mode') AS mode, current_setting('archive_command') AS command, pg_is_in_recovery() AS recovery`,
    )
    if (info.mode === 'off') {
      throw new ConfigError('archive_mode is off: no WAL is archived', {
        code: 'WAL_ARCHIVE_OFF',
        hint: 'Set archive_mode = on and archive_command (see `charge-ops wal archive-command`), then restart PostgreSQL.',
      })
    }
    if (!info.command || info.command === '(disabled)') {
      throw new ConfigError('archive_command is empty: WAL piles up in pg_wal and nothing reaches the repository', {
        code: 'WAL_ARCHIVE_COMMAND_EMPTY',
        hint: 'Set archive_command (see `charge-ops wal archive-command`) and reload.',
      })
    }
    if (info.recovery)
      throw new ConfigError('the server is in recovery: run wal check against the primary', {code: 'WAL_CHECK_STANDBY'})
    const stored = await readClusterIdentity(options.storage, options.stack)
    const major = Number(info.version.split('.')[0])
    if (stored && stored.systemIdentifier !== info.sysid) {
      throw new ClusterMismatchError(
        stored,
        {systemIdentifier: info.sysid, postgresMajor: major},
        'this server',
        options.storage.location,
      )
    }

    const started = Date.now()
    const switched = await one<{seg: string}>(client, 'SELECT pg_walfile_name(pg_switch_wal()) AS seg')
    const file = parseWalFileName(switched.seg)!
    options.logger?.info(
      `forced a WAL switch; waiting for ${switched.seg} in ${options.storage.location} (timeout ${Math.round(timeoutMs / 1000)}s)`,
    )
    let key: string | undefined
    for (;;) {
      key = await findWalObject(options.storage, options.stack, file)
      if (key || Date.now() - started > timeoutMs) break
      await new Promise((resolve) => setTimeout(resolve, pollMs))
    }
    const lag = await one<{
      current: string
      last: string | null
      last_at: Date | null
      failed: string
      last_failed: string | null
      failed_at: Date | null
    }>(
      client,
      `SELECT pg_walfile_name(pg_current_wal_lsn()) AS current, last_archived_wal AS last, last_archived_time AS last_at,
              failed_count::text AS failed, last_failed_wal AS last_failed, last_failed_time AS failed_at FROM pg_stat_archiver`,
    )
    const backlog = await readyBacklog(client)
    const current = parseWalFileName(lag.current)
    const last = lag.last ? parseWalFileName(lag.last) : undefined
    const result: WalCheckResult = {
      ok: Boolean(key),
      systemIdentifier: info.sysid,
      postgresVersion: info.version,
      archiveMode: info.mode,
      archiveCommand: info.command,
      switchedSegment: switched.seg,
      arrivedAfterMs: Date.now() - started,
      repositoryKey: key ?? '',
      lag: {
        currentSegment: lag.current,
        lastArchivedSegment: lag.last,
        lastArchivedAt: lag.last_at ? lag.last_at.toISOString() : null,
        segmentsBehind:
          current?.segno !== undefined && last?.segno !== undefined
            ? Math.max(0, Number(current.segno - last.segno - 1n))
            : null,
        secondsSinceLastArchive: lag.last_at ? Math.round((Date.now() - lag.last_at.getTime()) / 1000) : null,
        failedCount: Number(lag.failed),
        lastFailedSegment: lag.last_failed,
        lastFailedAt: lag.failed_at ? lag.failed_at.toISOString() : null,
        readyBacklog: backlog,
      },
    }
    if (!key) {
      const failing = lag.failed_at && lag.failed_at.getTime() >= started - 1000
      throw new ChecksFailedError(
        `${switched.seg} did not reach ${options.storage.location} within ${Math.round(timeoutMs / 1000)}s${failing ? ` — archive_command is failing (last failure ${lag.last_failed} at ${result.lag.lastFailedAt}, ${lag.failed} failures in total)` : ''}${backlog ? `; ${backlog} segment(s) wait in pg_wal (.ready) — pg_wal grows until archiving works again` : ''}`,
        {
          code: 'WAL_CHECK_TIMEOUT',
          hint: 'Read the PostgreSQL server log for the archive_command error; compare archive_command with `charge-ops wal archive-command`.',
          data: {result},
        },
      )
    }
    return result
  })
}
