/**
 * The run's shared services, started once by global-setup.ts. Each test file should take
 * its own database: `const db = await sharedPostgres().createDatabase()`.
 * Tests that need special server settings start their own with startPostgres / startChroma.
 */
import {inject} from 'vitest'
import type {SharedChromaInfo} from './context.js'
import {pgClient, type PgClient} from './postgres.js'

const NOT_PROVIDED =
  'is not provided: the test file must run in the vitest project that has test/support/global-setup.ts as globalSetup ' +
  '(`services` in vitest.config.ts: every test/**/*.test.ts outside test/unit)'

/** The shared PostgreSQL cluster (no stop / restart: it belongs to the whole run). */
export function sharedPostgres(): PgClient {
  const info = inject('chargeOpsPostgres')
  if (!info) throw new Error(`sharedPostgres(): the shared cluster ${NOT_PROVIDED}`)
  return pgClient(info)
}

/** The shared Chroma server. Use collection names unique to the test file. */
export function sharedChroma(): SharedChromaInfo {
  const info = inject('chargeOpsChroma')
  if (!info) throw new Error(`sharedChroma(): the shared Chroma server ${NOT_PROVIDED}`)
  return {...info}
}

/**
 * charge-ops.yaml lines that take the host's own free disk out of a test that asserts "everything
 * is OK": disk.free_pct warns at 15 % by default, and CI machines run at about 14 % (stop 19's CI
 * failed on it). Tests of the disk check itself set their own thresholds.
 */
export const HOST_DISK_NOT_UNDER_TEST = 'thresholds:\n  disk.free_pct: {warning: 0.5, critical: 0.1}\n'
