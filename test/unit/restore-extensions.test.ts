import {describe, expect, it} from 'vitest'

import {filterToc} from '../../src/restore/extensions.js'

// `pg_restore -l` of a database with three extensions (PostgreSQL 15's listing format)
const TOC = `;
; Archive created at 2026-11-28 16:00:00 UTC
;     dbname: charge_analysis
;
2; 3079 16631 EXTENSION - pg_stat_statements 
3359; 0 0 COMMENT - EXTENSION pg_stat_statements 
3; 3079 16700 EXTENSION - pgcrypto 
3360; 0 0 COMMENT - EXTENSION pgcrypto 
4; 3079 16800 EXTENSION - pg_trgm 
3361; 0 0 COMMENT - EXTENSION pg_trgm 
216; 1259 16390 TABLE public analyses charge_migrator
`

describe('extensions a non-superuser cannot restore', () => {
  it('leaves out untrusted ones and existing ones it does not own; keeps the rest untouched', () => {
    const role = {superuser: false, creatable: new Set(['pgcrypto', 'pg_trgm']), present: new Map([['pg_trgm', false]])}
    const {list, skipped} = filterToc(TOC, role)
    expect(skipped).toEqual(['pg_stat_statements', 'pg_trgm'])
    const lines = list.split('\n')
    expect(
      lines.filter((l) => l.startsWith(';2') || l.startsWith(';3359') || l.startsWith(';4;') || l.startsWith(';3361')),
    ).toHaveLength(4)
    expect(lines).toContain('3; 3079 16700 EXTENSION - pgcrypto ')
    expect(lines).toContain('216; 1259 16390 TABLE public analyses charge_migrator')
    expect(lines.length).toBe(TOC.split('\n').length)
  })

  it('keeps an existing extension the role owns', () => {
    const {skipped} = filterToc(TOC, {
      superuser: false,
      creatable: new Set(),
      present: new Map([
        ['pg_stat_statements', true],
        ['pgcrypto', true],
        ['pg_trgm', true],
      ]),
    })
    expect(skipped).toEqual([])
  })
})
