import {describe, expect, it} from 'vitest'

import {parseTimeout} from '../../src/core/units/duration.js'
import {checksumOf, compareVersions, parseMigration} from '../../src/migrate/files.js'
import {splitSql, stripComments} from '../../src/migrate/sql-split.js'
import {compareWithHistory} from '../../src/migrate/state.js'
import type {HistoryRow} from '../../src/migrate/history.js'

describe('splitSql', () => {
  it('respects quotes, dollar quotes, comments and reports the line of each statement', () => {
    const script = [
      '-- leading comment; with a semicolon',
      "INSERT INTO t VALUES ('a;b', 'it''s; fine');",
      '/* block; /* nested; */ still; */ SELECT 1;',
      'CREATE FUNCTION f() RETURNS int LANGUAGE plpgsql AS $$',
      'BEGIN',
      '  RETURN 1; -- ;',
      'END;',
      '$$;',
      'SELECT $tag$ $$ ; $tag$, "weird;name" FROM x;',
      "SELECT E'\\'; still a string';",
      'SELECT 2',
    ].join('\n')
    const statements = splitSql(script)
    expect(statements.map((s) => s.line)).toEqual([2, 3, 4, 9, 10, 11])
    expect(statements[0].sql).toBe("INSERT INTO t VALUES ('a;b', 'it''s; fine')")
    expect(statements[0].text).toContain('-- leading comment')
    expect(statements[1].sql).toBe('SELECT 1')
    expect(statements[2].sql).toContain('RETURN 1; -- ;')
    expect(statements[2].sql.endsWith('$$')).toBe(true)
    expect(statements[3].sql).toBe('SELECT $tag$ $$ ; $tag$, "weird;name" FROM x')
    expect(statements[4].sql).toBe("SELECT E'\\'; still a string'")
    expect(statements[5].sql).toBe('SELECT 2')
  })

  it('keeps a BEGIN ATOMIC body whole', () => {
    const statements = splitSql(
      'CREATE FUNCTION g(a int) RETURNS int LANGUAGE sql BEGIN ATOMIC\n  SELECT CASE WHEN a > 0 THEN 1 ELSE 0 END;\n  SELECT 2;\nEND;\nSELECT 3;',
    )
    expect(statements).toHaveLength(2)
    expect(statements[1]).toMatchObject({sql: 'SELECT 3', line: 5})
  })

  it('offsets lines by the section start and rejects unterminated quotes with their line', () => {
    expect(splitSql('\n\nSELECT 1;', 10)[0].line).toBe(12)
    expect(() => splitSql("SELECT 1;\nSELECT 'oops;\n")).toThrow(/unterminated string/)
    expect(() => splitSql('SELECT $x$ body')).toThrow(/dollar/)
  })

  it('strips comments but not string contents', () => {
    expect(stripComments("SELECT '--not' -- gone\n/* gone */ FROM t").replace(/\s+/g, ' ')).toBe(
      "SELECT '--not' FROM t",
    )
  })
})

describe('parseMigration', () => {
  const file = (body: string) => parseMigration(body, '0007_add_index.sql')

  it('reads version, name, directives, up and down sections with file line numbers', () => {
    const m = file(
      '-- comment\n-- charge-ops:no-transaction\n-- charge-ops:lock-timeout 3s\n-- charge-ops:statement-timeout 30m\n-- charge-ops:up\nCREATE INDEX CONCURRENTLY i ON t (a);\n-- charge-ops:down\nDROP INDEX CONCURRENTLY i;\n',
    )
    expect(m).toMatchObject({
      version: '0007',
      name: 'add_index',
      transactional: false,
      lockTimeoutMs: 3000,
      statementTimeoutMs: 1_800_000,
    })
    expect(m.up.statements).toEqual([expect.objectContaining({line: 6, sql: 'CREATE INDEX CONCURRENTLY i ON t (a)'})])
    expect(m.down?.statements[0].line).toBe(8)
  })

  it('treats a missing or empty down section as irreversible', () => {
    expect(file('-- charge-ops:up\nSELECT 1;\n').down).toBeUndefined()
    expect(file('-- charge-ops:up\nSELECT 1;\n-- charge-ops:down\n-- cannot be undone\n').down).toBeUndefined()
  })

  it('rejects what would break at run time, naming the line', () => {
    expect(() => parseMigration('-- charge-ops:up\nSELECT 1;', '7-bad.sql')).toThrow(/NNNN_name\.sql/)
    expect(() => file('SELECT 1;')).toThrow(/no "-- charge-ops:up" marker/)
    expect(() => file('-- charge-ops:up\nCREATE INDEX CONCURRENTLY i ON t (a);')).toThrow(
      /0007_add_index.sql:2: this statement cannot run inside a transaction/,
    )
    expect(() => file('-- charge-ops:up\nBEGIN;\nSELECT 1;\nCOMMIT;')).toThrow(/:2: transaction control/)
    expect(() => file('-- charge-ops:lock-timeout soon\n-- charge-ops:up\nSELECT 1;')).toThrow(
      /:1: invalid lock timeout/,
    )
    expect(() => file('-- charge-ops:up\nSELECT 1;\n-- charge-ops:no-transaction\n')).toThrow(/must come before/)
    expect(() => file('-- charge-ops:frobnicate\n-- charge-ops:up\nSELECT 1;')).toThrow(/unknown directive/)
    expect(() => file('-- charge-ops:up\n-- nothing here\n')).toThrow(/no SQL statements/)
  })

  it('checksums normalise line endings and a BOM, but not content', () => {
    expect(checksumOf('a\r\nb\n')).toBe(checksumOf('\uFEFFa\nb\n'))
    expect(checksumOf('a\nb\n')).not.toBe(checksumOf('a\nc\n'))
  })

  it('compares versions numerically and parses durations', () => {
    expect(['0010', '0002', '9'].sort(compareVersions)).toEqual(['0002', '9', '0010'])
    expect(parseTimeout('30m')).toBe(1_800_000)
    expect(parseTimeout('250ms')).toBe(250)
    expect(parseTimeout('0')).toBe(0)
    expect(() => parseTimeout('ten seconds')).toThrow(/invalid/)
  })
})

describe('compareWithHistory', () => {
  const m = (version: string, body = 'SELECT 1;') =>
    parseMigration(`-- charge-ops:up\n${body}\n`, `${version}_m${version}.sql`)
  const row = (version: string, checksum: string, extra: Partial<HistoryRow> = {}): HistoryRow => ({
    version,
    name: `m${version}`,
    checksum,
    appliedAt: '2024-01-01T00:00:00.000Z',
    executionMs: 1,
    appliedBy: 'x',
    success: true,
    kind: 'sql',
    ...extra,
  })

  it('classifies applied, pending, changed, missing, failed and out-of-order', () => {
    const files = [m('0001'), m('0002'), m('0003', 'SELECT 3;'), m('0004'), m('0006')]
    const history = [
      row('0001', files[0].checksum),
      row('0003', 'edited'),
      row('0004', files[3].checksum, {success: false}),
      row('0005', 'x'),
    ]
    const result = compareWithHistory(files, history)
    expect(result.entries.map((e) => [e.version, e.state])).toEqual([
      ['0001', 'applied'],
      ['0002', 'out-of-order'],
      ['0003', 'changed'],
      ['0004', 'failed'],
      ['0005', 'missing'],
      ['0006', 'pending'],
    ])
    expect(result.current).toBe('0005')
    expect(result.pending.map((p) => p.version)).toEqual(['0002', '0006'])
    expect(result.problems.map((p) => p.kind).sort()).toEqual(['changed', 'failed', 'missing', 'out-of-order'])
  })
})
