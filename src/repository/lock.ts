/**
 * One writer per stack (DESIGN §4): a lock object at `<stack>/locks/<name>.lock` in the
 * repository, holding pid, host, start time, heartbeat and command.
 *
 * ```ts
 * const release = await acquireLock(storage, stack, {command: 'backup db'})
 * try { ... } finally { await release() }
 * ```
 * A held lock → LockHeldError (exit 4) naming the holder. A lock is stale, and taken over, when
 *  - it was written on this host and its pid is no longer running (kill -9, crash, reboot), or
 *  - its heartbeat is older than `ttlMs` (a holder on another host that died): the holder rewrites
 *    the lock every `ttlMs / 4` while it runs, so a live holder never looks stale.
 *
 * Creation uses the storage's no-overwrite put (local: link(2), atomic); after a takeover, or on
 * S3 where no-overwrite is check-then-put, the lock is re-read after a short settle delay and only
 * kept if it still carries our token — two racing writers cannot both proceed.
 *
 * Names: `backup` (default; backup db / files / all / base / prune / verify's manifest update).
 * Use another name for work that may run alongside backups (e.g. WAL archiving).
 */
import {randomBytes} from 'node:crypto'
import {hostname} from 'node:os'

import {z} from 'zod'

import {LockHeldError} from '../errors.js'
import {pidAlive} from '../core/proc/pid.js'
import {ObjectExistsError, type RepositoryStorage} from './storage.js'

export const DEFAULT_LOCK_TTL_MS = 10 * 60 * 1000

export const lockInfoSchema = z.looseObject({
  token: z.string(),
  pid: z.number().int(),
  host: z.string(),
  startedAt: z.string(),
  heartbeatAt: z.string(),
  command: z.string(),
  ttlMs: z.number().int().positive(),
})
export type LockInfo = z.infer<typeof lockInfoSchema>

export interface AcquireLockOptions {
  /** what holds it, shown to whoever is refused: 'backup db' */
  command: string
  /** lock name under `<stack>/locks/` (default 'backup') */
  name?: string
  ttlMs?: number
  /** heartbeat interval (default ttl / 4) */
  heartbeatMs?: number
  now?: () => Date
  /** for tests: pretend to be another host / pid */
  host?: string
  pid?: number
  /** settle delay before re-reading after a takeover / on S3 (default 150 ms) */
  settleMs?: number
}

export type ReleaseLock = () => Promise<void>

export const lockKey = (stack: string, name = 'backup') => `${stack}/locks/${name}.lock`

/** Why a lock is stale, or undefined when it is live. */
export function staleReason(
  info: LockInfo,
  options: {host?: string; now?: Date; isAlive?: (pid: number) => boolean} = {},
): string | undefined {
  const host = options.host ?? hostname()
  const now = options.now ?? new Date()
  const isAlive = options.isAlive ?? pidAlive
  if (info.host === host && !isAlive(info.pid)) return `pid ${info.pid} on ${info.host} is no longer running`
  const age = now.getTime() - Date.parse(info.heartbeatAt)
  if (!(age <= info.ttlMs))
    return `its heartbeat is ${Math.round(age / 1000)}s old (ttl ${Math.round(info.ttlMs / 1000)}s)`
  return undefined
}

/** Reads the lock currently stored, if any (an unparsable lock counts as stale garbage). */
export async function readLock(
  storage: RepositoryStorage,
  stack: string,
  name = 'backup',
): Promise<LockInfo | undefined | 'invalid'> {
  if (!(await storage.exists(lockKey(stack, name)))) return undefined
  try {
    const bytes = await storage.getBytes(lockKey(stack, name))
    const parsed = lockInfoSchema.safeParse(JSON.parse(bytes.toString()))
    return parsed.success ? parsed.data : 'invalid'
  } catch (error) {
    if ((error as Error).name === 'ObjectNotFoundError') return undefined
    if (error instanceof SyntaxError) return 'invalid'
    throw error
  }
}

