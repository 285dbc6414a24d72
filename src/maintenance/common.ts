/** Helpers shared by vacuum, reindex and slow-queries. */
import type {Client} from 'pg'

import {parseDuration} from '../core/units/duration.js'
import {UsageError} from '../errors.js'
import {quoteIdent} from '../postgres/sql.js'

export function qualified(schema: string, name: string): string {
  return `${quoteIdent(schema)}.${quoteIdent(name)}`
}

/** Resolves a user-given table or index name (optionally schema-qualified) to schema + name, or fails with a usage error. */
export async function resolveRelation(
  client: Client,
  name: string,
  kinds: string[],
  what: string,
): Promise<{schema: string; name: string; oid: number}> {
  const {rows} = await client.query<{schema: string; name: string; oid: number; relkind: string}>(
    `SELECT n.nspname AS schema, c.relname AS name, c.oid::int AS oid, c.relkind::text AS relkind
     FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
     WHERE c.oid = to_regclass($1)`,
    [name],
  )
  const row = rows[0]
  if (!row || !kinds.includes(row.relkind)) {
    throw new UsageError(`${what} "${name}" does not exist in this database`, {
      code: 'NO_SUCH_RELATION',
      hint: `Check the name (schema-qualify it if needed: public.${name}).`,
    })
  }
  return row
}

/** Validates a PostgreSQL duration like 5s / 500ms / 1min (used in SET lock_timeout) and returns it as written. */
export function pgDuration(value: string): string {
  parseDuration(value, {bareMs: 1, units: 'postgres', hint: 'Use e.g. 5s, 500ms, 2min.'})
  return value.trim()
}
