/**
 * Prometheus metrics (/metrics) — the guide's key metrics: request count and latency, queue depth,
 * active analyses, vector search seconds and the database cache hit ratio. Gauges that describe
 * shared state are read from Redis / PostgreSQL at scrape time, so every API replica reports the
 * same truth.
 */
import type {Redis} from 'ioredis'
import {Counter, Gauge, Histogram, Registry, collectDefaultMetrics} from 'prom-client'

import type {Pool} from './db.js'
import {queueDepth} from './queue.js'

export interface ServiceMetrics {
  registry: Registry
  requests: Counter<'method' | 'route' | 'status'>
  latency: Histogram<'method' | 'route'>
  vectorSearch: Histogram<'operation'>
  uploadsBytes: Counter
}

export function createMetrics(deps: {pool: Pool; redis: Redis}): ServiceMetrics {
  const registry = new Registry()
  registry.setDefaultLabels({service: 'charge-analysis'})
  collectDefaultMetrics({register: registry, prefix: 'charge_analysis_'})
  // prom-client names three gauges `…_total` (active handles / requests / resources), which
  // `promtool check metrics` rejects (only counters end in _total); the per-type gauges without the
  // suffix (`…_nodejs_active_handles{type}`) carry the same numbers, so the totals go.
  for (const name of ['nodejs_active_handles_total', 'nodejs_active_requests_total', 'nodejs_active_resources_total'])
    registry.removeSingleMetric(`charge_analysis_${name}`)
  const requests = new Counter({
    name: 'charge_analysis_http_requests_total',
    help: 'HTTP requests',
    labelNames: ['method', 'route', 'status'] as const,
    registers: [registry],
  })
  const latency = new Histogram({
    name: 'charge_analysis_http_request_duration_seconds',
    help: 'HTTP request latency',
    labelNames: ['method', 'route'] as const,
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
    registers: [registry],
  })
  const vectorSearch = new Histogram({
    name: 'charge_analysis_vector_search_seconds',
    help: 'Time spent in Chroma queries',
    labelNames: ['operation'] as const,
    buckets: [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1],
    registers: [registry],
  })
  const uploadsBytes = new Counter({
    name: 'charge_analysis_upload_bytes_total',
    help: 'Bytes of session logs received',
    registers: [registry],
  })
  new Gauge({
    name: 'charge_analysis_queue_depth',
    help: 'Analyses waiting in the Redis queue (state=queued) and being processed (state=processing)',
    labelNames: ['state'] as const,
    registers: [registry],
    async collect() {
      try {
        const depth = await queueDepth(deps.redis)
        this.set({state: 'queued'}, depth.queued)
        this.set({state: 'processing'}, depth.processing)
      } catch {
        // Redis down: leave the last value; /health reports the failure
      }
    },
  })
  new Gauge({
    name: 'charge_analysis_analyses',
    help: 'Analyses by status (running = active analyses)',
    labelNames: ['status'] as const,
    registers: [registry],
    async collect() {
      try {
        const {rows} = await deps.pool.query<{status: string; n: string}>(
          `SELECT status, count(*) AS n FROM analyses GROUP BY status`,
        )
        for (const status of ['queued', 'running', 'done', 'failed'])
          this.set({status}, Number(rows.find((r) => r.status === status)?.n ?? 0))
      } catch {
        // PostgreSQL down
      }
    },
  })
  new Gauge({
    name: 'charge_analysis_active_analyses',
    help: 'Analyses currently running',
    registers: [registry],
    async collect() {
      try {
        const {rows} = await deps.pool.query<{n: string}>(`SELECT count(*) AS n FROM analyses WHERE status = 'running'`)
        this.set(Number(rows[0]?.n ?? 0))
      } catch {
        // PostgreSQL down
      }
    },
  })
  new Gauge({
    name: 'charge_analysis_db_cache_hit_ratio',
    help: 'PostgreSQL buffer cache hit ratio of this database (blks_hit / (blks_hit + blks_read))',
    registers: [registry],
    async collect() {
      try {
        const {rows} = await deps.pool.query<{ratio: string | null}>(
          `SELECT blks_hit::float8 / NULLIF(blks_hit + blks_read, 0) AS ratio FROM pg_stat_database WHERE datname = current_database()`,
        )
        this.set(Number(rows[0]?.ratio ?? 1))
      } catch {
        // PostgreSQL down
      }
    },
  })
  new Gauge({
    name: 'charge_analysis_dependency_up',
    help: 'Whether this API process reaches its store right now (1) or not (0), probed at scrape time',
    labelNames: ['dependency'] as const,
    registers: [registry],
    async collect() {
      // bounded: a hung store must not hang the scrape (Prometheus' scrape_timeout would drop every series)
      const probe = async (fn: () => Promise<unknown>) => {
        let timer: NodeJS.Timeout | undefined
        try {
          await Promise.race([
            fn(),
            new Promise((_, reject) => (timer = setTimeout(() => reject(new Error('timeout')), 1500))),
          ])
          return 1
        } catch {
          return 0
        } finally {
          clearTimeout(timer)
        }
      }
      const [pg, redis] = await Promise.all([
        probe(() => deps.pool.query('SELECT 1')),
        probe(async () => {
          if (deps.redis.status !== 'ready') throw new Error(`connection ${deps.redis.status}`)
          await deps.redis.ping()
        }),
      ])
      this.set({dependency: 'postgres'}, pg)
      this.set({dependency: 'redis'}, redis)
    },
  })
  return {registry, requests, latency, vectorSearch, uploadsBytes}
}
