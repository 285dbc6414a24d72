/**
 * Starting a restored data directory and deciding — from the server itself — whether recovery
 * ended and the server promoted.
 *
 * What is NOT trusted, and why:
 *  - FATAL lines in the server log: every client that connects during recovery (a monitoring
 *    probe, a pooler, an application retrying) leaves "FATAL: the database system is starting up"
 *    there, while recovery goes on fine. The log is only read to *explain* a server that stopped.
 *  - a pg_control sample: the end-of-recovery checkpoint is a shutdown checkpoint, so pg_control
 *    says "shut down" for a moment right before "in production".
 *
 * What decides: the postmaster (its pid file and process: gone = the server stopped; status
 * "ready" = it accepts connections — after promotion, but also read-only in hot standby), then a
 * connection that asks `pg_is_in_recovery()` and the current timeline. Without credentials (or
 * when the copy refuses them) pg_control must say "in production" on two reads in a row while
 * the postmaster runs: the server sets it only after the end-of-recovery checkpoint.
 *
 * The recovery log lives beside the data directory (`<dataDir>.recovery-<time>.log`), one new
 * file per start: never inside it, where base backups of the recovered server would copy it and a
 * later recovery would read the earlier one's lines.
 */
import {readFileSync} from 'node:fs'
import {chown, open, readFile} from 'node:fs/promises'
import {basename, dirname, join} from 'node:path'

import {ChecksFailedError, ExternalCommandError} from '../errors.js'
import type {Logger} from '../output/logger.js'

export interface RecoveryOutcome {
  state: string
  timeline: number
  /** "recovery stopping before commit of transaction 745, time …" */
  stoppedAt?: string
  redoDoneAt?: string
  lastTransactionAt?: string
  checkpointLsn?: string
  port: number
  logFile: string
  durationMs: number
  /** how promotion was established: a connection that asked the server, or (without credentials) pg_control read while the postmaster runs */
  confirmedBy: 'connection' | 'pg_control'
}

export interface Owner {
  uid: number
  gid: number
}

export interface AwaitRecoveryOptions {
  /** credentials for asking the restored server (its roles are the backed-up server's); host and port are replaced */
  databaseUrl?: string
  pollMs?: number
}

/** The lines of postmaster.pid (PostgreSQL ≥ 10) that matter here. */
export interface PostmasterStatus {
  pid: number
  port: number
  socketDir: string
  listenAddress: string
  /** starting | stopping | ready | standby */
  status: string
}

export function parsePostmasterPid(text: string): PostmasterStatus | undefined {
  const lines = text.split('\n')
  const pid = Number(lines[0])
  if (!Number.isInteger(pid) || pid <= 0) return undefined
  return {
    pid,
    port: Number(lines[3]) || 0,
    socketDir: (lines[4] ?? '').trim(),
    listenAddress: (lines[5] ?? '').trim(),
    status: (lines[7] ?? '').trim(),
  }
}

function readPostmaster(dataDir: string): PostmasterStatus | undefined {
  try {
    return parsePostmasterPid(readFileSync(join(dataDir, 'postmaster.pid'), 'utf8'))
  } catch {
    return undefined
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM'
  }
}

/** FATAL lines that clients cause while the server recovers or stops: never a reason a recovery failed. */
const CLIENT_FATAL =
  /the database system is (starting up|not yet accepting connections|not accepting connections|shutting down|in recovery mode)|password authentication failed|no pg_hba\.conf entry|role ".*" does not exist|database ".*" does not exist|terminating connection due to administrator command|connection to client lost/

