/**
 * `migrate lint`: flags statements that take heavy locks or destroy data, in the spirit of
 * squawk, on the statement text (token-level patterns, not a full parser). Only up sections are
 * linted: down sections are destructive by design. A table "exists" unless the same migration
 * created it earlier. Silence a finding with a comment in (or just above) the statement:
 *   -- charge-ops:lint-ignore dropping-column
 * or for a whole file, in its header: -- charge-ops:lint-ignore-file missing-lock-timeout
 */
import {readdirSync, readFileSync, statSync} from 'node:fs'
import {basename, join} from 'node:path'

import {CliError} from '../errors.js'
import {compareVersions, parseMigration, type MigrationFile} from './files.js'
import {stripComments, type SqlStatement} from './sql-split.js'

export type LintSeverity = 'error' | 'warning'

export interface LintRule {
  id: string
  severity: LintSeverity
  summary: string
  hint: string
}

export const LINT_RULES: Record<string, LintRule> = {
  'require-concurrent-index': {
    id: 'require-concurrent-index',
    severity: 'error',
    summary: 'CREATE INDEX without CONCURRENTLY on an existing table blocks writes to it until the index is built',
    hint: 'Use CREATE INDEX CONCURRENTLY IF NOT EXISTS … in a migration of its own marked "-- charge-ops:no-transaction".',
  },
  'adding-not-null-column': {
    id: 'adding-not-null-column',
    severity: 'error',
    summary: 'ADD COLUMN … NOT NULL without a DEFAULT fails on a table that has rows',
    hint: 'Add a constant DEFAULT (instant since PostgreSQL 11), or add the column nullable, backfill in batches, then add a CHECK (col IS NOT NULL) NOT VALID, VALIDATE it and SET NOT NULL.',
  },
  'changing-column-type': {
    id: 'changing-column-type',
    severity: 'error',
    summary: 'changing a column type rewrites the table (and its indexes) under an ACCESS EXCLUSIVE lock',
    hint: 'Add a new column, backfill it, switch the application over, then drop the old column in a later release.',
  },
  'dropping-column': {
    id: 'dropping-column',
    severity: 'error',
    summary: 'DROP COLUMN destroys data and breaks application versions that still read the column',
    hint: 'Stop using the column in the application first (one release), take a backup, then drop it; mark the statement "-- charge-ops:lint-ignore dropping-column" once that is done.',
  },
  'dropping-table': {
    id: 'dropping-table',
    severity: 'error',
    summary: 'DROP TABLE destroys data and breaks application versions that still use the table',
    hint: 'Stop using the table first, take a backup, then drop it; mark the statement "-- charge-ops:lint-ignore dropping-table" once that is done.',
  },
  'missing-lock-timeout': {
    id: 'missing-lock-timeout',
    severity: 'warning',
    summary:
      'this migration locks existing tables but declares no lock_timeout: waiting behind a long query, it would queue every other query on the table',
    hint: 'Add "-- charge-ops:lock-timeout 5s" to the header (charge-ops applies a 10s default, other runners do not).',
  },
  'setting-not-null': {
    id: 'setting-not-null',
    severity: 'warning',
    summary: 'SET NOT NULL scans the whole table under an ACCESS EXCLUSIVE lock',
    hint: 'First ADD CONSTRAINT … CHECK (col IS NOT NULL) NOT VALID, then VALIDATE CONSTRAINT (no write lock), then SET NOT NULL (uses the constraint, no scan).',
  },
  'constraint-without-not-valid': {
    id: 'constraint-without-not-valid',
    severity: 'warning',
    summary: 'adding a FOREIGN KEY or CHECK constraint validates every row while holding a lock that blocks writes',
    hint: 'Add it NOT VALID, then ALTER TABLE … VALIDATE CONSTRAINT … in a later statement or migration.',
  },
  'unique-constraint-builds-index': {
    id: 'unique-constraint-builds-index',
    severity: 'warning',
    summary: 'ADD UNIQUE / PRIMARY KEY builds an index while blocking writes',
    hint: 'CREATE UNIQUE INDEX CONCURRENTLY first (no-transaction migration), then ADD CONSTRAINT … UNIQUE USING INDEX ….',
  },
  'volatile-default': {
    id: 'volatile-default',
    severity: 'warning',
    summary: 'ADD COLUMN with a volatile DEFAULT (or a serial type) rewrites the whole table',
    hint: 'Add the column without the default, set the default afterwards (applies to new rows), and backfill old rows in batches.',
  },
  renaming: {
    id: 'renaming',
    severity: 'warning',
    summary: 'renaming a table or column breaks the application version that is still running during the deploy',
    hint: 'Add the new name alongside the old one (or a view), move the application, then remove the old name later.',
  },
  truncating: {
    id: 'truncating',
    severity: 'error',
    summary: 'TRUNCATE deletes every row',
    hint: 'Make sure this is intended; mark the statement "-- charge-ops:lint-ignore truncating".',
  },
}

