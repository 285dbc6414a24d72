import {describe, expect, it} from 'vitest'

import {pidfileOf, repointIni} from '../../src/restore/pgbouncer.js'

const INI = `; PgBouncer
[databases]
other = host=10.0.0.9 port=5432 dbname=other
charge_analysis = host=db port=5432 dbname=charge_analysis pool_size=40
"quoted" = dbname=quoted

[pgbouncer]
listen_port = 6432
pidfile = /run/pgbouncer/pgbouncer.pid
`

describe('PgBouncer repoint', () => {
  it('rewrites only the database entry, keeping its other settings and every other line', () => {
    const out = repointIni(INI, 'charge_analysis', '127.0.0.1', 5433)
    expect(out).toContain('charge_analysis = host=127.0.0.1 port=5433 dbname=charge_analysis pool_size=40')
    expect(out.replace('charge_analysis = host=127.0.0.1 port=5433', 'charge_analysis = host=db port=5432')).toBe(INI)
  })

  it('adds host and port when the entry has none; quoted names work', () => {
    expect(repointIni(INI, 'quoted', '10.1.1.1', 6543)).toContain('"quoted" = host=10.1.1.1 dbname=quoted port=6543')
  })

  it('refuses a database without an entry (exit 2), and reads the pidfile', () => {
    expect(() => repointIni(INI, 'missing', 'h', 1)).toThrow(
      expect.objectContaining({code: 'RECOVER_PGBOUNCER_NO_ENTRY', exitCode: 2}),
    )
    expect(pidfileOf(INI)).toBe('/run/pgbouncer/pgbouncer.pid')
    expect(pidfileOf('[databases]\npidfile = /nope\n')).toBeUndefined()
  })
})
