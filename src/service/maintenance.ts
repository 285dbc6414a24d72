/**
 * Maintenance mode of the bundled service (restore and upgrade switch it on). While on, the API
 * keeps serving reads and answers writes with 503 + Retry-After.
 *
 * It is a flag file `<stateDir>/maintenance` (JSON: since, reason) — written atomically, and read
 * by every API process started with that state dir — mirrored to the Redis key
 * `charge-ops:maintenance` so API replicas elsewhere see it too. The file alone is enough: when
 * Redis is unreachable `setMaintenance` still succeeds and reports `redis: 'unreachable'`.
 */
import {existsSync, readFileSync, rmSync} from 'node:fs'
import {join} from 'node:path'

import type {Settings} from '../config/settings.js'
import {writeFileAtomicSync} from '../core/fs/atomic.js'

export const MAINTENANCE_KEY = 'charge-ops:maintenance'
export const MAINTENANCE_FILE = 'maintenance'

export interface MaintenanceStatus {
  on: boolean
  since?: string
  reason?: string
  file: string
  /** what happened to (or was read from) the Redis mirror */
  redis: 'set' | 'cleared' | 'on' | 'off' | 'unreachable' | 'not-configured'
}

type MaintenanceSettings = Pick<Settings, 'stateDir' | 'redisUrl'>

async function withRedis<T>(url: string | undefined, fn: (redis: import('ioredis').Redis) => Promise<T>): Promise<T | 'unreachable' | 'not-configured'> {
  if (!url) return 'not-configured'
  const {Redis} = await import('ioredis')
  const redis = new Redis(url, {lazyConnect: true, enableOfflineQueue: false, maxRetriesPerRequest: 0, connectTimeout: 2000, retryStrategy: () => null})
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

/** Switches maintenance mode on or off (idempotent). */
export async function setMaintenance(settings: MaintenanceSettings, on: boolean, reason?: string): Promise<MaintenanceStatus> {
  const file = join(settings.stateDir, MAINTENANCE_FILE)
  const since = new Date().toISOString()
  const body = JSON.stringify({since, reason: reason ?? null})
  if (on) {
    writeFileAtomicSync(file, body + '\n', {mode: 0o644})
  } else {
    rmSync(file, {force: true})
  }
  const redis = await withRedis(settings.redisUrl, async (r) => {
    if (on) await r.set(MAINTENANCE_KEY, body)
    else await r.del(MAINTENANCE_KEY)
    // the web UI's banner, live (service/src/events.ts: the API forwards it to /ws clients)
    await r.publish('charge-ops:events', JSON.stringify({type: 'maintenance', on, reason: reason ?? null, at: since}))
    return on ? ('set' as const) : ('cleared' as const)
  })
  return {on, since: on ? since : undefined, reason: on ? reason : undefined, file, redis}
}

/** True when the flag file exists or the Redis key is set. */
export async function isMaintenance(settings: MaintenanceSettings): Promise<MaintenanceStatus> {
  const file = join(settings.stateDir, MAINTENANCE_FILE)
  const redisValue = await withRedis(settings.redisUrl, async (r) => r.get(MAINTENANCE_KEY))
  const redis: MaintenanceStatus['redis'] = redisValue === 'unreachable' || redisValue === 'not-configured' ? redisValue : redisValue === null ? 'off' : 'on'
  let text: string | undefined
  if (existsSync(file)) text = readFileSync(file, 'utf8')
  else if (redis === 'on') text = redisValue as string
  if (text === undefined) return {on: false, file, redis}
  try {
    const parsed = JSON.parse(text) as {since?: string; reason?: string | null}
    return {on: true, since: parsed.since, reason: parsed.reason ?? undefined, file, redis}
  } catch {
    return {on: true, file, redis}
  }
}