export interface LintFinding {
  file: string
  path: string
  version?: string
  line: number
  rule: string
  severity: LintSeverity
  message: string
  hint: string
  /** the statement's first line */
  statement?: string
}

export interface LintResult {
  files: number
  errors: number
  warnings: number
  findings: LintFinding[]
}

const IDENT = String.raw`((?:"(?:[^"]|"")+"|[A-Za-z_][A-Za-z0-9_$]*)(?:\s*\.\s*(?:"(?:[^"]|"")+"|[A-Za-z_][A-Za-z0-9_$]*))?)`
const CREATE_TABLE = new RegExp(
  String.raw`^create\s+(?:(?:global\s+|local\s+)?(?:temporary|temp|unlogged)\s+)?table\s+(?:if\s+not\s+exists\s+)?${IDENT}`,
  'i',
)
const CREATE_TABLE_AS = /^create\s+(?:unlogged\s+)?(?:table|materialized\s+view)\b/i
const CREATE_INDEX = new RegExp(
  String.raw`^create\s+(?:unique\s+)?index\s+(concurrently\s+)?(?:if\s+not\s+exists\s+)?(?:(?!on\s)\S+\s+)?on\s+(?:only\s+)?${IDENT}`,
  'i',
)
const ALTER_TABLE = new RegExp(
  String.raw`^alter\s+table\s+(?:if\s+exists\s+)?(?:only\s+)?${IDENT}\s*\*?\s+([\s\S]*)$`,
  'i',
)
const DROP_TABLE = /^drop\s+table\s+(?:if\s+exists\s+)?([\s\S]+?)(?:\s+(?:cascade|restrict))?$/i
const TRUNCATE = /^truncate\b/i
const SET_LOCK_TIMEOUT = /^set\s+(?:local\s+|session\s+)?lock_timeout\b/i
const IGNORE = /--\s*charge-ops:lint-ignore\s+([A-Za-z0-9_,\s-]+)/gi
const IGNORE_FILE = /--\s*charge-ops:lint-ignore-file\s+([A-Za-z0-9_,\s-]+)/gi

/** Unquoted, lower-cased table name without a public. / schema prefix (a schema-qualified name keeps its schema). */
export function normaliseTableName(raw: string): string {
  const parts = raw
    .split(/\s*\.\s*/)
    .map((p) => (p.startsWith('"') ? p.slice(1, -1).replaceAll('""', '"') : p.toLowerCase()))
  if (parts.length === 2 && parts[0] === 'public') return parts[1]
  return parts.join('.')
}

function ruleList(text: string, pattern: RegExp): Set<string> {
  const rules = new Set<string>()
  for (const m of text.matchAll(pattern)) for (const r of m[1].split(/[\s,]+/)) if (r) rules.add(r.toLowerCase())
  return rules
}

/** Splits ALTER TABLE actions on commas outside parentheses and quotes. */
export function splitActions(actions: string): string[] {
  const out: string[] = []
  let depth = 0
  let quote: string | undefined
  let start = 0
  for (let i = 0; i < actions.length; i++) {
    const c = actions[i]
    if (quote) {
      if (c === quote) quote = undefined
      continue
    }
    if (c === "'" || c === '"') quote = c
    else if (c === '(') depth++
    else if (c === ')') depth--
    else if (c === ',' && depth === 0) {
      out.push(actions.slice(start, i).trim())
      start = i + 1
    }
  }
  out.push(actions.slice(start).trim())
  return out.filter(Boolean)
}

