/**
 * A scratch database for a restore drill or an upgrade rehearsal: named `<prefix>_<8 hex>`,
 * created through the server's `postgres` database, dropped WITH (FORCE) afterwards.
 */
import {randomBytes} from 'node:crypto'

import {UsageError, type ErrorCode} from '../errors.js'
import type {Logger} from '../output/logger.js'
import {withClient, withDatabase} from './connection.js'
import {quoteIdent} from './sql.js'

export interface ScratchDatabase {
  name: string
  /** the scratch database on the server of the URL it was made from */
  url: string
  create(): Promise<void>
  /** never throws: a scratch database left behind is a warning */
  drop(logger: Logger): Promise<void>
}

/** What to say when the role may not create databases (exit 2, nothing changed). */
export interface CreateRefusal {
  code: ErrorCode
  message: (serverMessage: string) => string
  hint: string
}

export function scratchDatabase(serverUrl: string, prefix: string, refusal: CreateRefusal): ScratchDatabase {
  const name = `${prefix}_${randomBytes(4).toString('hex')}`
  const adminUrl = withDatabase(serverUrl, 'postgres')
  return {
    name,
    url: withDatabase(serverUrl, name),
    async create() {
      await withClient(adminUrl, (c) => c.query(`CREATE DATABASE ${quoteIdent(name)}`)).catch(
        (error: {code?: string; message?: string}) => {
          if (error?.code !== '42501') throw error
          throw new UsageError(refusal.message(String(error.message)), {code: refusal.code, hint: refusal.hint})
        },
      )
    },
    async drop(logger) {
      const drop = (force: boolean) =>
        withClient(adminUrl, (c) =>
          c.query(`DROP DATABASE IF EXISTS ${quoteIdent(name)}${force ? ' WITH (FORCE)' : ''}`),
        )
      await drop(true)
        .catch((error: {code?: string}) => {
          // WITH (FORCE) refuses a role that is not superuser as soon as a superuser-owned process is
          // in the database, and an autovacuum worker is one: it often is, in a database just filled
          // by pg_restore. A plain DROP stops autovacuum workers itself (and waits up to 5 s for them).
          if (error?.code !== '42501') throw error
          return drop(false)
        })
        .catch((error) => logger.warn(`could not drop the scratch database ${name}: ${(error as Error).message}`))
    },
  }
}
