/** config validate: one table per rule family, each row a small input and the rule it must (or must not) raise. */
import {describe, expect, it} from 'vitest'

import {validateChargeOpsYaml} from '../../src/config/validate/charge-ops-yaml.js'
import {validateCompose} from '../../src/config/validate/compose.js'
import {cronProblem, validateCrontab} from '../../src/config/validate/cron.js'
import {parseEnvForValidation, validateBackendEnv, validateFrontendEnv} from '../../src/config/validate/env.js'
import {parsePostgresqlConf, validatePostgresqlConf} from '../../src/config/validate/postgresql-conf.js'
import {parseRedisConf, validateRedisConf} from '../../src/config/validate/redis-conf.js'
import type {RuleContext} from '../../src/config/validate/types.js'

const GB = 1024 ** 3
const lax: RuleContext = {strict: false, hostRamBytes: 16 * GB}
const strict: RuleContext = {strict: true, hostRamBytes: 16 * GB}
const BASE = [
  'DATABASE_URL=postgresql://app:Zq9w8e7r6t5y4u3i@127.0.0.1:5432/charge',
  'REDIS_URL=redis://127.0.0.1:6379/0',
  'SECRET_KEY=0123456789abcdef0123456789abcdef0123',
]
const env = (lines: string[], ctx = lax, base = true) =>
  validateBackendEnv(parseEnvForValidation([...(base ? BASE : []), ...lines].join('\n'), '.env'), ctx)
const rules = (findings: Array<{rule: string; severity: string}>) => findings.map((f) => `${f.severity}:${f.rule}`)

describe('backend .env', () => {
  const cases: Array<[string, string[], RuleContext, string | null, boolean?]> = [
    ['a clean file', [], strict, null],
    ['a line that is not KEY=VALUE', ['just words'], lax, 'error:env/syntax'],
    [
      'a missing DATABASE_URL',
      ['SECRET_KEY=0123456789abcdef0123456789abcdef0123', 'REDIS_URL=redis://h:6379/0'],
      lax,
      'error:env/required',
      false,
    ],
    ['a non-numeric PORT', ['PORT=eighty'], lax, 'error:env/port'],
    ['PORT out of range', ['PORT=70000'], lax, 'error:env/port'],
    ['an unknown ENVIRONMENT', ['ENVIRONMENT=prod'], lax, 'error:env/type'],
    ['a mysql DATABASE_URL', ['DATABASE_URL=mysql://a:b@h/db'], lax, 'error:env/database-url'],
    [
      'a DATABASE_URL that does not parse',
      ['DATABASE_URL=postgresql://a:b@h:99999999/db'],
      lax,
      'error:env/database-url',
    ],
    ['an http REDIS_URL', ['REDIS_URL=http://h:6379'], lax, 'error:env/redis-url'],
    ['a placeholder SECRET_KEY (lax: warning)', ['SECRET_KEY=REPLACE_ME'], lax, 'warning:env/secret-key-placeholder'],
    ['changeme SECRET_KEY (strict: error)', ['SECRET_KEY=changeme'], strict, 'error:env/secret-key-placeholder'],
    ['a short SECRET_KEY under strict', ['SECRET_KEY=s7Hd92kLq0'], strict, 'error:env/secret-key-short'],
    ['an interpolated SECRET_KEY is a note', ['SECRET_KEY=${JWT_SECRET}'], strict, 'info:env/interpolated'],
    [
      'a truncated ALLOWED_ORIGINS',
      ['ALLOWED_ORIGINS=["https://a.example.com", "https://b.exa'],
      lax,
      'error:env/allowed-origins',
    ],
    ['ALLOWED_ORIGINS not an array', ['ALLOWED_ORIGINS=https://a.example.com'], lax, 'error:env/allowed-origins'],
    ['an origin with a path', ['ALLOWED_ORIGINS=["https://a.example.com/app"]'], lax, 'error:env/allowed-origins'],
    ['a * origin (strict)', ['ALLOWED_ORIGINS=["*"]'], strict, 'error:env/allowed-origins-wildcard'],
    ['a * origin (lax: warning)', ['ALLOWED_ORIGINS=["*"]'], lax, 'warning:env/allowed-origins-wildcard'],
    [
      'a remote database without sslmode (strict)',
      ['DATABASE_URL=postgresql://a:b@db.example.com/charge'],
      strict,
      'error:env/database-sslmode',
    ],
    [
      'sslmode=prefer is not enough (strict)',
      ['DATABASE_URL=postgresql://a:b@db.example.com/charge?sslmode=prefer'],
      strict,
      'error:env/database-sslmode',
    ],
    ['a typo of a known key', ['SECRT_KEY=x'], lax, 'warning:env/unknown-key'],
    ['a relative UPLOADS_DIR', ['UPLOADS_DIR=uploads'], lax, 'warning:env/relative-path'],
  ]
  it.each(cases)('%s', (_name, lines, ctx, expected, base = true) => {
    const found = rules(env(lines, ctx, base))
    if (expected === null) expect(found).toEqual([])
    else expect(found).toContain(expected)
  })

  it('sslmode=verify-full on a remote host and loopback without sslmode pass strict', () => {
    const notDuplicate = (r: string) => r !== 'warning:env/duplicate'
    expect(
      rules(env(['DATABASE_URL=postgresql://a:b@db.example.com/charge?sslmode=verify-full'], strict)).filter(
        notDuplicate,
      ),
    ).toEqual([])
    expect(rules(env(['DATABASE_URL=postgresql://a:b@localhost/charge'], strict)).filter(notDuplicate)).toEqual([])
  })

  it('findings carry the line and key, and never the value', () => {
    const findings = env(['SECRET_KEY=changeme-Pl4nted'], strict)
    const f = findings.find((x) => x.rule === 'env/secret-key-placeholder')!
    expect(f).toMatchObject({file: '.env', line: 4, key: 'SECRET_KEY', severity: 'error'})
    expect(JSON.stringify(findings)).not.toContain('Pl4nted')
  })
})

