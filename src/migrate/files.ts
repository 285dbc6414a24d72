/**
 * Migration files: `NNNN_name.sql` with an up section and an optional down section.
 *
 *   -- charge-ops:no-transaction        (optional directives, before the up marker)
 *   -- charge-ops:lock-timeout 10s
 *   -- charge-ops:statement-timeout 30m
 *   -- charge-ops:up
 *   CREATE TABLE …;
 *   -- charge-ops:down
 *   DROP TABLE …;
 *
 * The checksum is the sha256 of the file's text with line endings normalised to LF (and a BOM
 * dropped), so a checkout on Windows does not count as an edit.
 */
import {createHash} from 'node:crypto'
import {existsSync, readdirSync, readFileSync, statSync} from 'node:fs'
import {basename, join} from 'node:path'

import {parseTimeout} from '../core/units/duration.js'
import {MigrationFileError} from './errors.js'
import {SqlSplitError, splitSql, stripComments, type SqlStatement} from './sql-split.js'

export const MIGRATION_FILE_PATTERN = /^(\d+)_([A-Za-z0-9][A-Za-z0-9_.-]*)\.sql$/

export interface MigrationSection {
  /** 1-based line of the section's first line (the line after its marker) */
  line: number
  sql: string
  statements: SqlStatement[]
}

export interface MigrationFile {
  /** the NNNN prefix as written (kept zero-padded) */
  version: string
  name: string
  file: string
  path: string
  checksum: string
  transactional: boolean
  /** per-migration overrides, as PostgreSQL milliseconds */
  lockTimeoutMs?: number
  statementTimeoutMs?: number
  up: MigrationSection
  /** undefined: the migration is irreversible */
  down?: MigrationSection
}

const DIRECTIVE = /^\s*--\s*charge-ops:([a-z-]+)\b(.*)$/i

/** Statements that PostgreSQL refuses inside a transaction block. */
const NON_TRANSACTIONAL = [
  /^\s*create\s+(unique\s+)?index\s+concurrently\b/i,
  /^\s*drop\s+index\s+concurrently\b/i,
  /^\s*reindex\b.*\bconcurrently\b/is,
  /^\s*(create|drop)\s+database\b/i,
  /^\s*vacuum\b/i,
  /^\s*alter\s+system\b/i,
  /^\s*(create|drop)\s+tablespace\b/i,
  /^\s*alter\s+table\b.*\bdetach\s+partition\b.*\bconcurrently\b/is,
]
const TRANSACTION_CONTROL = /^\s*(begin|commit|rollback|end|start\s+transaction|abort)\b(?!\s+atomic)/i

export function checksumOf(text: string): string {
  return createHash('sha256').update(normaliseText(text)).digest('hex')
}

export function normaliseText(text: string): string {
  return text.replace(/^\uFEFF/, '').replace(/\r\n?/g, '\n')
}

/** Compares versions numerically ("0010" after "0009", "10" equal to "0010"). */
export function compareVersions(a: string, b: string): number {
  const x = BigInt(a)
  const y = BigInt(b)
  return x < y ? -1 : x > y ? 1 : 0
}

export function sameVersion(a: string, b: string): boolean {
  return /^\d+$/.test(a) && /^\d+$/.test(b) && compareVersions(a, b) === 0
}

/** The header directives and where the up / down markers stand (line indexes, -1 when absent). */
interface MigrationHeader {
  upAt: number
  downAt: number
  transactional: boolean
  lockTimeoutMs?: number
  statementTimeoutMs?: number
}

function readHeader(lines: string[], file: string): MigrationHeader {
  const header: MigrationHeader = {upAt: -1, downAt: -1, transactional: true}
  for (const [index, line] of lines.entries()) {
    const d = DIRECTIVE.exec(line)
    if (!d) continue
    const directive = d[1].toLowerCase()
    const arg = d[2].trim()
    const lineNo = index + 1
    if (directive === 'lint-ignore' || directive === 'lint-ignore-file') continue
    if (directive === 'up') {
      if (header.upAt !== -1)
        throw new MigrationFileError('a second "-- charge-ops:up" marker', file, lineNo, {
          hint: 'Each file holds one migration: one up section, then optionally one down section.',
        })
      header.upAt = index
      continue
    }
    if (directive === 'down') {
      if (header.upAt === -1)
        throw new MigrationFileError('"-- charge-ops:down" comes before "-- charge-ops:up"', file, lineNo, {
          hint: 'Put the up section first, then the down section.',
        })
      if (header.downAt !== -1) throw new MigrationFileError('a second "-- charge-ops:down" marker', file, lineNo)
      header.downAt = index
      continue
    }
    if (header.upAt !== -1) {
      throw new MigrationFileError(
        `directive "-- charge-ops:${directive}" must come before "-- charge-ops:up"`,
        file,
        lineNo,
        {
          hint: 'Directives (no-transaction, lock-timeout, statement-timeout) go in the header, above the up marker.',
        },
      )
    }
    const durationOf = (what: string) => {
      if (!arg) throw new MigrationFileError(`"-- charge-ops:${directive}" needs a value, e.g. 10s`, file, lineNo)
      try {
        return parseTimeout(arg, what)
      } catch {
        throw new MigrationFileError(`invalid ${what} "${arg}"`, file, lineNo, {
          hint: 'Use 500ms, 10s, 30m, 2h (0 = no limit).',
        })
      }
    }
    switch (directive) {
      case 'no-transaction':
        header.transactional = false
        break
      case 'lock-timeout':
        header.lockTimeoutMs = durationOf('lock timeout')
        break
      case 'statement-timeout':
        header.statementTimeoutMs = durationOf('statement timeout')
        break
      default:
        throw new MigrationFileError(`unknown directive "-- charge-ops:${directive}"`, file, lineNo, {
          hint: 'Known directives: up, down, no-transaction, lock-timeout <duration>, statement-timeout <duration>, lint-ignore <rule>.',
        })
    }
  }
  if (header.upAt === -1) {
    throw new MigrationFileError('no "-- charge-ops:up" marker', file, undefined, {
      hint: 'Start the migration\'s SQL with a line "-- charge-ops:up" (and "-- charge-ops:down" before the rollback SQL).',
    })
  }
  return header
}

