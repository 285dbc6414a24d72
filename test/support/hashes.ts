/** Content hashes for "restores identical" assertions: every row of every user table, every file of a tree. */
import {createHash} from 'node:crypto'
import {readdirSync, readFileSync} from 'node:fs'
import {join, relative} from 'node:path'

import type {PgClient} from './postgres.js'

/** One hash per user table over all its rows (text form, sorted), joined: equal iff the data is. */
export async function dbHash(pg: PgClient, db: string): Promise<string> {
  const tables = await pg.query<{t: string}>(
    `SELECT format('%I.%I', schemaname, tablename) AS t FROM pg_tables WHERE schemaname NOT IN ('pg_catalog', 'information_schema') ORDER BY 1`,
    db,
  )
  const parts: string[] = []
  for (const {t} of tables) {
    const [row] = await pg.query<{h: string}>(
      `SELECT md5(coalesce(string_agg(x::text, '|' ORDER BY x::text), '')) AS h FROM ${t} x`,
      db,
    )
    parts.push(`${t}=${row!.h}`)
  }
  return parts.join(',')
}

/** `path:sha256` of every file under base, sorted. */
export function treeHash(base: string): string {
  const out: string[] = []
  const walk = (d: string) => {
    for (const e of readdirSync(d, {withFileTypes: true}).sort((a, b) => (a.name < b.name ? -1 : 1))) {
      const full = join(d, e.name)
      if (e.isDirectory()) walk(full)
      else out.push(`${relative(base, full)}:${createHash('sha256').update(readFileSync(full)).digest('hex')}`)
    }
  }
  walk(base)
  return out.join('\n')
}