describe('frontend .env.production', () => {
  const fe = (text: string, ctx = lax) =>
    rules(validateFrontendEnv(parseEnvForValidation(text, '.env.production'), ctx))
  it.each([
    ['clean', 'VITE_API_URL=https://api.example.com/api/v1\nVITE_WS_URL=wss://api.example.com/ws', null],
    ['a secret in the bundle', 'VITE_API_URL=https://a.example.com\nVITE_SECRET_KEY=x', 'error:frontend/secret'],
    ['a non-VITE key', 'VITE_API_URL=https://a.example.com\nAPI_URL=x', 'warning:frontend/unknown-key'],
    ['missing VITE_API_URL', 'VITE_APP_TITLE=x', 'error:frontend/required'],
    [
      'ws URL with http scheme',
      'VITE_API_URL=https://a.example.com\nVITE_WS_URL=https://a.example.com/ws',
      'error:frontend/url',
    ],
  ])('%s', (_n, text, expected) => {
    if (expected === null) expect(fe(text, strict)).toEqual([])
    else expect(fe(text)).toContain(expected)
  })
})

describe('postgresql.conf against host RAM (the guide §6.1.4)', () => {
  const GOOD = [
    'max_connections = 200',
    'shared_buffers = 4GB',
    'effective_cache_size = 12GB',
    'work_mem = 32MB',
    'maintenance_work_mem = 256MB',
    'checkpoint_timeout = 15min',
    'archive_mode = on',
    "archive_command = 'x %p'",
    'ssl = on',
  ]
  const pg = (overrides: string[], ctx = strict) =>
    rules(validatePostgresqlConf(parsePostgresqlConf([...GOOD, ...overrides].join('\n'), 'postgresql.conf'), ctx))
  it.each([
    ['the guide table on 16GB', [], null],
    ['shared_buffers 128MB = 0.8 %', ['shared_buffers = 128MB'], 'warning:postgresql/shared-buffers'],
    ['shared_buffers 12GB = 75 %', ['shared_buffers = 12GB'], 'warning:postgresql/shared-buffers'],
    ['shared_buffers in 8kB pages (524288 = 4GB) is fine', ['shared_buffers = 524288'], null],
    ['effective_cache_size 4GB = 25 %', ['effective_cache_size = 4GB'], 'warning:postgresql/effective-cache-size'],
    ['work_mem × connections > RAM', ['work_mem = 128MB'], 'warning:postgresql/work-mem'],
    ['work_mem below the guide', ['work_mem = 4MB'], 'info:postgresql/work-mem'],
    ['maintenance_work_mem default', ['maintenance_work_mem = 64MB'], 'info:postgresql/maintenance-work-mem'],
    ['checkpoint_timeout 5min', ['checkpoint_timeout = 5min'], 'info:postgresql/checkpoint-timeout'],
    ['checkpoint_timeout out of range', ['checkpoint_timeout = 10s'], 'error:postgresql/range'],
    ['a memory value without a number', ['shared_buffers = lots'], 'error:postgresql/type'],
    ['archive_mode off under strict', ['archive_mode = off'], 'error:postgresql/archive-mode'],
    ['archive_mode on without a command', ["archive_command = ''"], 'error:postgresql/archive-command'],
    ['wal_level minimal with archiving', ['wal_level = minimal'], 'error:postgresql/wal-level'],
    ['an unclosed quote', ["archive_command = 'x"], 'error:postgresql/syntax'],
  ])('%s', (_n, overrides, expected) => {
    const found = pg(overrides as string[])
    if (expected === null) expect(found).toEqual([])
    else expect(found).toContain(expected)
  })
  it('archive_mode off is only a warning without strict', () => {
    expect(pg(['archive_mode = off'], lax)).toContain('warning:postgresql/archive-mode')
  })
  it('parameters left out are judged at their PostgreSQL defaults', () => {
    const findings = validatePostgresqlConf(parsePostgresqlConf('', 'postgresql.conf'), lax)
    const sb = findings.find((f) => f.rule === 'postgresql/shared-buffers')!
    expect(sb.message).toContain('128MB')
    expect(sb.message).toContain('default')
    expect(sb.fix).toBe('Set shared_buffers = 4GB.')
  })
})

