/**
 * Extensions a non-superuser cannot restore.
 *
 * pg_dump writes `CREATE EXTENSION IF NOT EXISTS x` and `COMMENT ON EXTENSION x` for every
 * extension of the database. Restoring as a role that is not a superuser (the service's own role
 * with CREATEDB: the restore drill, `upgrade --rehearse`, `restore db` without an admin URL), an
 * untrusted extension such as pg_stat_statements — which `db slow-queries` asks operators to
 * create — fails with "permission denied to create extension", and the comment of one the role
 * does not own fails with "must be owner": `pg_restore --exit-on-error` then stops the whole
 * restore. Those two TOC entries are left out with a `-L` list, and the caller reports them. An
 * object that really needs a skipped extension (a column of its type, a view over it) still fails
 * the restore, loudly: nothing is lost silently.
 */
import {writeFile} from 'node:fs/promises'
import {join} from 'node:path'

import type {Client} from 'pg'

export interface ExtensionFilter {
  /** extensions whose entries were left out */
  skipped: string[]
  /** the pg_restore -L file, when anything was left out */
  listFile?: string
}

export interface TargetRole {
  superuser: boolean
  /** extensions this role may create: trusted ones (PostgreSQL 13+) */
  creatable: Set<string>
  /** extensions already in the target database, with whether this role owns them */
  present: Map<string, boolean>
}

/** What the restoring role may do with extensions, read on the caller's connection to the target. */
export async function readTargetRole(c: Client): Promise<TargetRole> {
  const role = await c.query<{superuser: boolean}>(
    'SELECT rolsuper AS superuser FROM pg_roles WHERE rolname = current_user',
  )
  const trusted = await c.query<{name: string}>(
    'SELECT DISTINCT name FROM pg_available_extension_versions WHERE trusted',
  )
  const present = await c.query<{name: string; owned: boolean}>(
    "SELECT extname AS name, pg_has_role(extowner, 'USAGE') AS owned FROM pg_extension",
  )
  return {
    superuser: Boolean(role.rows[0]?.superuser),
    creatable: new Set(trusted.rows.map((r) => r.name)),
    present: new Map(present.rows.map((r) => [r.name, r.owned])),
  }
}

const EXTENSION_ENTRY = /^\d+;\s+\d+\s+\d+\s+EXTENSION\s+-\s+(\S+)/
const EXTENSION_COMMENT = /^\d+;\s+\d+\s+\d+\s+COMMENT\s+-\s+EXTENSION\s+(\S+)/

/**
 * The `pg_restore -l` listing with the entries `role` cannot restore commented out. An extension
 * is kept when the role may create it and it is absent, or when the role owns the existing one.
 */
export function filterToc(toc: string, role: TargetRole): {list: string; skipped: string[]} {
  const skipped = new Set<string>()
  const lines = toc.split('\n').map((line) => {
    const entry = EXTENSION_ENTRY.exec(line) ?? EXTENSION_COMMENT.exec(line)
    if (!entry) return line
    const name = entry[1]
    const owned = role.present.get(name)
    const restorable = owned === undefined ? role.creatable.has(name) : owned
    if (restorable) return line
    skipped.add(name)
    return `;${line}`
  })
  return {list: lines.join('\n'), skipped: [...skipped].sort()}
}

/**
 * Reads the archive's table of contents (`readToc` runs pg_restore -l on it) only when the target
 * role is not a superuser, and writes the -L list into `listDir()` when an entry must be left out.
 */
export async function extensionFilter(
  role: TargetRole,
  listDir: () => Promise<string>,
  readToc: () => Promise<string>,
): Promise<ExtensionFilter> {
  if (role.superuser) return {skipped: []}
  const {list, skipped} = filterToc(await readToc(), role)
  if (skipped.length === 0) return {skipped}
  const listFile = join(await listDir(), 'restore.list')
  await writeFile(listFile, list, {mode: 0o600})
  return {skipped, listFile}
}
