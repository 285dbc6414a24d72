/** Shared start-up of the API and the worker: config, logger, PostgreSQL pool, Redis, knowledge store. */
import {Redis} from 'ioredis'
import type {Logger} from 'pino'

import {configSecrets, loadServiceConfig, type ServiceConfig} from './config.js'
import {createPool, type Pool} from './db.js'
import {createEmbedder, type Embedder} from './embedder.js'
import {createKnowledgeStore, type KnowledgeStore} from './knowledge.js'
import {createServiceLogger} from './logger.js'

export interface Runtime {
  config: ServiceConfig
  logger: Logger
  pool: Pool
  redis: Redis
  knowledge: KnowledgeStore
  embedder: Embedder
  close(): Promise<void>
}

export function redisClient(url: string, options: {blocking?: boolean} = {}): Redis {
  return new Redis(url, {
    // The API fails fast while Redis is down (health turns 503, uploads stay in PostgreSQL);
    // the worker's blocking connection waits for Redis to come back.
    enableOfflineQueue: options.blocking === true,
    maxRetriesPerRequest: options.blocking ? null : 1,
    retryStrategy: (times) => Math.min(times * 200, 2000),
    lazyConnect: false,
  })
}

export async function createRuntime(name: 'api' | 'worker'): Promise<Runtime> {
  const config = loadServiceConfig()
  const logger = createServiceLogger({
    logDir: config.logDir,
    secrets: configSecrets(config),
    stdout: config.logStdout,
    name: `charge-analysis-${name}`,
  })
  const pool = createPool(config.databaseUrl, {
    max: name === 'api' ? 10 : 4,
    applicationName: `charge-analysis-${name}`,
  })
  const redis = redisClient(config.redisUrl)
  redis.on('error', () => {}) // reconnects on its own; /health reports it
  const knowledge = await createKnowledgeStore(config.chromaUrl, config.chromaCollection)
  const embedder = createEmbedder(config)
  return {
    config,
    logger,
    pool,
    redis,
    knowledge,
    embedder,
    async close() {
      redis.disconnect()
      await pool.end().catch(() => {})
    },
  }
}

/** Writes the fatal start-up error where an operator looks (stderr → the process's .out file, and error.log). */
export function fatal(logger: Logger | undefined, error: unknown): never {
  const message = error instanceof Error ? error.message : String(error)
  logger?.fatal({err: message}, 'start-up failed')
  process.stderr.write(`charge-analysis: ${message}\n`)
  process.exit(1)
}
