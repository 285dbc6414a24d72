/**
 * Maintenance mode of the bundled service (restore and upgrade switch it on). While on, the API
 * keeps serving reads and answers writes with 503 + Retry-After.
 *
 * It is a flag file `<stateDir>/maintenance` (JSON: since, reason) — written atomically, and read
 * by every API process started with that state dir — mirrored to the Redis key
 * `charge-ops:maintenance` so API replicas elsewhere see it too. The file alone is enough: when
 * Redis is unreachable `setMaintenance` still succeeds and reports `redis: 'unreachable'`.
 *
 * Owned flags: a command that switches maintenance on for its own duration (`backup files`,
 * `restore db`, `restore files`) takes it with `takeMaintenance`, which writes its owner (pid,
 * /proc start time, host, command) into the flag. A flag whose owner is dead (killed) is
 * recognised by the next run of the same command — taken over and switched off at its end — and
 * reported by `doctor`. A flag without an owner (`service maintenance on`, upgrade, recover) is an
 * operator's or a journalled pipeline's: left alone.
 */
import {existsSync, readFileSync, rmSync} from 'node:fs'
import {join} from 'node:path'

import type {Settings} from '../config/settings.js'
import {writeFileAtomicSync} from '../core/fs/atomic.js'
import {currentOwner, describeOwner, isCurrentProcess, ownerState, type ProcessOwner} from '../core/proc/pid.js'
import {faultPoint} from '../core/faults.js'

export const MAINTENANCE_KEY = 'charge-ops:maintenance'
export const MAINTENANCE_FILE = 'maintenance'

export interface MaintenanceStatus {
  on: boolean
  since?: string
  reason?: string
  /** the run that holds it (owned flags only) */
  owner?: ProcessOwner
  /** who switched an ownerless flag on (`service maintenance on`: it stays on after that run ends) */
  setBy?: ProcessOwner
  file: string
  /** what happened to (or was read from) the Redis mirror */
  redis: 'set' | 'cleared' | 'on' | 'off' | 'unreachable' | 'not-configured'
  /** read: the flag file and the Redis key disagree (a run killed between writing the two) */
  mirror?: 'disagrees'
}

type MaintenanceSettings = Pick<Settings, 'stateDir' | 'redisUrl'>

async function withRedis<T>(
  url: string | undefined,
  fn: (redis: import('ioredis').Redis) => Promise<T>,
): Promise<T | 'unreachable' | 'not-configured'> {
  if (!url) return 'not-configured'
  const {Redis} = await import('ioredis')
  const redis = new Redis(url, {
    lazyConnect: true,
    enableOfflineQueue: false,
    maxRetriesPerRequest: 0,
    connectTimeout: 2000,
    retryStrategy: () => null,
  })
  redis.on('error', () => {})
  try {
    await redis.connect()
    return await fn(redis)
  } catch {
    return 'unreachable'
  } finally {
    redis.disconnect()
  }
}

/**
 * Switches maintenance mode on or off (idempotent): the file, then the Redis mirror. A run killed
 * between the two (kill point maintenance.file-written) leaves them disagreeing — `isMaintenance`
 * reports that (`mirror: 'disagrees'`) and the rerun sets both.
 */
export async function setMaintenance(
  settings: MaintenanceSettings,
  on: boolean,
  reason?: string,
  owner?: ProcessOwner,
  setBy?: ProcessOwner,
): Promise<MaintenanceStatus> {
  const file = join(settings.stateDir, MAINTENANCE_FILE)
  const since = new Date().toISOString()
  const body = JSON.stringify({
    since,
    reason: reason ?? null,
    ...(owner ? {owner} : {}),
    ...(setBy && !owner ? {setBy} : {}),
  })
  if (on) {
    writeFileAtomicSync(file, body + '\n', {mode: 0o644})
  } else {
    rmSync(file, {force: true})
  }
  await faultPoint('maintenance.file-written')
  const redis = await withRedis(settings.redisUrl, async (r) => {
    if (on) await r.set(MAINTENANCE_KEY, body)
    else await r.del(MAINTENANCE_KEY)
    // the web UI's banner, live (service/src/events.ts: the API forwards it to /ws clients)
    await r.publish('charge-ops:events', JSON.stringify({type: 'maintenance', on, reason: reason ?? null, at: since}))
    return on ? ('set' as const) : ('cleared' as const)
  })
  return {
    on,
    since: on ? since : undefined,
    reason: on ? reason : undefined,
    ...(on && owner ? {owner} : {}),
    ...(on && setBy && !owner ? {setBy} : {}),
    file,
    redis,
  }
}

