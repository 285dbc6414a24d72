/**
 * Splits a SQL script into statements the way PostgreSQL's lexer sees them: semicolons inside
 * quotes ('…', E'…', "…"), dollar quotes ($$ … $$, $tag$ … $tag$), line comments and nested block
 * comments do not end a statement. `BEGIN ATOMIC … END` bodies (SQL-standard function bodies) are
 * kept whole. Every statement carries the 1-based line where its first token starts, so errors can
 * point at file:line.
 */

export interface SqlStatement {
  /** the statement without its trailing semicolon, leading comments included (they hold lint-ignore) */
  text: string
  /** the statement with leading whitespace and comments removed: what is sent to the server */
  sql: string
  /** 1-based line (within the script given) of the statement's first token */
  line: number
  /** character offset of `sql` within the script */
  offset: number
}

export class SqlSplitError extends Error {
  constructor(
    message: string,
    readonly line: number,
  ) {
    super(message)
  }
}

const DOLLAR_TAG = /^\$([A-Za-z_\u0080-\uFFFF][A-Za-z0-9_\u0080-\uFFFF]*)?\$/

/** Splits `script`; `firstLine` is the line number of the script's first line in its file. */
export function splitSql(script: string, firstLine = 1): SqlStatement[] {
  const statements: SqlStatement[] = []
  let start = 0
  let i = 0
  const n = script.length
  let atomicDepth = 0
  // tokens of the current statement, lower-cased words, to recognise BEGIN ATOMIC … END
  let prevWord = ''

  const lineStarts = [0]
  for (let k = 0; k < n; k++) if (script.charCodeAt(k) === 10) lineStarts.push(k + 1)
  const lineAt = (offset: number) => {
    let lo = 0
    let hi = lineStarts.length - 1
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1
      if (lineStarts[mid] <= offset) lo = mid
      else hi = mid - 1
    }
    return firstLine + lo
  }

  const push = (end: number) => {
    const text = script.slice(start, end)
    const lead = leadingTrivia(text)
    const sql = text.slice(lead).trimEnd()
    // A comment after the semicolon on the same line belongs to this statement (lint-ignore).
    let next = end + 1
    let trailing = ''
    const m = /^[ \t]*(--[^\n]*)/.exec(script.slice(next, next + 4096))
    if (m && end < n) {
      trailing = ` ${m[1]}`
      next += m[0].length
    }
    if (sql.length > 0)
      statements.push({text: text.trim() + trailing, sql, line: lineAt(start + lead), offset: start + lead})
    start = next
    prevWord = ''
  }

  while (i < n) {
    const c = script[i]
    const next = script[i + 1]
    if (c === '-' && next === '-') {
      const eol = script.indexOf('\n', i)
      i = eol === -1 ? n : eol + 1
      continue
    }
    if (c === '/' && next === '*') {
      let depth = 1
      const open = i
      i += 2
      while (i < n && depth > 0) {
        if (script[i] === '/' && script[i + 1] === '*') {
          depth++
          i += 2
        } else if (script[i] === '*' && script[i + 1] === '/') {
          depth--
          i += 2
        } else i++
      }
      if (depth > 0) throw new SqlSplitError('unterminated /* comment', lineAt(open))
      continue
    }
    if (c === "'") {
      // E'…' strings allow backslash escapes; the E was consumed as a word character before us
      const escapes = /[eE]$/.test(script.slice(Math.max(0, i - 1), i)) && !/[A-Za-z0-9_$]/.test(script[i - 2] ?? ' ')
      i = skipQuoted(script, i, "'", escapes, lineAt)
      continue
    }
    if (c === '"') {
      i = skipQuoted(script, i, '"', false, lineAt)
      continue
    }
    if (c === '$' && !/[A-Za-z0-9_]/.test(script[i - 1] ?? ' ')) {
      const m = DOLLAR_TAG.exec(script.slice(i, i + 64))
      if (m) {
        const tag = m[0]
        const close = script.indexOf(tag, i + tag.length)
        if (close === -1) throw new SqlSplitError(`unterminated dollar-quoted string ${tag}`, lineAt(i))
        i = close + tag.length
        continue
      }
    }
    if (/[A-Za-z_]/.test(c)) {
      let j = i + 1
      while (j < n && /[A-Za-z0-9_$]/.test(script[j])) j++
      const word = script.slice(i, j).toLowerCase()
      if (word === 'atomic' && prevWord === 'begin') atomicDepth++
      else if (atomicDepth > 0 && word === 'case') atomicDepth++
      else if (atomicDepth > 0 && word === 'end') atomicDepth--
      prevWord = word
      i = j
      continue
    }
    if (c === ';' && atomicDepth === 0) {
      push(i)
      i++
      continue
    }
    i++
  }
  push(n)
  return statements
}

