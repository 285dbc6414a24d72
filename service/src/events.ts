/**
 * Live events for the web UI: the worker (and the API, for uploads) publish every analysis state
 * change on one Redis pub/sub channel; each API process subscribes once and fans the events out to
 * its WebSocket clients (GET /ws). Pub/sub is fire-and-forget on purpose: PostgreSQL stays the
 * truth, a client that missed events (reconnect, Redis restart) reloads what it shows.
 */
import type {Redis} from 'ioredis'

export const EVENTS_CHANNEL = 'charge-ops:events'

export type AnalysisStatus = 'queued' | 'running' | 'done' | 'failed'

export interface AnalysisEvent {
  type: 'analysis'
  analysisId: string
  status: AnalysisStatus
  uploadId?: string
  filename?: string
  findingsCount?: number
  error?: string
  at: string
}

export interface MaintenanceEvent {
  type: 'maintenance'
  on: boolean
  reason?: string | null
  at: string
}

export type ServiceEvent = AnalysisEvent | MaintenanceEvent

/** Publishes without ever failing the caller: a lost event only delays what a UI shows. */
export async function publishEvent(redis: Pick<Redis, 'publish' | 'status'>, event: ServiceEvent): Promise<boolean> {
  if (redis.status !== 'ready') return false
  try {
    await redis.publish(EVENTS_CHANNEL, JSON.stringify(event))
    return true
  } catch {
    return false
  }
}

export function parseEvent(text: string): ServiceEvent | undefined {
  try {
    const value = JSON.parse(text) as ServiceEvent
    return value && (value.type === 'analysis' || value.type === 'maintenance') ? value : undefined
  } catch {
    return undefined
  }
}