describe('redis.conf', () => {
  const GOOD = [
    'bind 127.0.0.1',
    'protected-mode yes',
    'requirepass 9f3b6c1d8e2a4f7b0c5d9e1a3b7c2f6e',
    'appendonly yes',
    'maxmemory-policy noeviction',
  ]
  const redis = (lines: string[], ctx = strict) =>
    rules(validateRedisConf(parseRedisConf(lines.join('\n'), 'redis.conf'), ctx))
  it.each([
    ['a good file', GOOD, null],
    ['no requirepass (strict)', GOOD.filter((l) => !l.startsWith('requirepass')), 'error:redis/requirepass'],
    ['the guide placeholder', [...GOOD, 'requirepass <REPLACE_ME>'], 'error:redis/requirepass-placeholder'],
    ['protected-mode no', [...GOOD, 'protected-mode no'], 'error:redis/protected-mode'],
    ['open bind without password', ['bind 0.0.0.0', 'appendonly yes'], 'error:redis/open-bind'],
    ['no persistence at all', [...GOOD, 'appendonly no', 'save ""'], 'error:redis/persistence'],
    ['allkeys-lru evicts jobs', [...GOOD, 'maxmemory-policy allkeys-lru'], 'warning:redis/eviction-policy'],
    ['unbalanced quote', [...GOOD, 'requirepass "abc'], 'error:redis/syntax'],
  ])('%s', (_n, lines, expected) => {
    const found = redis(lines as string[])
    if (expected === null) expect(found).toEqual([])
    else expect(found).toContain(expected)
  })
})