function skipQuoted(
  script: string,
  open: number,
  quote: string,
  backslashEscapes: boolean,
  lineAt: (o: number) => number,
): number {
  let i = open + 1
  while (i < script.length) {
    const c = script[i]
    if (backslashEscapes && c === '\\') {
      i += 2
      continue
    }
    if (c === quote) {
      if (script[i + 1] === quote) {
        i += 2
        continue
      }
      return i + 1
    }
    i++
  }
  throw new SqlSplitError(`unterminated ${quote === "'" ? 'string literal' : 'quoted identifier'}`, lineAt(open))
}

/** Length of the whitespace and comments that open `text`. */
export function leadingTrivia(text: string): number {
  let i = 0
  for (;;) {
    while (i < text.length && /\s/.test(text[i])) i++
    if (text.startsWith('--', i)) {
      const eol = text.indexOf('\n', i)
      i = eol === -1 ? text.length : eol + 1
      continue
    }
    if (text.startsWith('/*', i)) {
      let depth = 1
      i += 2
      while (i < text.length && depth > 0) {
        if (text.startsWith('/*', i)) {
          depth++
          i += 2
        } else if (text.startsWith('*/', i)) {
          depth--
          i += 2
        } else i++
      }
      continue
    }
    return i
  }
}

/** The statement with comments removed and string/identifier contents kept: for pattern checks. */
export function stripComments(sql: string): string {
  let out = ''
  let i = 0
  while (i < sql.length) {
    const c = sql[i]
    if (c === '-' && sql[i + 1] === '-') {
      const eol = sql.indexOf('\n', i)
      i = eol === -1 ? sql.length : eol
      out += ' '
      continue
    }
    if (c === '/' && sql[i + 1] === '*') {
      let depth = 1
      i += 2
      while (i < sql.length && depth > 0) {
        if (sql.startsWith('/*', i)) {
          depth++
          i += 2
        } else if (sql.startsWith('*/', i)) {
          depth--
          i += 2
        } else i++
      }
      out += ' '
      continue
    }
    if (c === "'" || c === '"') {
      let j = i + 1
      while (j < sql.length) {
        if (sql[j] === c && sql[j + 1] === c) j += 2
        else if (sql[j] === c) break
        else j++
      }
      out += sql.slice(i, j + 1)
      i = j + 1
      continue
    }
    if (c === '$' && !/[A-Za-z0-9_]/.test(sql[i - 1] ?? ' ')) {
      const m = DOLLAR_TAG.exec(sql.slice(i, i + 64))
      if (m) {
        const close = sql.indexOf(m[0], i + m[0].length)
        const end = close === -1 ? sql.length : close + m[0].length
        out += sql.slice(i, end)
        i = end
        continue
      }
    }
    out += c
    i++
  }
  return out
}

/** 1-based line within the statement of a 1-based character `position` (PostgreSQL's error position). */
export function lineOfPosition(sql: string, position: number): number {
  let line = 0
  for (let k = 0; k < Math.min(position - 1, sql.length); k++) if (sql.charCodeAt(k) === 10) line++
  return line
}
