/** The API process: `node dist/service/src/server.js` (charge-ops service start runs it). */
import {buildApp} from './app.js'
import {assertSchema} from './db.js'
import {createMetrics} from './metrics.js'
import {createRuntime, fatal, type Runtime} from './runtime.js'
import {SERVICE_VERSION} from './version.js'

let runtime: Runtime | undefined
try {
  runtime = await createRuntime('api')
  const {config, pool, logger} = runtime
  await assertSchema(pool)
  await pool.query(
    `INSERT INTO service_meta (key, value) VALUES ('service_version', $1) ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value, updated_at = now()`,
    [SERVICE_VERSION],
  )
  const metrics = createMetrics({pool, redis: runtime.redis})
  const app = await buildApp({...runtime, metrics})
  await app.listen({host: config.host, port: config.port})
  logger.info({host: config.host, port: config.port, version: SERVICE_VERSION}, 'api listening')
  let closing = false
  const shutdown = (signal: string) => {
    if (closing) return
    closing = true
    logger.info({signal}, 'api stopping: finishing in-flight requests')
    app
      .close()
      .then(() => runtime?.close())
      .then(() => {
        logger.info('api stopped')
        process.exit(0)
      })
      .catch(() => process.exit(1))
  }
  process.on('SIGTERM', () => shutdown('SIGTERM'))
  process.on('SIGINT', () => shutdown('SIGINT'))
} catch (error) {
  fatal(runtime?.logger, error)
}
