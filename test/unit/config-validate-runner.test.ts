/** config validate as a whole: discovery, cross-file rules, exit codes, SARIF and redaction. */
import {chmodSync, cpSync, mkdtempSync, readFileSync, writeFileSync} from 'node:fs'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {describe, expect, it} from 'vitest'

import {crossFileFindings} from '../../src/config/validate/cross.js'
import {parseEnvForValidation} from '../../src/config/validate/env.js'
import {parsePostgresqlConf} from '../../src/config/validate/postgresql-conf.js'
import {parseRedisConf} from '../../src/config/validate/redis-conf.js'
import {renderText, toSarif} from '../../src/config/validate/render.js'
import {inferKind, validateConfig} from '../../src/config/validate/runner.js'
import {validateCompose} from '../../src/config/validate/compose.js'

const GB = 1024 ** 3
const fixtures = join(import.meta.dirname, '..', 'fixtures', 'config')
const copyFixture = (name: string) => {
  const dir = mkdtempSync(join(tmpdir(), 'charge-ops-validate-'))
  cpSync(join(fixtures, name), dir, {recursive: true})
  for (const secretFile of ['.env', 'redis.conf']) {
    try {
      chmodSync(join(dir, secretFile), 0o600)
    } catch {
      // not in this fixture
    }
  }
  return dir
}

describe('validateConfig', () => {
  it('the good deployment folder is clean under strict with a 16GB host', () => {
    const report = validateConfig({cwd: copyFixture('good'), hostRamBytes: 16 * GB, env: {}})
    expect(report.files.map((f) => f.kind).sort()).toEqual([
      'backend-env',
      'charge-ops-yaml',
      'compose',
      'crontab',
      'frontend-env',
      'postgresql-conf',
      'redis-conf',
    ])
    expect(report.strict).toBe(true)
    expect(report.findings.filter((f) => f.severity !== 'info')).toEqual([])
    expect(report.exitCode).toBe(0)
  })

  it('the same folder on an 8GB host: shared_buffers and effective_cache_size are too big, strict fails on warnings', () => {
    const report = validateConfig({cwd: copyFixture('good'), hostRamBytes: 8 * GB, env: {}})
    expect(report.findings.map((f) => f.rule)).toEqual(
      expect.arrayContaining(['postgresql/shared-buffers', 'postgresql/effective-cache-size']),
    )
    expect(report.exitCode).toBe(1)
  })

  it("the guide's own examples break the cross-file rules", () => {
    const report = validateConfig({cwd: copyFixture('guide'), hostRamBytes: 32 * GB, env: {}})
    const got = report.findings.map((f) => `${f.file}:${f.line ?? ''}:${f.rule}`)
    expect(got).toEqual(
      expect.arrayContaining([
        '.env:6:cross/redis-password',
        '.env:9:cross/mounted-path',
        '.env:5:env/database-sslmode',
        'docker-compose.yml:14:compose/published-database',
        'redis.conf:3:redis/requirepass-placeholder',
        'postgresql.conf:8:postgresql/archive-command',
      ]),
    )
    expect(report.exitCode).toBe(1)
  })

  it('a file mode looser than 0600 on a secret-holding .env is an error under strict', () => {
    const dir = copyFixture('good')
    chmodSync(join(dir, '.env'), 0o644)
    const report = validateConfig({cwd: dir, hostRamBytes: 16 * GB, env: {}})
    expect(report.findings).toContainEqual(
      expect.objectContaining({file: '.env', rule: 'file/mode', severity: 'error'}),
    )
  })

  it('unreadable input gives exit 2 and the other findings are still reported', () => {
    const dir = mkdtempSync(join(tmpdir(), 'charge-ops-validate-'))
    writeFileSync(join(dir, 'port.env'), 'PORT=eighty\n')
    const report = validateConfig({cwd: dir, positional: ['missing.env', 'port.env'], env: {}})
    expect(report.exitCode).toBe(2)
    expect(report.findings.map((f) => `${f.file}:${f.rule}`)).toEqual(
      expect.arrayContaining(['missing.env:input/unreadable', 'port.env:env/port']),
    )
  })

  it('an empty folder has nothing to validate (exit 2)', () => {
    const report = validateConfig({cwd: mkdtempSync(join(tmpdir(), 'charge-ops-validate-')), env: {}})
    expect(report.exitCode).toBe(2)
    expect(report.findings[0].message).toMatch(/no configuration files found/)
  })

  it('warnings alone exit 0 without --strict and 1 with it', () => {
    const dir = mkdtempSync(join(tmpdir(), 'charge-ops-validate-'))
    writeFileSync(join(dir, 'crontab'), '0 2 * * * date +%F\n')
    expect(validateConfig({cwd: dir, env: {}}).exitCode).toBe(0)
    expect(validateConfig({cwd: dir, env: {}, strict: true}).exitCode).toBe(1)
  })

  it.each([
    ['.env', 'backend-env'],
    ['backend.env', 'backend-env'],
    ['.env.production', 'frontend-env'],
    ['frontend.env', 'frontend-env'],
    ['docker-compose.yml', 'compose'],
    ['compose.prod.yaml', 'compose'],
    ['charge-ops.yaml', 'charge-ops-yaml'],
    ['bad.charge-ops.yaml', 'charge-ops-yaml'],
    ['postgresql.conf', 'postgresql-conf'],
    ['redis-prod.conf', 'redis-conf'],
    ['crontab', 'crontab'],
    ['nightly.cron', 'crontab'],
    ['notes.txt', undefined],
  ])('inferKind(%s) = %s', (name, kind) => expect(inferKind(name)).toBe(kind))
})

