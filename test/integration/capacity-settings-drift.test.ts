/**
 * pg.settings_drift against a real server: init's own files (charge-ops.yaml with
 * paths.postgresqlConf → postgres/charge-ops.conf, rendered by planInit for a 1 GB / 2 CPU host)
 * are included into a PostgreSQL 15 cluster's postgresql.conf — the local target's conf.d
 * drop-in. The cluster overrides a few of init's values after the include (ssl: no certificate
 * here; archive_mode: no charge-ops on the server's PATH), then an operator runs ALTER SYSTEM
 * SET work_mem. Exactly those three settings are reported, with file:line, the value init chose and
 * the live value; every other setting matches once units are normalised (768MB vs 98304 × 8kB,
 * 15min vs 900 s, 7864kB wal_buffers …).
 */
import {chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync} from 'node:fs'
import {tmpdir} from 'node:os'
import {join} from 'node:path'

import {afterAll, beforeAll, describe, expect, it} from 'vitest'

import {runCapacity} from '../../src/capacity/index.js'
import {renderText} from '../../src/capacity/render.js'
import {loadSettings} from '../../src/config/settings.js'
import {parseAnswers} from '../../src/install/answers.js'
import {planInit} from '../../src/install/plan.js'
import {silentLogger} from '../../src/output/logger.js'
import {freePort, startPostgres, type PgCluster} from '../support/index.js'

let cluster: PgCluster
let dir: string
let confFile: string
let confText: string

const SECRETS = {
  secretKey: 'k'.repeat(64),
  postgresPassword: 'p'.repeat(32),
  appDbPassword: 'a'.repeat(32),
  migratorDbPassword: 'm'.repeat(32),
  redisPassword: 'r'.repeat(32),
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'capacity-drift-'))
  chmodSync(dir, 0o755) // the server's OS user reads the included file
  const answers = parseAnswers({
    target: 'local',
    domain: 'charge.example.com',
    host: {ram: '1GB', cpus: 2},
    backup: {repository: 's3://bucket/charge'},
  })
  for (const f of planInit(answers, {secrets: SECRETS, installDir: dir})) {
    if (f.path !== 'charge-ops.yaml' && f.path !== 'postgres/charge-ops.conf') continue
    mkdirSync(join(dir, f.path, '..'), {recursive: true, mode: 0o755})
    writeFileSync(join(dir, f.path), f.content, {mode: 0o644})
  }
  confFile = join(dir, 'postgres', 'charge-ops.conf')
  confText = readFileSync(confFile, 'utf8')
  expect(readFileSync(join(dir, 'charge-ops.yaml'), 'utf8')).toContain('postgresqlConf: postgres/charge-ops.conf')
  cluster = await startPostgres({
    name: 'capacity-drift',
    // init's file, then what this host cannot take from it (port / listen: the harness owns them)
    conf: {
      include: confFile,
      port: String(await freePort()),
      listen_addresses: '127.0.0.1',
      ssl: 'off',
      archive_mode: 'off',
    },
  })
})

afterAll(async () => {
  await cluster?.stop()
  if (dir) rmSync(dir, {recursive: true, force: true})
})

const lineOf = (name: string) => confText.split('\n').findIndex((l) => l.startsWith(`${name} =`)) + 1

async function drift() {
  const settings = loadSettings({
    cwd: dir,
    env: {DATABASE_URL: cluster.url(), CHARGE_OPS_STATE_DIR: join(dir, 'state')},
  })
  const report = await runCapacity({settings, logger: silentLogger, components: ['postgresql'], recordHistory: false})
  return {report, check: report.checks.find((c) => c.id === 'pg.settings_drift')!}
}

describe('settings drift against init’s postgresql.conf', () => {
  it('the server really runs init’s values (the include worked)', async () => {
    const rows = await cluster.query<{name: string; setting: string; unit: string | null}>(
      "SELECT name, setting, unit FROM pg_settings WHERE name IN ('effective_cache_size', 'checkpoint_timeout', 'max_wal_size', 'random_page_cost')",
    )
    const s = Object.fromEntries(rows.map((r) => [r.name, r.setting]))
    expect(s).toEqual({
      effective_cache_size: String((768 * 1024) / 8),
      checkpoint_timeout: '900',
      max_wal_size: '4096',
      random_page_cost: '1.1',
    })
  })

  it('reports exactly the settings that differ, with file:line and both values', async () => {
    let {check} = await drift()
    expect((check.details as {drift: {name: string}[]}).drift.map((d) => d.name).sort()).toEqual([
      'archive_mode',
      'ssl',
    ])
    expect(check).toMatchObject({status: 'warning', value: 2})

    await cluster.query("ALTER SYSTEM SET work_mem = '8MB'")
    await cluster.query('SELECT pg_reload_conf()')
    const r = await drift()
    check = r.check
    const rows = (check.details as {drift: {name: string; expected: string; actual: string; line: number}[]}).drift
    expect(rows.map((d) => d.name).sort()).toEqual(['archive_mode', 'ssl', 'work_mem'])
    expect(check.value).toBe(3)
    expect(rows.find((d) => d.name === 'work_mem')).toEqual({
      name: 'work_mem',
      expected: '4MB',
      actual: '8192 (kB)',
      line: lineOf('work_mem'),
    })
    expect(rows.find((d) => d.name === 'ssl')).toEqual({
      name: 'ssl',
      expected: 'on',
      actual: 'off',
      line: lineOf('ssl'),
    })
    expect(check.message).toContain(`work_mem: ${confFile}:${lineOf('work_mem')} wants 4MB, server has 8192 (kB)`)
    expect(check.remedy).toMatch(/postgresql\.auto\.conf/)
    expect(renderText(r.report)).toMatch(/WARNING\s+pg\.settings_drift/)
  })

  it('back in line after ALTER SYSTEM RESET: only the deliberate host overrides remain', async () => {
    await cluster.query('ALTER SYSTEM RESET work_mem')
    await cluster.query('SELECT pg_reload_conf()')
    const {check} = await drift()
    expect((check.details as {drift: {name: string}[]}).drift.map((d) => d.name).sort()).toEqual([
      'archive_mode',
      'ssl',
    ])
  })
})
