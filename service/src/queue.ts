/**
 * The work queue: a Redis list with the reliable-queue pattern (BLMOVE into a processing list,
 * LREM when the job is committed). Redis only carries work; the analyses table in PostgreSQL is
 * the source of truth of every job's state, so `reconcile()` can always rebuild the lists from it
 * (after a worker crash, a Redis restart without persistence, or a database restore).
 */
import type {Redis} from 'ioredis'

import type {Pool} from './db.js'

export const QUEUE_KEY = 'charge-ops:analyses:queue'
export const PROCESSING_KEY = 'charge-ops:analyses:processing'

export async function enqueue(redis: Redis, analysisId: string): Promise<void> {
  await redis.lpush(QUEUE_KEY, analysisId)
}

/** Blocks up to `timeoutSeconds` for the next job and moves it to the processing list atomically. */
export async function take(redis: Redis, timeoutSeconds: number): Promise<string | null> {
  return redis.blmove(QUEUE_KEY, PROCESSING_KEY, 'RIGHT', 'LEFT', timeoutSeconds)
}

export async function ack(redis: Redis, analysisId: string): Promise<void> {
  await redis.lrem(PROCESSING_KEY, 0, analysisId)
}

export async function queueDepth(redis: Redis): Promise<{queued: number; processing: number}> {
  const [queued, processing] = await Promise.all([redis.llen(QUEUE_KEY), redis.llen(PROCESSING_KEY)])
  return {queued, processing}
}

export interface ReconcileResult {
  /** analyses pending in PostgreSQL that were missing from Redis and were pushed again */
  requeued: string[]
  /** processing entries dropped because the analysis is finished or gone */
  dropped: number
  /** running analyses of this worker id taken back to queued (the previous process died) */
  released: number
}

/**
 * Makes Redis agree with PostgreSQL. `releaseWorker` (at worker start) first returns to the queue
 * the analyses a previous process with the same WORKER_ID left running: that process is dead.
 * `minAgeSeconds` skips analyses queued moments ago, whose LPUSH may still be in flight.
 */
export async function reconcile(
  pool: Pool,
  redis: Redis,
  options: {releaseWorker?: string; minAgeSeconds?: number} = {},
): Promise<ReconcileResult> {
  let released = 0
  if (options.releaseWorker) {
    const res = await pool.query(
      `UPDATE analyses SET status = 'queued', worker = NULL, lease_until = NULL WHERE status = 'running' AND worker = $1`,
      [options.releaseWorker],
    )
    released = res.rowCount ?? 0
  }
  const {rows} = await pool.query<{id: string; status: string; expired: boolean}>(
    `SELECT id::text, status, (status = 'running' AND lease_until < now()) AS expired
       FROM analyses
      WHERE (status = 'queued' AND queued_at < now() - make_interval(secs => $1))
         OR (status = 'running' AND lease_until < now())
      ORDER BY queued_at`,
    [options.minAgeSeconds ?? 0],
  )
  const [queued, processing] = await Promise.all([redis.lrange(QUEUE_KEY, 0, -1), redis.lrange(PROCESSING_KEY, 0, -1)])
  const inQueue = new Set(queued)
  const requeued: string[] = []
  for (const row of rows) {
    if (inQueue.has(row.id)) continue
    // RPUSH: the consumer takes from the right, so recovered work goes first.
    await redis.multi().lrem(PROCESSING_KEY, 0, row.id).rpush(QUEUE_KEY, row.id).exec()
    requeued.push(row.id)
  }
  let dropped = 0
  const pending = new Set(rows.map((r) => r.id))
  const stale = processing.filter((id) => !pending.has(id))
  if (stale.length > 0) {
    const {rows: live} = await pool.query<{id: string}>(
      `SELECT id::text FROM analyses WHERE id::text = ANY($1) AND status IN ('queued', 'running')`,
      [stale],
    )
    const alive = new Set(live.map((r) => r.id))
    for (const id of stale) {
      if (alive.has(id)) continue
      dropped += await redis.lrem(PROCESSING_KEY, 0, id)
    }
  }
  return {requeued, dropped, released}
}