/** True when the flag file exists or the Redis key is set. */
export async function isMaintenance(settings: MaintenanceSettings): Promise<MaintenanceStatus> {
  const file = join(settings.stateDir, MAINTENANCE_FILE)
  const redisValue = await withRedis(settings.redisUrl, async (r) => r.get(MAINTENANCE_KEY))
  const redis: MaintenanceStatus['redis'] =
    redisValue === 'unreachable' || redisValue === 'not-configured' ? redisValue : redisValue === null ? 'off' : 'on'
  let text: string | undefined
  if (existsSync(file)) text = readFileSync(file, 'utf8')
  else if (redis === 'on') text = redisValue as string
  if (text === undefined) return {on: false, file, redis}
  // the file and the mirror disagree: a run killed between the two writes (or Redis flushed)
  const mirror = {
    ...((redis === 'on') !== existsSync(file) && (redis === 'on' || redis === 'off')
      ? {mirror: 'disagrees' as const}
      : {}),
  }
  try {
    const parsed = JSON.parse(text) as {
      since?: string
      reason?: string | null
      owner?: ProcessOwner
      setBy?: ProcessOwner
    }
    return {
      on: true,
      since: parsed.since,
      reason: parsed.reason ?? undefined,
      ...(parsed.owner ? {owner: parsed.owner} : {}),
      ...(parsed.setBy ? {setBy: parsed.setBy} : {}),
      file,
      redis,
      ...mirror,
    }
  } catch {
    return {on: true, file, redis, ...mirror}
  }
}

/** The command family whose reruns may take over a dead run's flag: `backup files` → `backup`. */
const family = (command: string) => command.split(' ').slice(0, 2).join(' ')

export interface MaintenanceHold {
  /** true when this run switched it on (or took over a dead run's flag): switch it off with `release` */
  owned: boolean
  /** the dead run whose flag was taken over */
  tookOverFrom?: ProcessOwner
  /** switches it off — only while the flag is still ours (never an operator's set meanwhile) */
  release(): Promise<void>
}

/**
 * Switches maintenance on for this run of `command`, owned by this process. A flag already on is
 * left alone (an operator's, a live run's) — unless its owner is a dead run of the same command
 * (`backup files` killed while it read the Chroma folder): then it is taken over, and switched off
 * by `release` like one this run set.
 */
export async function takeMaintenance(
  settings: MaintenanceSettings,
  command: string,
  reason: string,
  logger?: {warn(m: string): void},
  options: {onlyTakeOver?: boolean} = {},
): Promise<MaintenanceHold> {
  const status = await isMaintenance(settings)
  const notOwned: MaintenanceHold = {owned: false, release: async () => {}}
  let tookOverFrom: ProcessOwner | undefined
  // onlyTakeOver: a rerun with nothing left to do still switches off the flag its dead run left
  if (!status.on && options.onlyTakeOver) return notOwned
  if (status.on) {
    const owner = status.owner
    // flags written before owners were recorded carry only the reason `<command> <id>`
    const legacy = !owner && status.reason?.startsWith(`${command} `)
    if (!legacy && (!owner || family(owner.command) !== family(command) || ownerState(owner) !== 'dead'))
      return notOwned
    tookOverFrom = owner
    logger?.warn(
      `maintenance mode was left on by ${owner ? describeOwner(owner) : `\`${status.reason}\``}, which no longer runs: taken over, switched off when this run ends`,
    )
  }
  await setMaintenance(settings, true, reason, currentOwner(command))
  return {
    owned: true,
    tookOverFrom,
    release: async () => {
      const now = await isMaintenance(settings)
      if (now.on && !isCurrentProcess(now.owner)) return // replaced meanwhile (an operator's on): keep it
      await setMaintenance(settings, false)
    },
  }
}

/** A flag whose owner is a dead run (for doctor): undefined when off, ownerless or the owner lives. */
export async function abandonedMaintenance(settings: MaintenanceSettings): Promise<MaintenanceStatus | undefined> {
  const status = await isMaintenance(settings)
  return status.on && status.owner && ownerState(status.owner) === 'dead' ? status : undefined
}