export function describeHolder(info: LockInfo, now = new Date()): string {
  const since = Math.max(0, Math.round((now.getTime() - Date.parse(info.startedAt)) / 1000))
  return `\`${info.command}\` (pid ${info.pid} on ${info.host}, started ${info.startedAt}, ${since}s ago)`
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

/**
 * Takes the stack's lock or throws LockHeldError (exit 4). Returns the release function; the
 * heartbeat timer is unref'd so it never keeps the process alive.
 */
export async function acquireLock(
  storage: RepositoryStorage,
  stack: string,
  options: AcquireLockOptions,
): Promise<ReleaseLock> {
  const name = options.name ?? 'backup'
  const key = lockKey(stack, name)
  const now = options.now ?? (() => new Date())
  const ttlMs = options.ttlMs ?? DEFAULT_LOCK_TTL_MS
  const settleMs = options.settleMs ?? 150
  const host = options.host ?? hostname()
  const started = now().toISOString()
  const info: LockInfo = {
    token: randomBytes(8).toString('hex'),
    pid: options.pid ?? process.pid,
    host,
    startedAt: started,
    heartbeatAt: started,
    command: options.command,
    ttlMs,
  }
  const body = () => JSON.stringify(info, null, 2) + '\n'

  let tookOver = false
  for (let attempt = 0; attempt < 3; attempt++) {
    try {
      await storage.put(key, body(), {ifNotExists: true})
      break
    } catch (error) {
      if (!(error instanceof ObjectExistsError)) throw error
    }
    const holder = await readLock(storage, stack, name)
    if (holder === undefined) continue // released meanwhile: try again
    const reason = holder === 'invalid' ? 'it is unreadable' : staleReason(holder, {host, now: now()})
    if (!reason) throw held(holder as LockInfo, storage, key, now())
    // Stale: remove it and retry the no-overwrite create; the token check below settles races.
    await storage.delete(key)
    tookOver = true
    if (attempt === 2)
      throw new LockHeldError(`could not take the ${name} lock of stack ${stack} (contended)`, {
        hint: 'Another run is starting at the same moment; retry.',
      })
  }

  if (tookOver || storage.kind === 's3') {
    await sleep(settleMs)
    const current = await readLock(storage, stack, name)
    if (!current || current === 'invalid' || current.token !== info.token) {
      if (current && current !== 'invalid') throw held(current, storage, key, now())
      throw new LockHeldError(`lost the race for the ${name} lock of stack ${stack}`, {
        hint: 'Another run started at the same moment; retry.',
      })
    }
  }

  let stopped = false
  const heartbeatMs = options.heartbeatMs ?? Math.max(1000, Math.floor(ttlMs / 4))
  let beating: Promise<unknown> = Promise.resolve()
  const timer = setInterval(() => {
    beating = (async () => {
      if (stopped) return
      const current = await readLock(storage, stack, name).catch(() => undefined)
      // Someone removed or replaced our lock (an operator, a takeover): do not resurrect it.
      if (!current || current === 'invalid' || current.token !== info.token || stopped) return
      info.heartbeatAt = now().toISOString()
      await storage.put(key, body()).catch(() => {})
    })()
  }, heartbeatMs)
  timer.unref()

  return async () => {
    if (stopped) return
    stopped = true
    clearInterval(timer)
    await beating.catch(() => {})
    const current = await readLock(storage, stack, name).catch(() => undefined)
    if (current && current !== 'invalid' && current.token === info.token) await storage.delete(key)
  }
}

function held(holder: LockInfo, storage: RepositoryStorage, key: string, now: Date): LockHeldError {
  return new LockHeldError(`another run holds the lock of this stack: ${describeHolder(holder, now)}`, {
    hint: `Wait for it to finish. If that process is gone, the lock is taken over automatically (same host: at once; other host: after ${Math.round(holder.ttlMs / 1000)}s without heartbeat); or remove ${storage.location.replace(/\/$/, '')}/${key} by hand.`,
  })
}

/** Runs fn under the lock, always releasing it. */
export async function withLock<T>(
  storage: RepositoryStorage,
  stack: string,
  options: AcquireLockOptions,
  fn: () => Promise<T>,
): Promise<T> {
  const release = await acquireLock(storage, stack, options)
  try {
    return await fn()
  } finally {
    await release()
  }
}