const VOLATILE_DEFAULT =
  /\bdefault\s+(?:gen_random_uuid|uuid_generate_v[14]|random|clock_timestamp|timeofday|nextval)\s*\(/i
const SERIAL_TYPE = /^add\s+(?:column\s+)?(?:if\s+not\s+exists\s+)?\S+\s+(?:small|big)?serial\b/i

interface StatementCheck {
  rule: string
  detail: string
  /** takes a lock on an existing table (for missing-lock-timeout) */
}

/** Findings of one statement, given the tables created earlier in the same migration. */
export function lintStatement(
  sql: string,
  created: Set<string>,
): {checks: StatementCheck[]; locksExisting: boolean; createdTable?: string} {
  const bare = stripComments(sql).replace(/\s+/g, ' ').trim()
  const checks: StatementCheck[] = []
  let locksExisting = false

  const ct = CREATE_TABLE.exec(bare)
  if (ct) return {checks, locksExisting, createdTable: normaliseTableName(ct[1])}
  if (CREATE_TABLE_AS.test(bare)) return {checks, locksExisting}

  const ci = CREATE_INDEX.exec(bare)
  if (ci) {
    const table = normaliseTableName(ci[2])
    if (!created.has(table)) {
      if (!ci[1]) {
        checks.push({rule: 'require-concurrent-index', detail: `index on existing table ${table}`})
        locksExisting = true
      }
    }
    return {checks, locksExisting}
  }

  const at = ALTER_TABLE.exec(bare)
  if (at) {
    const table = normaliseTableName(at[1])
    if (created.has(table)) return {checks, locksExisting}
    locksExisting = true
    for (const action of splitActions(at[2])) {
      const a = action.toLowerCase()
      if (/^add\s/.test(a) && !/^add\s+(constraint|primary\s+key|unique|foreign\s+key|check|exclude)\b/.test(a)) {
        if (/\bnot\s+null\b/.test(a) && !/\bdefault\b/.test(a) && !/\bgenerated\b/.test(a))
          checks.push({rule: 'adding-not-null-column', detail: `on ${table}: ${action}`})
        if (VOLATILE_DEFAULT.test(a) || SERIAL_TYPE.test(a) || /\bgenerated\s+always\s+as\s*\(.*\)\s*stored\b/.test(a))
          checks.push({rule: 'volatile-default', detail: `on ${table}: ${action}`})
      }
      if (/^alter\s+(column\s+)?\S+\s+(set\s+data\s+)?type\b/.test(a))
        checks.push({rule: 'changing-column-type', detail: `on ${table}: ${action}`})
      if (/^alter\s+(column\s+)?\S+\s+set\s+not\s+null\b/.test(a))
        checks.push({rule: 'setting-not-null', detail: `on ${table}: ${action}`})
      if (
        /^drop\s+(?!constraint\b|default\b|not\s+null\b)(column\s+)?/.test(a) &&
        !/^drop\s+(constraint|default|not)\b/.test(a)
      )
        checks.push({rule: 'dropping-column', detail: `on ${table}: ${action}`})
      if (/^add\s+(constraint\s+\S+\s+)?(foreign\s+key|check)\b/.test(a) && !/\bnot\s+valid\b/.test(a))
        checks.push({rule: 'constraint-without-not-valid', detail: `on ${table}: ${action}`})
      if (/^add\s+(constraint\s+\S+\s+)?(unique|primary\s+key)\b/.test(a) && !/\busing\s+index\b/.test(a))
        checks.push({rule: 'unique-constraint-builds-index', detail: `on ${table}: ${action}`})
      if (/^rename\b/.test(a)) checks.push({rule: 'renaming', detail: `on ${table}: ${action}`})
    }
    return {checks, locksExisting}
  }

  const dt = DROP_TABLE.exec(bare)
  if (dt) {
    const tables = dt[1].split(',').map((t) => normaliseTableName(t.trim()))
    const existing = tables.filter((t) => !created.has(t))
    if (existing.length > 0) {
      checks.push({rule: 'dropping-table', detail: existing.join(', ')})
      locksExisting = true
    }
    return {checks, locksExisting}
  }
  if (TRUNCATE.test(bare)) {
    checks.push({rule: 'truncating', detail: bare})
    locksExisting = true
  }
  if (/^alter\s+table\b/i.test(bare) || /^(drop|alter)\s+(index|view|materialized\s+view|sequence|type)\b/i.test(bare))
    locksExisting = true
  return {checks, locksExisting}
}

export function lintMigration(migration: MigrationFile, text: string): LintFinding[] {
  const fileIgnores = ruleList(text, IGNORE_FILE)
  const findings: LintFinding[] = []
  const created = new Set<string>()
  let hasLockTimeout = migration.lockTimeoutMs !== undefined
  let firstLocking: SqlStatement | undefined
  let firstLockingIgnores = new Set<string>()

  const report = (statement: SqlStatement, rule: string, detail: string, ignores: Set<string>) => {
    if (ignores.has(rule) || ignores.has('all') || fileIgnores.has(rule) || fileIgnores.has('all')) return
    const def = LINT_RULES[rule]
    findings.push({
      file: migration.file,
      path: migration.path,
      version: migration.version,
      line: statement.line,
      rule,
      severity: def.severity,
      message: `${def.summary} (${detail.length > 120 ? `${detail.slice(0, 120)}…` : detail})`,
      hint: def.hint,
      statement: statement.sql.split('\n')[0],
    })
  }

  for (const statement of migration.up.statements) {
    const ignores = ruleList(statement.text, IGNORE)
    if (SET_LOCK_TIMEOUT.test(stripComments(statement.sql).trim())) hasLockTimeout = true
    const result = lintStatement(statement.sql, created)
    if (result.createdTable) created.add(result.createdTable)
    for (const check of result.checks) report(statement, check.rule, check.detail, ignores)
    if (result.locksExisting && !firstLocking) {
      firstLocking = statement
      firstLockingIgnores = ignores
    }
  }
  if (firstLocking && !hasLockTimeout)
    report(firstLocking, 'missing-lock-timeout', `first lock at line ${firstLocking.line}`, firstLockingIgnores)
  return findings
}

/** Lints the given files (default: every *.sql in dir); a file that does not parse is a finding, not a crash. */
export function lintMigrations(options: {dir?: string; files?: string[]}): LintResult {
  const paths =
    options.files && options.files.length > 0
      ? options.files
      : readdirSync(options.dir!)
          .filter((e) => e.endsWith('.sql'))
          .map((e) => join(options.dir!, e))
  const findings: LintFinding[] = []
  const parsed: MigrationFile[] = []
  for (const path of paths) {
    let text: string
    try {
      if (!statSync(path).isFile()) continue
      text = readFileSync(path, 'utf8')
    } catch (error) {
      findings.push({
        file: basename(path),
        path,
        line: 0,
        rule: 'unreadable',
        severity: 'error',
        message: `cannot read the file: ${(error as Error).message}`,
        hint: 'Check the path.',
      })
      continue
    }
    try {
      const migration = parseMigration(text, basename(path), path)
      parsed.push(migration)
      findings.push(...lintMigration(migration, text))
    } catch (error) {
      if (!(error instanceof CliError)) throw error
      const data = error.data as {line?: number} | undefined
      findings.push({
        file: basename(path),
        path,
        line: data?.line ?? 0,
        rule: 'invalid-migration',
        severity: 'error',
        message: error.message.replace(/^[^:]+(:\d+)?: /, ''),
        hint: error.hint ?? '',
      })
    }
  }
  const versions = new Map<string, string>()
  for (const m of parsed) {
    const key = BigInt(m.version).toString()
    if (versions.has(key))
      findings.push({
        file: m.file,
        path: m.path,
        version: m.version,
        line: 0,
        rule: 'duplicate-version',
        severity: 'error',
        message: `version ${m.version} is also used by ${versions.get(key)}`,
        hint: 'Renumber one of them.',
      })
    versions.set(key, m.file)
  }
  findings.sort(
    (a, b) =>
      (a.version && b.version ? compareVersions(a.version, b.version) : a.file.localeCompare(b.file)) ||
      a.line - b.line,
  )
  return {
    files: paths.length,
    errors: findings.filter((f) => f.severity === 'error').length,
    warnings: findings.filter((f) => f.severity === 'warning').length,
    findings,
  }
}