export function parseRecoveryLog(log: string): {
  stoppedAt?: string
  redoDoneAt?: string
  lastTransactionAt?: string
  newTimeline?: number
  fatal?: string
  complete: boolean
} {
  const stopped = /recovery stopping (?:before|after|at) [^\n]*/.exec(log)?.[0]
  const redo = /redo done at ([0-9A-F]+\/[0-9A-F]+)/.exec(log)?.[1]
  const last = /last completed transaction was at log time ([^\n]+)/.exec(log)?.[1]?.trim()
  const tl = /selected new timeline ID: (\d+)/.exec(log)?.[1]
  const lines = log.split('\n')
  // the last FATAL / PANIC of the server itself (not one a connecting client caused)
  let at = -1
  for (let i = lines.length - 1; i >= 0; i--) {
    if (/(?:FATAL|PANIC):\s/.test(lines[i]) && !CLIENT_FATAL.test(lines[i])) {
      at = i
      break
    }
  }
  // the lines just before it usually say why (e.g. which setting is invalid)
  const fatal =
    at === -1
      ? undefined
      : [
          ...lines
            .slice(Math.max(0, at - 2), at)
            .filter(
              (l) =>
                /LOG|ERROR|DETAIL|HINT/.test(l) && !/starting PostgreSQL|listening on/.test(l) && !CLIENT_FATAL.test(l),
            )
            .map((l) => l.replace(/^.*?(LOG|ERROR|DETAIL|HINT):\s+/, '')),
          lines[at].replace(/^.*?(FATAL|PANIC):\s+/, ''),
        ].join(' — ')
  return {
    stoppedAt: stopped,
    redoDoneAt: redo,
    lastTransactionAt: last,
    newTimeline: tl ? Number(tl) : undefined,
    fatal,
    complete: /archive recovery complete|database system is ready to accept connections/.test(log),
  }
}

/** A new log file beside the data directory, owned by the server's OS user. */
async function newRecoveryLog(dataDir: string, owner: Owner | undefined): Promise<string> {
  const stamp = new Date()
    .toISOString()
    .replace(/\.\d{3}Z$/, 'Z')
    .replace(/[-:]/g, '')
  for (let n = 0; ; n++) {
    const file = join(dirname(dataDir), `${basename(dataDir)}.recovery-${stamp}${n ? `-${n}` : ''}.log`)
    try {
      const handle = await open(file, 'wx', 0o600)
      await handle.close()
      if (owner) await chown(file, owner.uid, owner.gid)
      return file
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST' || n > 20) throw error
    }
  }
}

interface Answer {
  inRecovery: boolean
  timeline?: number
}

/**
 * Asks the restored server. `undefined` when it cannot be asked (no credentials, or it refuses
 * them); a server that is still starting up reads as in recovery.
 */
async function askServer(
  databaseUrl: string | undefined,
  pm: PostmasterStatus,
  logger: Logger,
  warned: {auth?: boolean},
): Promise<Answer | undefined> {
  if (!databaseUrl) return undefined
  const {connect, parseDatabaseUrl} = await import('../postgres/connection.js')
  const {UnreachableError} = await import('../errors.js')
  const host =
    pm.listenAddress && pm.listenAddress !== '*'
      ? pm.listenAddress
      : pm.listenAddress === '*'
        ? '127.0.0.1'
        : pm.socketDir
  const target = {...parseDatabaseUrl(databaseUrl), host, port: pm.port}
  let client
  try {
    client = await connect(target, {connectTimeoutMs: 5000, applicationName: 'charge-ops restore pitr'})
  } catch (error) {
    const code = error instanceof UnreachableError ? error.code : ''
    if (code === 'PG_STARTING' || code === 'PG_REFUSED' || code === 'PG_TIMEOUT') return {inRecovery: true}
    if (!warned.auth)
      logger.warn(`cannot ask the restored server (${(error as Error).message}); relying on its postmaster status`)
    warned.auth = true
    return undefined
  }
  try {
    const {rows} = await client.query<{r: boolean; tli: string | null}>(
      `SELECT pg_is_in_recovery() AS r, CASE WHEN pg_is_in_recovery() THEN NULL ELSE substr(pg_walfile_name(pg_current_wal_insert_lsn()), 1, 8) END AS tli`,
    )
    return {inRecovery: rows[0].r, timeline: rows[0].tli ? Number.parseInt(rows[0].tli, 16) : undefined}
  } finally {
    await client.end().catch(() => {})
  }
}

/**
 * Starts the server on `port` (unless it already runs, e.g. a resumed `recover`) and waits until
 * it has finished recovery and promoted. Fails when the server stops (explained from this start's
 * own log: target not reached, bad setting …) or when `timeoutSec` passes (the server keeps running).
 */
