/**
 * The built CLI (bin/run.js): exit codes per format (Nagios 0/1/2/3; otherwise 1 on critical),
 * stdout / stderr separation, no secret in any output. Needs `npm run build`.
 */
import {spawnSync} from 'node:child_process'
import {mkdtempSync, rmSync, writeFileSync, readFileSync, existsSync} from 'node:fs'
import {tmpdir} from 'node:os'
import {join} from 'node:path'

import {afterAll, beforeAll, describe, expect, it} from 'vitest'

import {HOST_DISK_NOT_UNDER_TEST, sharedPostgres} from '../support/index.js'

const root = join(import.meta.dirname, '..', '..')
let dir: string
let dbUrl: string

function cli(args: string[], yaml: string) {
  writeFileSync(join(dir, 'charge-ops.yaml'), yaml)
  const r = spawnSync(process.execPath, [join(root, 'bin/run.js'), ...args], {
    cwd: dir,
    env: {
      ...process.env,
      DATABASE_URL: dbUrl,
      CHARGE_OPS_CONFIG: join(dir, 'charge-ops.yaml'),
      CHARGE_OPS_STATE_DIR: join(dir, 'state'),
      CI: 'true',
    },
    encoding: 'utf8',
  })
  return {code: r.status, stdout: r.stdout, stderr: r.stderr}
}

beforeAll(async () => {
  expect(existsSync(join(root, 'dist/commands/capacity.js')), 'run `npm run build` first').toBe(true)
  dir = mkdtempSync(join(tmpdir(), 'capacity-e2e-'))
  dbUrl = await sharedPostgres().createDatabase()
})
afterAll(() => rmSync(dir, {recursive: true, force: true}))

const LOW_DISK = 'stack: e2e\nthresholds:\n  disk.free_pct: {warning: 100, critical: 99.999}\n'
const FINE = `stack: e2e\n${HOST_DISK_NOT_UNDER_TEST}`

describe('charge-ops capacity (built CLI)', () => {
  it('nagios: OK exit 0 when everything passes', () => {
    const r = cli(['capacity', '--only', 'postgresql,sizing', '--format', 'nagios'], FINE)
    expect(r.stdout).toMatch(/^OK - \d+ checks ok \| /)
    expect(r.code).toBe(0)
  })
  it('nagios: CRITICAL exit 2 with perfdata; other formats exit 1', () => {
    const n = cli(['capacity', '--only', 'postgresql', '--format', 'nagios'], LOW_DISK)
    expect(n.code).toBe(2)
    expect(n.stdout.split('\n')[0]).toMatch(/^CRITICAL - disk\.free_pct\[role=postgres-data/)
    expect(n.stdout).toMatch(/'disk\.free_pct_postgres-data'=[\d.]+%;100;99\.999/)

    const p = cli(['capacity', '--only', 'postgresql', '--format', 'prometheus'], LOW_DISK)
    expect(p.code).toBe(1)
    expect(p.stdout).toMatch(
      /charge_ops_check_status\{check="disk.free_pct",component="disk",role="postgres-data",path="[^"]+"\} 2/,
    )

    const j = cli(['capacity', '--only', 'postgresql', '--json'], LOW_DISK)
    expect(j.code).toBe(1)
    const report = JSON.parse(j.stdout)
    expect(report.status).toBe('critical')
    expect(report.checks.find((c: {id: string}) => c.id === 'disk.free_pct').status).toBe('critical')

    const t = cli(['capacity', '--only', 'postgresql'], LOW_DISK)
    expect(t.code).toBe(1)
    expect(t.stdout).toMatch(/CRITICAL\s+disk\.free_pct/)
    expect(t.stderr).toMatch(/capacity check\(s\) critical/)

    for (const out of [n, p, j, t]) expect(out.stdout + out.stderr).not.toContain(new URL(dbUrl).password)
  })
  it('nagios: UNKNOWN exit 3 when PostgreSQL cannot be checked; history is kept for growth', () => {
    writeFileSync(join(dir, 'charge-ops.yaml'), FINE)
    const r = spawnSync(
      process.execPath,
      [join(root, 'bin/run.js'), 'capacity', '--only', 'postgresql', '--format', 'nagios'],
      {
        cwd: dir,
        env: {
          ...process.env,
          DATABASE_URL: 'postgresql://u:Secret-Pw-1@127.0.0.1:1/x',
          CHARGE_OPS_CONFIG: join(dir, 'charge-ops.yaml'),
          CI: 'true',
        },
        encoding: 'utf8',
      },
    )
    expect(r.status).toBe(3)
    expect(r.stdout).toMatch(/^UNKNOWN - .*refused the connection/)
    expect(r.stdout + r.stderr).not.toContain('Secret-Pw-1')
    const history = JSON.parse(readFileSync(join(dir, 'state', 'capacity-history.json'), 'utf8'))
    expect(history.samples.length).toBeGreaterThanOrEqual(2)
    expect(history.samples[0].databaseBytes).toBeGreaterThan(0)
  })
})
