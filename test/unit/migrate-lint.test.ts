import {describe, expect, it} from 'vitest'

import {parseMigration} from '../../src/migrate/files.js'
import {lintMigration, lintMigrations, normaliseTableName, splitActions} from '../../src/migrate/lint.js'

const lint = (body: string, name = '0002_x.sql') =>
  lintMigration(parseMigration(body, name), body).map((f) => [f.rule, f.line])

describe('migrate lint', () => {
  it('flags the lock-heavy and destructive statements on existing tables', () => {
    const findings = lint(
      [
        '-- charge-ops:lock-timeout 5s',
        '-- charge-ops:up',
        'CREATE INDEX sessions_vehicle_idx ON sessions (vehicle);',
        'ALTER TABLE sessions ADD COLUMN energy numeric NOT NULL;',
        'ALTER TABLE public.sessions ALTER COLUMN vehicle TYPE varchar(64);',
        'ALTER TABLE sessions ALTER COLUMN vehicle SET DATA TYPE text;',
        'ALTER TABLE sessions DROP COLUMN legacy, DROP CONSTRAINT c1;',
        'DROP TABLE IF EXISTS old_sessions CASCADE;',
        'ALTER TABLE sessions ADD CONSTRAINT fk FOREIGN KEY (v) REFERENCES vehicles (id);',
        'ALTER TABLE sessions ADD CONSTRAINT fk2 FOREIGN KEY (v) REFERENCES vehicles (id) NOT VALID;',
        'ALTER TABLE sessions ALTER COLUMN vehicle SET NOT NULL;',
        'ALTER TABLE sessions ADD COLUMN id2 uuid DEFAULT gen_random_uuid();',
        'ALTER TABLE sessions RENAME COLUMN a TO b;',
        "ALTER TABLE sessions ADD COLUMN tariff text NOT NULL DEFAULT 'standard';",
      ].join('\n'),
    )
    expect(findings).toEqual([
      ['require-concurrent-index', 3],
      ['adding-not-null-column', 4],
      ['changing-column-type', 5],
      ['changing-column-type', 6],
      ['dropping-column', 7],
      ['dropping-table', 8],
      ['constraint-without-not-valid', 9],
      ['setting-not-null', 11],
      ['volatile-default', 12],
      ['renaming', 13],
    ])
  })

  it('exempts tables created earlier in the same migration', () => {
    expect(
      lint(
        '-- charge-ops:up\nCREATE TABLE IF NOT EXISTS "Readings" (id int);\nCREATE INDEX ON "Readings" (id);\nALTER TABLE public."Readings" ADD COLUMN v real NOT NULL;\nDROP TABLE "Readings";',
      ),
    ).toEqual([])
    // but not a different table of a similar name
    expect(
      lint('-- charge-ops:up\nCREATE TABLE readings (id int);\nCREATE INDEX ON "Readings" (id);').map(([rule]) => rule),
    ).toEqual(['require-concurrent-index', 'missing-lock-timeout'])
  })

  it('reports a missing lock_timeout once, unless declared by directive or SET', () => {
    expect(lint('-- charge-ops:up\nALTER TABLE s ADD COLUMN a text;\nALTER TABLE s ADD COLUMN b text;')).toEqual([
      ['missing-lock-timeout', 2],
    ])
    expect(lint("-- charge-ops:up\nSET lock_timeout = '2s';\nALTER TABLE s ADD COLUMN a text;")).toEqual([])
    expect(lint('-- charge-ops:up\nCREATE TABLE n (id int);')).toEqual([])
  })

  it('honours lint-ignore per statement and per file', () => {
    const body =
      '-- charge-ops:lock-timeout 1s\n-- charge-ops:up\n-- charge-ops:lint-ignore dropping-column\nALTER TABLE s DROP COLUMN a;\nALTER TABLE s DROP COLUMN b; -- charge-ops:lint-ignore dropping-column\nALTER TABLE s DROP COLUMN c;'
    // a comment after the semicolon, on the same line, belongs to that statement
    expect(lint(body)).toEqual([['dropping-column', 6]])
    expect(
      lint('-- charge-ops:lint-ignore-file missing-lock-timeout, dropping-table\n-- charge-ops:up\nDROP TABLE t;'),
    ).toEqual([])
  })

  it('turns unparsable files and duplicate versions into findings instead of crashing', () => {
    const result = lintMigrations({dir: 'test/fixtures/migrations/lint'})
    expect(result.files).toBe(2)
    expect(result.errors).toBe(5)
    expect(result.findings.every((f) => f.file === '0002_risky.sql')).toBe(true)
  })

  it('helpers', () => {
    expect(normaliseTableName('public."Mixed"')).toBe('Mixed')
    expect(normaliseTableName('Audit.Log')).toBe('audit.log')
    expect(splitActions("ADD COLUMN a numeric(10, 2), DROP COLUMN b, ADD CHECK (x IN ('a,b'))")).toEqual([
      'ADD COLUMN a numeric(10, 2)',
      'DROP COLUMN b',
      "ADD CHECK (x IN ('a,b'))",
    ])
  })
})
