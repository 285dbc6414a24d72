import {mkdtempSync, writeFileSync} from 'node:fs'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {describe, expect, it} from 'vitest'

import {loadSettings} from '../../src/config/settings.js'
import {ExitCode} from '../../src/errors.js'

function scratch(files: Record<string, string>): string {
  const dir = mkdtempSync(join(tmpdir(), 'charge-ops-settings-'))
  for (const [name, text] of Object.entries(files)) writeFileSync(join(dir, name), text)
  return dir
}

describe('loadSettings precedence: defaults < charge-ops.yaml < .env < environment < flags', () => {
  it('uses defaults when there is no file', () => {
    const dir = scratch({})
    const s = loadSettings({cwd: dir, env: {}})
    expect(s.stack).toBe('charge-analysis')
    expect(s.stateDir).toBe(join(dir, '.charge-ops'))
    expect(s.repository).toBeUndefined()
    expect(s.sources.stack.source).toBe('default')
  })

  it('layers yaml, .env, environment and flags with provenance', () => {
    const dir = scratch({
      'charge-ops.yaml': 'stack: prod-east\nbackup:\n  repository: ./backups\n',
      '.env': 'DATABASE_URL=postgresql://app:filepw@db:5432/charge\nREDIS_URL=redis://redis:6379/0\nPORT=8001\n',
    })
    const fromFiles = loadSettings({cwd: dir, env: {}})
    expect(fromFiles.stack).toBe('prod-east')
    expect(fromFiles.repository).toBe(join(dir, 'backups'))
    expect(fromFiles.sources['backup.repository']).toMatchObject({source: 'charge-ops.yaml', line: 3})
    expect(fromFiles.databaseUrl).toContain('filepw')
    expect(fromFiles.sources.DATABASE_URL).toMatchObject({source: '.env', line: 1})

    const fromEnv = loadSettings({
      cwd: dir,
      env: {DATABASE_URL: 'postgresql://app:envpw@db2/charge', CHARGE_OPS_REPO: 's3://bucket/prefix'},
    })
    expect(fromEnv.databaseUrl).toContain('envpw')
    expect(fromEnv.sources.DATABASE_URL).toMatchObject({source: 'environment'})
    expect(fromEnv.repository).toBe('s3://bucket/prefix')

    const fromFlag = loadSettings({cwd: dir, env: {CHARGE_OPS_REPO: 's3://bucket/prefix'}, repository: '/srv/repo'})
    expect(fromFlag.repository).toBe('/srv/repo')
    expect(fromFlag.sources['backup.repository']).toMatchObject({source: 'flag'})
  })

  it('rejects an invalid charge-ops.yaml with exit 2, naming file and line', () => {
    const dir = scratch({'charge-ops.yaml': 'stack: ok\nbackup:\n  retension: 3\n'})
    try {
      loadSettings({cwd: dir, env: {}})
      expect.unreachable()
    } catch (error) {
      expect((error as {exitCode: number}).exitCode).toBe(ExitCode.usage)
      expect((error as Error).message).toContain(`${join(dir, 'charge-ops.yaml')}:3`)
      expect((error as Error).message).toContain('retension')
    }
  })

  it('rejects a non-numeric PORT naming the .env line, without echoing secrets', () => {
    const dir = scratch({'.env': 'SECRET_KEY=supersecretvalue-1234567890\nPORT=eighty\n'})
    try {
      loadSettings({cwd: dir, env: {}})
      expect.unreachable()
    } catch (error) {
      expect((error as Error).message).toContain(`${join(dir, '.env')}:2`)
      expect((error as Error).message).not.toContain('supersecretvalue')
    }
  })
})

describe('charge-ops.yaml migrations timeouts: the one duration grammar of src/core/units', () => {
  it('accepts what --lock-timeout accepts (30min, 1.5h, a bare number of ms) and refuses what it refuses', () => {
    const load = (value: string) =>
      loadSettings({
        cwd: scratch({'charge-ops.yaml': `migrations:\n  lockTimeout: ${JSON.stringify(value)}\n`}),
        env: {},
      })
    for (const ok of ['5s', '30min', '1.5h', '250', '0']) expect(load(ok).yaml.migrations.lockTimeout).toBe(ok)
    for (const bad of ['ten', '5 parsecs', '-1s', ''])
      expect(() => load(bad), bad).toThrow(/lockTimeout.*not a duration|not a duration/)
  })
})
