/**
 * The analysis worker: `node dist/service/src/worker.js`. Takes jobs from Redis (BLMOVE into the
 * processing list), runs them exactly once against PostgreSQL (jobs.ts), and every 15 s makes Redis
 * agree with PostgreSQL again (queue.ts reconcile), so work survives worker restarts, Redis losses
 * and database restores. SIGTERM drains: the current job finishes, no new job is taken.
 */
import {assertSchema} from './db.js'
import {publishEvent} from './events.js'
import {processAnalysis, type JobDeps} from './jobs.js'
import {ack, reconcile, take} from './queue.js'
import {createRuntime, fatal, redisClient, type Runtime} from './runtime.js'
import {SERVICE_VERSION} from './version.js'

const RECONCILE_EVERY_MS = Number(process.env.WORKER_RECONCILE_MS ?? 15_000)

let runtime: Runtime | undefined
try {
  runtime = await createRuntime('worker')
  const {config, pool, logger} = runtime
  await assertSchema(pool)
  const blocking = redisClient(config.redisUrl, {blocking: true})
  blocking.on('error', () => {})
  const deps: JobDeps = {
    pool,
    uploadsDir: config.uploadsDir,
    workerId: config.workerId,
    leaseSeconds: config.leaseSeconds,
    logger,
    knowledge: runtime.knowledge,
    embedder: runtime.embedder,
    llm: config.llmUrl ? {url: config.llmUrl, model: config.llmModel, apiKey: config.embeddingsApiKey} : undefined,
    pauseAfterClaimMs: Number(process.env.WORKER_PAUSE_AFTER_CLAIM_MS ?? 0) || undefined,
    // the web UI's live status (GET /ws): best effort, PostgreSQL stays the truth
    onStatus: (change) =>
      void publishEvent(runtime!.redis, {type: 'analysis', ...change, at: new Date().toISOString()}),
  }
  let stopping = false
  let busy = false
  let lastReconcile = 0
  const doReconcile = async (first: boolean) => {
    try {
      const r = await reconcile(pool, blocking, first ? {releaseWorker: config.workerId} : {minAgeSeconds: 5})
      lastReconcile = Date.now()
      if (first || r.requeued.length > 0 || r.dropped > 0)
        logger.info(
          {requeued: r.requeued.length, dropped: r.dropped, released: r.released},
          'queue reconciled with PostgreSQL',
        )
    } catch (error) {
      logger.warn({err: (error as Error).message}, 'queue reconcile failed; will retry')
    }
  }
  const done = new Promise<void>((resolve) => {
    const stop = (signal: string) => {
      if (stopping) return
      stopping = true
      logger.info(
        {signal, busy},
        busy ? 'worker draining: finishing the current job' : 'worker draining: idle, stopping',
      )
      // idle and blocked on Redis (possibly down): interrupt the wait instead of hanging until SIGKILL
      if (!busy) blocking.disconnect()
      resolve()
    }
    process.on('SIGTERM', () => stop('SIGTERM'))
    process.on('SIGINT', () => stop('SIGINT'))
  })
  logger.info({workerId: config.workerId, version: SERVICE_VERSION}, 'worker started')
  await doReconcile(true)
  const loop = (async () => {
    while (!stopping) {
      if (Date.now() - lastReconcile > RECONCILE_EVERY_MS) await doReconcile(false)
      let id: string | null = null
      try {
        id = await take(blocking, 1)
      } catch (error) {
        if (stopping) break
        logger.warn({err: (error as Error).message}, 'Redis unavailable; retrying')
        await new Promise((r) => setTimeout(r, 1000))
        continue
      }
      if (!id) continue
      busy = true
      try {
        const outcome = await processAnalysis(deps, id)
        if (outcome === 'retry') await new Promise((r) => setTimeout(r, 2000))
        // done / failed / skipped / lost-lease: this entry is finished; retries are re-queued by reconcile.
        await ack(blocking, id).catch(() => {})
        if (outcome === 'retry') await doReconcile(false)
      } catch (error) {
        // PostgreSQL unreachable while claiming: leave the entry in processing; reconcile returns it.
        logger.error({analysisId: id, err: (error as Error).message}, 'job could not be processed')
        await new Promise((r) => setTimeout(r, 1000))
      } finally {
        busy = false
      }
    }
  })()
  await done
  // Drain: wait for the job in hand. An idle loop may sit on a Redis call that never returns while
  // Redis is down (ioredis does not reject queued commands on disconnect while reconnecting):
  // nothing is in flight then, so it is not waited for beyond a moment.
  await new Promise((r) => setTimeout(r, 50))
  while (busy) await new Promise((r) => setTimeout(r, 100))
  await Promise.race([loop, new Promise((r) => setTimeout(r, 1000))])
  blocking.disconnect()
  await runtime.close()
  logger.info('worker stopped')
  process.exit(0)
} catch (error) {
  fatal(runtime?.logger, error)
}
