/**
 * What the global setup hands to the tests (vitest provide / inject), as plain data.
 * Type-only: importing this file has no runtime effect.
 */
import type {PgClusterInfo} from './postgres.js'

export interface SharedChromaInfo {
  /** http://127.0.0.1:PORT */
  url: string
  host: string
  port: number
}

declare module 'vitest' {
  export interface ProvidedContext {
    /** The run's shared PostgreSQL cluster (test/support/global-setup.ts). */
    chargeOpsPostgres: PgClusterInfo
    /** The run's shared Chroma server (test/support/global-setup.ts). */
    chargeOpsChroma: SharedChromaInfo
  }
}