describe('cross-file rules', () => {
  const backend = (text: string) => parseEnvForValidation(text, '.env')
  it('REDIS_URL password vs requirepass: match, mismatch, missing', () => {
    const redis = parseRedisConf('requirepass s3cr3t-Pl4nted-redis\n', 'redis.conf')
    const run = (url: string) =>
      crossFileFindings({backendEnv: backend(`REDIS_URL=${url}\n`), redis}).map((f) => f.message)
    expect(run('redis://:s3cr3t-Pl4nted-redis@redis:6379/0')).toEqual([])
    expect(run('redis://:wrong-Pl4nted@redis:6379/0')[0]).toMatch(/differs from requirepass in redis.conf:1/)
    expect(run('redis://redis:6379/0')[0]).toMatch(/no password/)
    expect(JSON.stringify(run('redis://:wrong-Pl4nted@redis:6379/0'))).not.toMatch(/Pl4nted/)
  })
  it('pools must fit max_connections minus reserved', () => {
    const postgresql = parsePostgresqlConf(
      'max_connections = 100\nsuperuser_reserved_connections = 3\n',
      'postgresql.conf',
    )
    const yaml = (service: object) => ({file: 'charge-ops.yaml', serviceLine: 3, value: {service} as never})
    const rules = (service: object) =>
      crossFileFindings({postgresql, yaml: yaml(service)}).map((f) => `${f.severity}:${f.line}:${f.rule}`)
    expect(rules({workers: 4, poolSize: 20})).toEqual([])
    expect(rules({workers: 5, poolSize: 20})).toEqual(['error:3:cross/connection-budget'])
    expect(rules({workers: 19, poolSize: 5})).toEqual(['warning:3:cross/connection-budget'])
    expect(rules({workers: 8, poolSize: 20, pgbouncer: {defaultPoolSize: 50}})).toEqual([])
  })
  it('CHROMA_PERSIST_DIRECTORY and UPLOADS_DIR must be mounted paths; URL hosts must be services', () => {
    const compose = validateCompose(
      'services:\n  postgres: {image: postgres:15}\n  backend:\n    build: ./backend\n    volumes: [uploads_data:/app/uploads, chromadb_data:/app/chromadb_data]\nvolumes: {uploads_data: {}, chromadb_data: {}}\n',
      'docker-compose.yml',
    ).model!
    const found = crossFileFindings({
      compose,
      backendEnv: backend(
        'CHROMA_PERSIST_DIRECTORY=/var/lib/chroma\nUPLOADS_DIR=/app/uploads/\nDATABASE_URL=postgresql://a:b@db:5432/x\n',
      ),
    })
    expect(found.map((f) => `${f.line}:${f.key}:${f.rule}`)).toEqual([
      '1:CHROMA_PERSIST_DIRECTORY:cross/mounted-path',
      '3:DATABASE_URL:cross/service-host',
    ])
    expect(found[0].fix).toContain('/app/chromadb_data')
  })
})

describe('output', () => {
  it('SARIF 2.1.0 with rules, levels and physical locations', () => {
    const report = validateConfig({cwd: copyFixture('guide'), hostRamBytes: 32 * GB, env: {}})
    const sarif = toSarif(report, '1.2.3') as {
      version: string
      runs: Array<{
        tool: {driver: {rules: Array<{id: string}>}}
        results: Array<{
          ruleId: string
          level: string
          locations: Array<{physicalLocation: {artifactLocation: {uri: string}; region?: {startLine: number}}}>
        }>
      }>
    }
    expect(sarif.version).toBe('2.1.0')
    const run = sarif.runs[0]
    expect(run.results).toHaveLength(report.findings.length)
    const ids = run.tool.driver.rules.map((r) => r.id)
    for (const result of run.results) expect(ids).toContain(result.ruleId)
    const sslmode = run.results.find((r) => r.ruleId === 'env/database-sslmode')!
    expect(sslmode.level).toBe('error')
    expect(sslmode.locations[0].physicalLocation).toEqual({
      artifactLocation: {uri: '.env', uriBaseId: '%SRCROOT%'},
      region: {startLine: 5},
    })
    expect(run.results.find((r) => r.ruleId === 'compose/version')!.level).toBe('note')
  })

  it('text, JSON and SARIF never contain the secrets of the files', () => {
    const dir = copyFixture('good')
    const report = validateConfig({cwd: dir, hostRamBytes: 1 * GB, env: {}})
    const text = renderText(report)
    const secrets = [
      'Gx7pQ2vL9mN4rT8wZk3',
      '9f3b6c1d8e2a4f7b0c5d9e1a3b7c2f6e',
      '3c9f0e7a5b2d4c6e8f1a3b5c7d9e0f2a4b6c8d0e1f3a5b7c9d2e4f6a8b0c1d3e',
    ]
    for (const secret of secrets)
      expect(readFileSync(join(dir, secret.startsWith('9f') ? 'redis.conf' : '.env'), 'utf8')).toContain(secret)
    const outputs = [text, JSON.stringify(report.findings), JSON.stringify(toSarif(report, '0'))]
    for (const out of outputs) for (const secret of secrets) expect(out).not.toContain(secret)
    expect(text).toMatch(/postgresql.conf:\d+: warning \[shared_buffers\]/)
  })
})
