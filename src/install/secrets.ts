/**
 * The secrets init writes: generated once, then read back from the files already on disk on
 * every rerun, so that re-running init never rotates a password that a running database or a
 * signed session already depends on.
 */
import {randomBytes} from 'node:crypto'
import {existsSync, readFileSync} from 'node:fs'
import {join} from 'node:path'

import {parseAllDocuments} from 'yaml'

import {parseEnvText} from '../config/env-file.js'
import {passwordOf} from '../config/settings.js'
import {registerSecret} from '../output/redact.js'

export interface InitSecrets {
  /** the backend's SECRET_KEY (session / JWT signing) */
  secretKey: string
  /** the PostgreSQL superuser (self-hosted only) */
  postgresPassword: string
  /** charge_user: the application's DML role */
  appDbPassword: string
  /** charge_migrator: owns the schema, runs migrations and backups */
  migratorDbPassword: string
  redisPassword: string
}

/** The backup repository's S3 credentials (only from the environment or a hidden prompt, never a flag). */
export interface RepositoryCredentials {
  accessKeyId: string
  secretAccessKey: string
}

export const SECRET_NAMES: ReadonlyArray<keyof InitSecrets> = [
  'secretKey',
  'postgresPassword',
  'appDbPassword',
  'migratorDbPassword',
  'redisPassword',
]

/** Hex only: safe inside URLs, YAML, .env and redis.conf without any quoting or escaping. */
export function generateSecrets(random: (bytes: number) => Buffer = randomBytes): InitSecrets {
  return {
    secretKey: random(32).toString('hex'),
    postgresPassword: random(24).toString('hex'),
    appDbPassword: random(24).toString('hex'),
    migratorDbPassword: random(24).toString('hex'),
    redisPassword: random(24).toString('hex'),
  }
}

function readEnv(path: string): Map<string, string> {
  if (!existsSync(path)) return new Map()
  const parsed = parseEnvText(readFileSync(path, 'utf8'), path)
  return new Map([...parsed.entries.values()].map((e) => [e.key, e.value]))
}

/** Secrets found in the files a previous init wrote into `dir` (any target). */
export function readExistingSecrets(dir: string): Partial<InitSecrets> {
  const found: Partial<InitSecrets> = {}
  const take = (name: keyof InitSecrets, value: string | undefined) => {
    if (value && !found[name]) found[name] = value
  }
  const env = readEnv(join(dir, '.env'))
  take('secretKey', env.get('SECRET_KEY'))
  take('appDbPassword', passwordOf(env.get('DATABASE_URL')))
  take('migratorDbPassword', passwordOf(env.get('MIGRATION_DATABASE_URL')))
  take('redisPassword', passwordOf(env.get('REDIS_URL')))
  const pg = readEnv(join(dir, 'postgres.env'))
  take('postgresPassword', pg.get('POSTGRES_PASSWORD'))
  take('appDbPassword', pg.get('CHARGE_APP_DB_PASSWORD'))
  take('migratorDbPassword', pg.get('CHARGE_MIGRATOR_DB_PASSWORD'))
  const k8sSecret = join(dir, 'k8s', 'secret.yaml')
  if (existsSync(k8sSecret)) {
    const data: Record<string, string> = {}
    for (const doc of parseAllDocuments(readFileSync(k8sSecret, 'utf8'))) {
      const value = doc.toJS() as {stringData?: Record<string, string>} | null
      Object.assign(data, value?.stringData ?? {})
    }
    take('secretKey', data.SECRET_KEY)
    take('postgresPassword', data.POSTGRES_PASSWORD)
    take('appDbPassword', data.CHARGE_APP_DB_PASSWORD)
    take('migratorDbPassword', data.CHARGE_MIGRATOR_DB_PASSWORD)
    take('redisPassword', data.REDIS_PASSWORD)
  }
  // A placeholder someone left behind is not a secret worth keeping.
  for (const name of SECRET_NAMES) {
    const value = found[name]
    if (value !== undefined && (value.length < 16 || /replace|change|\$\{/i.test(value))) delete found[name]
  }
  return found
}

/** Existing secrets win; only what is missing is generated. Every value is registered with the redactor. */
export function resolveSecrets(
  dir: string,
  generate: () => InitSecrets = generateSecrets,
): {secrets: InitSecrets; reused: Array<keyof InitSecrets>} {
  const existing = readExistingSecrets(dir)
  const fresh = generate()
  const secrets = {...fresh, ...existing} as InitSecrets
  for (const name of SECRET_NAMES) registerSecret(secrets[name])
  return {secrets, reused: SECRET_NAMES.filter((n) => existing[n] !== undefined)}
}