export async function startAndAwaitRecovery(
  dataDir: string,
  port: number,
  timeoutSec: number,
  owner: Owner | undefined,
  logger: Logger,
  options: AwaitRecoveryOptions = {},
): Promise<RecoveryOutcome> {
  const {controlData, serverBinary} = await import('../postgres/server-tools.js')
  const major = Number((await readFile(join(dataDir, 'PG_VERSION'), 'utf8').catch(() => '')).trim()) || undefined
  const started = Date.now()
  const pollMs = options.pollMs ?? 250
  const logFile = await newRecoveryLog(dataDir, owner)
  const readLog = async () => readFile(logFile, 'utf8').catch(() => '')
  const running = readPostmaster(dataDir)
  if (running && alive(running.pid)) {
    logger.info(`the server in ${dataDir} already runs (pid ${running.pid}); waiting for its recovery to end`)
  } else {
    const {run} = await import('../core/proc/exec.js')
    logger.info(`starting PostgreSQL on port ${port}; recovery log: ${logFile}`)
    try {
      // -W: pg_ctl only launches; the wait below asks the server itself
      await run(serverBinary('pg_ctl', major), ['start', '-D', dataDir, '-l', logFile, '-W', '-o', `-p ${port}`], {
        ...(owner ? {uid: owner.uid, gid: owner.gid} : {}),
        cwd: dataDir,
        purpose: 'starting the restored server',
        timeout: 60_000,
      })
    } catch (error) {
      throw recoveryFailed(parseRecoveryLog(await readLog()).fatal ?? (error as Error).message, logFile)
    }
  }
  const warned: {auth?: boolean} = {}
  let seen: PostmasterStatus | undefined = running && alive(running.pid) ? running : undefined
  let inProductionBefore = false
  for (;;) {
    const pm = readPostmaster(dataDir)
    if (pm) seen = pm
    const up = seen !== undefined && pm !== undefined && pm.pid === seen.pid && alive(pm.pid)
    // "ready" = accepting connections: after promotion, but also read-only during hot standby
    if (up && pm.status === 'ready') {
      const answer = await askServer(options.databaseUrl, pm, logger, warned)
      let promoted = answer !== undefined && !answer.inRecovery
      let control: Record<string, string> | undefined
      if (!answer) {
        // nobody to ask: pg_control as the server wrote it, "in production" twice in a row
        control = await controlData(dataDir, major).catch(() => ({}) as Record<string, string>)
        const inProduction = control['Database cluster state'] === 'in production'
        promoted = inProduction && inProductionBefore
        inProductionBefore = inProduction
      }
      if (promoted) {
        const parsed = parseRecoveryLog(await readLog())
        control ??= await controlData(dataDir, major).catch(() => ({}) as Record<string, string>)
        return {
          state: control['Database cluster state'] ?? 'in production',
          timeline: answer?.timeline ?? (Number(control["Latest checkpoint's TimeLineID"]) || parsed.newTimeline || 0),
          stoppedAt: parsed.stoppedAt,
          redoDoneAt: parsed.redoDoneAt,
          lastTransactionAt: parsed.lastTransactionAt,
          checkpointLsn: control['Latest checkpoint location'],
          port: pm.port || port,
          logFile,
          durationMs: Date.now() - started,
          confirmedBy: answer ? 'connection' : 'pg_control',
        }
      }
    }
    // gone: the pid file was removed or its process died (a pid file never seen for 30 s counts too)
    if ((seen && !up) || (!seen && Date.now() - started > 30_000)) {
      const parsed = parseRecoveryLog(await readLog())
      throw recoveryFailed(
        parsed.fatal ?? `the server stopped during recovery${seen ? '' : ' (it never wrote postmaster.pid)'}`,
        logFile,
      )
    }
    if (Date.now() - started > timeoutSec * 1000) {
      throw new ExternalCommandError(
        'postgres',
        `recovery did not finish within ${timeoutSec}s (postmaster status: ${pm?.status || 'none'}); the server is still running`,
        {hint: `Follow ${logFile}.`},
      )
    }
    await new Promise((r) => setTimeout(r, pollMs))
  }
}

export function recoveryFailed(reason: string, logFile: string): ChecksFailedError {
  const beyond = /recovery ended before configured recovery target was reached/.test(reason)
  return new ChecksFailedError(`recovery failed: ${reason}`, {
    code: beyond ? 'PITR_TARGET_NOT_REACHED' : 'PITR_RECOVERY_FAILED',
    hint: beyond
      ? `The target lies beyond the archived WAL; the server did NOT promote. Archive the missing WAL (charge-ops wal check on the source) or choose an earlier target. Log: ${logFile}`
      : `Read ${logFile}; nothing was promoted.`,
  })
}