/** No BEGIN / COMMIT in a migration; no statement that cannot run in a transaction unless it says no-transaction. */
function checkStatements(sections: Array<MigrationSection | undefined>, transactional: boolean, file: string): void {
  for (const part of sections) {
    if (!part) continue
    for (const statement of part.statements) {
      const bare = stripComments(statement.sql)
      if (TRANSACTION_CONTROL.test(bare)) {
        throw new MigrationFileError(
          `transaction control statement "${bare.trim().split(/\s+/)[0].toUpperCase()}" in a migration`,
          file,
          statement.line,
          {
            hint: 'charge-ops runs each migration in its own transaction; remove BEGIN/COMMIT (use "-- charge-ops:no-transaction" for statements that cannot run in a transaction).',
          },
        )
      }
      if (transactional && NON_TRANSACTIONAL.some((re) => re.test(bare))) {
        throw new MigrationFileError('this statement cannot run inside a transaction', file, statement.line, {
          hint: 'Add "-- charge-ops:no-transaction" above "-- charge-ops:up" and keep such statements in their own migration (write them idempotent: IF NOT EXISTS / IF EXISTS).',
        })
      }
    }
  }
}

/** Parses one migration file's text. `file` is used in messages. */
export function parseMigration(text: string, file: string, path = file): MigrationFile {
  const m = MIGRATION_FILE_PATTERN.exec(basename(file))
  if (!m) {
    throw new MigrationFileError('the file name does not match NNNN_name.sql', file, undefined, {
      hint: 'Name migrations like 0007_add_sessions_index.sql (digits, underscore, letters/digits/_.-), or create one with `charge-ops migrate create <name>`.',
    })
  }
  const normalised = normaliseText(text)
  const lines = normalised.split('\n')
  const {upAt, downAt, transactional, lockTimeoutMs, statementTimeoutMs} = readHeader(lines, file)

  const section = (from: number, to: number): MigrationSection => {
    const sql = lines.slice(from, to).join('\n')
    let statements: SqlStatement[]
    try {
      statements = splitSql(sql, from + 1)
    } catch (error) {
      if (error instanceof SqlSplitError) throw new MigrationFileError(error.message, file, error.line)
      throw error
    }
    return {line: from + 1, sql, statements}
  }
  const up = section(upAt + 1, downAt === -1 ? lines.length : downAt)
  const down = downAt === -1 ? undefined : section(downAt + 1, lines.length)
  if (up.statements.length === 0) throw new MigrationFileError('the up section has no SQL statements', file, upAt + 1)
  checkStatements([up, down], transactional, file)
  // A down section that holds only comments is an explicit "irreversible".
  const reversible = down !== undefined && down.statements.length > 0

  return {
    version: m[1],
    name: m[2],
    file: basename(file),
    path,
    checksum: checksumOf(text),
    transactional,
    lockTimeoutMs,
    statementTimeoutMs,
    up,
    down: reversible ? down : undefined,
  }
}

/** Reads and parses every migration in `dir`, sorted by version; duplicates are an error. */
export function loadMigrations(dir: string): MigrationFile[] {
  if (!existsSync(dir) || !statSync(dir).isDirectory()) {
    throw new MigrationFileError('the migrations directory does not exist', dir, undefined, {
      hint: 'Pass --dir, or run from the directory that holds service/migrations.',
    })
  }
  const migrations: MigrationFile[] = []
  for (const entry of readdirSync(dir).sort()) {
    if (!entry.endsWith('.sql')) continue
    const path = join(dir, entry)
    if (!statSync(path).isFile()) continue
    migrations.push(parseMigration(readFileSync(path, 'utf8'), entry, path))
  }
  migrations.sort((a, b) => compareVersions(a.version, b.version))
  for (let k = 1; k < migrations.length; k++) {
    if (compareVersions(migrations[k - 1].version, migrations[k].version) === 0) {
      throw new MigrationFileError(
        `version ${migrations[k].version} is used twice (also by ${migrations[k - 1].file})`,
        migrations[k].file,
        undefined,
        {
          hint: 'Renumber one of them; every migration needs its own version.',
        },
      )
    }
  }
  return migrations
}
