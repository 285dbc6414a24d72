/** `migrate create <name>`: the next-numbered file with up/down markers, never overwriting. */
import {
  closeSync,
  existsSync,
  fsyncSync,
  linkSync,
  mkdirSync,
  openSync,
  readdirSync,
  unlinkSync,
  writeSync,
} from 'node:fs'
import {join} from 'node:path'

import {UsageError} from '../errors.js'
import {MIGRATION_FILE_PATTERN} from './files.js'

export interface CreateResult {
  version: string
  name: string
  path: string
}

export function slugify(name: string): string {
  return name
    .trim()
    .toLowerCase()
    .replace(/[^a-z0-9]+/g, '_')
    .replace(/^_+|_+$/g, '')
}

export function migrationTemplate(name: string, options: {noTransaction?: boolean} = {}): string {
  return [
    `-- ${name}`,
    ...(options.noTransaction
      ? [
          '-- charge-ops:no-transaction',
          '-- (each statement runs on its own: write them idempotent, e.g. CREATE INDEX CONCURRENTLY IF NOT EXISTS)',
        ]
      : []),
    '-- charge-ops:up',
    '',
    '',
    '-- charge-ops:down',
    '-- (delete this section if the migration cannot be reverted)',
    '',
  ].join('\n')
}

export function createMigration(dir: string, rawName: string, options: {noTransaction?: boolean} = {}): CreateResult {
  const name = slugify(rawName)
  if (!name)
    throw new UsageError(`"${rawName}" is not usable as a migration name`, {
      hint: 'Use letters and digits, e.g. add_sessions_index.',
    })
  mkdirSync(dir, {recursive: true})
  let max = 0n
  let width = 4
  for (const entry of readdirSync(dir)) {
    const m = MIGRATION_FILE_PATTERN.exec(entry)
    if (!m) continue
    width = Math.max(width, m[1].length)
    if (BigInt(m[1]) > max) max = BigInt(m[1])
  }
  const version = (max + 1n).toString().padStart(width, '0')
  const path = join(dir, `${version}_${name}.sql`)
  if (existsSync(path)) throw new UsageError(`${path} already exists`)
  // Write a temp file, fsync, then link to the final name: never a half-written migration, never an overwrite.
  const temp = join(dir, `.${version}_${name}.sql.tmp-${process.pid}`)
  const fd = openSync(temp, 'wx', 0o644)
  try {
    writeSync(fd, migrationTemplate(name, options))
    fsyncSync(fd)
  } finally {
    closeSync(fd)
  }
  try {
    linkSync(temp, path)
  } catch (error) {
    if ((error as {code?: string}).code === 'EEXIST')
      throw new UsageError(`${path} already exists (created concurrently?)`)
    throw error
  } finally {
    unlinkSync(temp)
  }
  return {version, name, path}
}
