/**
 * Self-test fixture (harness.test.ts): starts a private PostgreSQL cluster, redis-server,
 * Chroma and a child-process S3 server, prints their pids and dirs as one JSON line, then
 * waits to be killed. The test kills this process (SIGTERM or SIGKILL) and checks that
 * no server outlives it.
 *   node --import tsx test/support/orphan-check.ts
 */
import path from 'node:path'
import {startChroma} from './chroma.js'
import {startPostgres} from './postgres.js'
import {startRedis} from './redis.js'
import {startS3} from './s3.js'

const [pg, redis, chroma, s3] = await Promise.all([
  startPostgres({name: 'orphan-check'}),
  startRedis({password: 'orphan-check'}),
  startChroma(),
  startS3({process: true}),
])
process.stdout.write(
  `${JSON.stringify({
    postgres: {pid: pg.pid, dir: pg.baseDir},
    redis: {pid: redis.pid, dir: path.dirname(redis.dir)},
    chroma: {pid: chroma.pid, dir: path.dirname(chroma.dataDir)},
    s3: {pid: s3.pid, dir: s3.dir},
  })}\n`,
)
setInterval(() => {}, 60_000) // wait for the signal
