/**
 * vitest globalSetup of the `services` project (see vitest.config.ts): starts ONE
 * PostgreSQL cluster and ONE Chroma server for the whole run, in parallel, and hands
 * their coordinates to the tests through provide/inject (see shared.ts). Teardown stops
 * both (Chroma by SIGKILL of its process group).
 *
 * Set CHARGE_OPS_TEST_QUIET=1 to drop the one timing line it prints to stderr.
 */
import type {TestProject} from 'vitest/node'
import {startChroma, type ChromaServer} from './chroma.js'
import './context.js'
import {startPostgres, type PgCluster} from './postgres.js'

export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const t0 = performance.now()
  const timed = async <T>(start: () => Promise<T>): Promise<[T, number]> => {
    const t = performance.now()
    const value = await start()
    return [value, performance.now() - t]
  }
  const [pgResult, chromaResult] = await Promise.allSettled([
    timed(() => startPostgres({name: 'shared'})),
    timed(() => startChroma()),
  ])
  if (pgResult.status === 'rejected' || chromaResult.status === 'rejected') {
    if (pgResult.status === 'fulfilled') await pgResult.value[0].stop()
    if (chromaResult.status === 'fulfilled') await chromaResult.value[0].stop()
    const reasons = [pgResult, chromaResult]
      .filter((r): r is PromiseRejectedResult => r.status === 'rejected')
      .map((r) => (r.reason instanceof Error ? r.reason.message : String(r.reason)))
    throw new Error(`test/support/global-setup: could not start the shared services:\n${reasons.join('\n')}`)
  }
  const [pg, pgMs]: [PgCluster, number] = pgResult.value
  const [chroma, chromaMs]: [ChromaServer, number] = chromaResult.value

  project.provide('chargeOpsPostgres', {
    host: pg.host,
    port: pg.port,
    user: pg.user,
    password: pg.password,
    dataDir: pg.dataDir,
    binDir: pg.binDir,
    baseDir: pg.baseDir,
    logFile: pg.logFile,
    ...(pg.osUser ? {osUser: pg.osUser} : {}),
  })
  project.provide('chargeOpsChroma', {url: chroma.url, host: chroma.host, port: chroma.port})

  if (!process.env.CHARGE_OPS_TEST_QUIET) {
    const ms = (n: number) => `${Math.round(n)} ms`
    process.stderr.write(
      `[test/support] shared PostgreSQL 127.0.0.1:${pg.port} (${ms(pgMs)}) and Chroma ${chroma.url} (${ms(chromaMs)}) ready in ${ms(performance.now() - t0)}\n`,
    )
  }

  return async () => {
    await Promise.allSettled([chroma.stop(), pg.stop()])
  }
}
