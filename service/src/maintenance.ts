/**
 * Maintenance mode: reads keep working, writes answer 503 with Retry-After. It is on when the flag
 * file `<CHARGE_OPS_STATE_DIR>/maintenance` exists or the Redis key `charge-ops:maintenance` is
 * set (so that every API process sees it). Both are set by `charge-ops service maintenance on`.
 */
import {readFileSync} from 'node:fs'
import {join} from 'node:path'

import type {Redis} from 'ioredis'

export const MAINTENANCE_KEY = 'charge-ops:maintenance'
export const MAINTENANCE_FILE = 'maintenance'

export interface MaintenanceState {
  on: boolean
  reason?: string
  since?: string
  source?: 'file' | 'redis'
}

function parse(text: string | null | undefined): {reason?: string; since?: string} {
  if (!text) return {}
  try {
    const value = JSON.parse(text) as {reason?: string; since?: string}
    return {reason: value.reason, since: value.since}
  } catch {
    return {reason: text.trim() || undefined}
  }
}

export async function maintenanceState(
  stateDir: string | undefined,
  redis: Redis | undefined,
): Promise<MaintenanceState> {
  if (stateDir) {
    try {
      const text = readFileSync(join(stateDir, MAINTENANCE_FILE), 'utf8')
      return {on: true, source: 'file', ...parse(text)}
    } catch {
      // no flag file
    }
  }
  if (redis && redis.status === 'ready') {
    try {
      const value = await redis.get(MAINTENANCE_KEY)
      if (value !== null) return {on: true, source: 'redis', ...parse(value)}
    } catch {
      // Redis unavailable: the file alone decides
    }
  }
  return {on: false}
}