describe('docker-compose.yml', () => {
  const compose = (text: string) => {
    const r = validateCompose(text, 'docker-compose.yml')
    return {unparsable: r.unparsable, found: rules(r.findings), findings: r.findings}
  }
  const good = `services:
  postgres:
    image: postgres:15
    volumes: [postgres_data:/var/lib/postgresql/data]
    healthcheck: {test: ["CMD-SHELL", "pg_isready"]}
  backend:
    build: ./charge-analysis-backend
    depends_on: {postgres: {condition: service_healthy}}
    volumes: [uploads_data:/app/uploads, chromadb_data:/app/chromadb_data, models_data:/app/models]
volumes: {postgres_data: {}, uploads_data: {}, chromadb_data: {}, models_data: {}}
`
  it('a good file has no findings', () => expect(compose(good).found).toEqual([]))
  it.each([
    ['no postgres healthcheck', good.replace(/    healthcheck.*\n/, ''), 'error:compose/postgres-healthcheck'],
    [
      'depends_on without service_healthy',
      good.replace('{postgres: {condition: service_healthy}}', '[postgres]'),
      'error:compose/depends-on-healthy',
    ],
    [
      'postgres data not on a volume',
      good.replace('    volumes: [postgres_data:/var/lib/postgresql/data]\n', ''),
      'error:compose/postgres-volume',
    ],
    [
      'postgres data on a bind mount',
      good.replace('postgres_data:/var', './pgdata:/var'),
      'warning:compose/named-volume',
    ],
    ['no models volume', good.replace(', models_data:/app/models', ''), 'error:compose/backend-volume'],
    [
      'postgres published on 0.0.0.0',
      good.replace('    image: postgres:15\n', '    image: postgres:15\n    ports: ["5432:5432"]\n'),
      'error:compose/published-database',
    ],
    ['an undeclared volume', good.replace('models_data: {}', 'other: {}'), 'error:compose/undeclared-volume'],
  ])('%s', (_n, text, expected) => expect(compose(text).found).toContain(expected))
  it('an exporter run from the postgres image (its own entrypoint) is not judged as a database server', () => {
    const exporter =
      '  postgres-exporter:\n    image: postgres:15\n    entrypoint: ["prometheus-postgres-exporter"]\nvolumes:'
    expect(compose(good.replace('volumes: {postgres_data', `${exporter} {postgres_data`)).found).toEqual([])
    // the same service without the entrypoint would be a second PostgreSQL without its volume
    expect(
      compose(
        good.replace(
          'volumes: {postgres_data',
          `${exporter.replace('    entrypoint: ["prometheus-postgres-exporter"]\n', '')} {postgres_data`,
        ),
      ).found,
    ).toContain('error:compose/postgres-volume')
  })
  it('postgres on loopback only is fine', () => {
    expect(
      compose(good.replace('    image: postgres:15\n', '    image: postgres:15\n    ports: ["127.0.0.1:5432:5432"]\n'))
        .found,
    ).toEqual([])
  })
  it('a YAML syntax error is unparsable, with its line', () => {
    const r = compose('services:\n  postgres:\n    image: [postgres\n')
    expect(r.unparsable).toBe(true)
    expect(r.findings[0]).toMatchObject({rule: 'yaml/syntax', file: 'docker-compose.yml'})
    expect(r.findings[0].line).toBeGreaterThan(0)
  })
})

describe('cron', () => {
  it.each([
    ['0 2 * * *', undefined],
    ['*/15 * * * 1-5', undefined],
    ['@daily', undefined],
    ['61 * * * *', /range 0-59/],
    ['0 2 * *', /4 fields/],
    ['0 0 0 2 * *', /6 fields/],
    ['@sometimes', /unknown keyword/],
  ])('%s', (expression, expected) => {
    const problem = cronProblem(expression)
    if (expected === undefined) expect(problem).toBeUndefined()
    else expect(problem).toMatch(expected)
  })
  it('crontab lines: schedule, command, % and the final newline', () => {
    const found = validateCrontab(
      'SHELL=/bin/bash\n0 2 * * * backup\n61 2 * * * x\n0 3 * * cmd\n0 4 * * * tar czf /b/$(date +%F).tgz /d\n5 5 * * * last',
      'crontab',
    )
    expect(found.map((f) => `${f.line}:${f.rule}`)).toEqual([
      '3:cron/expression',
      '4:cron/syntax',
      '5:cron/percent',
      '6:cron/final-newline',
    ])
  })
})

describe('charge-ops.yaml', () => {
  it.each([
    ['stack: demo\n', [], false],
    ['service:\n  workers: four\n', ['4:yaml/schema'.replace('4', '2')], false],
    ['backup:\n  retension: 3\n', ['2:yaml/unknown-key'], false],
    ['schedules:\n  nightly:\n    cron: "0 25 * * *"\n    command: x\n', ['3:yaml/cron'], false],
    ['backup:\n  repository: [x\n', ['yaml/syntax'], true],
  ])('%s', (text, expected, unparsable) => {
    const r = validateChargeOpsYaml(text, 'charge-ops.yaml')
    expect(r.unparsable).toBe(unparsable)
    const got = r.findings.map((f) => (unparsable ? f.rule : `${f.line}:${f.rule}`))
    for (const e of expected) expect(got).toContain(e)
    if (expected.length === 0) expect(got).toEqual([])
  })
})
