import {existsSync} from 'node:fs'
import {dirname, isAbsolute, resolve} from 'node:path'

import {ConfigError} from '../errors.js'
import {registerSecret} from '../output/redact.js'
import {parseEnvText} from './env-file.js'
import {readConfigText} from './files.js'
import {location} from './findings.js'
import {composeHostView} from '../topology/host.js'
import {BACKEND_ENV_KEYS, backendEnvSchema, chargeOpsYamlSchema, type BackendEnv, type ChargeOpsYaml} from './schema.js'
import {parseYamlText, validateYaml} from './yaml-file.js'

export type SourceKind = 'default' | 'charge-ops.yaml' | '.env' | 'environment' | 'flag'

export interface SettingSource {
  source: SourceKind
  file?: string
  line?: number
  /** the environment variable or flag name the value came from */
  name?: string
}

export interface LoadOptions {
  /** --config / CHARGE_OPS_CONFIG */
  configPath?: string
  /** --env-file / CHARGE_OPS_ENV_FILE */
  envFile?: string
  /** --repo (flags beat everything) */
  repository?: string
  /** --stack (flags beat everything) */
  stack?: string
  cwd?: string
  env?: NodeJS.ProcessEnv
}

/** The merged configuration every command works from. Paths are absolute. */
export interface Settings {
  baseDir: string
  configPath?: string
  envFilePath?: string
  yaml: ChargeOpsYaml
  backendEnv: BackendEnv
  stack: string
  target: ChargeOpsYaml['target']
  stateDir: string
  repository?: string
  databaseUrl?: string
  /**
   * CHARGE_OPS_ADMIN_URL: the connection for what creates databases or must keep owners (restore
   * db, the restore drill, upgrade --rehearse); only from the environment, never from a file
   */
  adminDatabaseUrl?: string
  redisUrl?: string
  chromaUrl?: string
  uploadsDir?: string
  chromaDir?: string
  /** provenance of every merged value, keyed like `config show` prints it */
  sources: Record<string, SettingSource>
}

export const DEFAULT_CONFIG_FILE = 'charge-ops.yaml'

/** charge-ops.yaml, validated (ConfigError naming file:line), with the provenance of the keys it sets. */
function readYamlConfig(configPath: string, sources: Record<string, SettingSource>): ChargeOpsYaml {
  const file = readConfigText(configPath, 'charge-ops.yaml')
  const parsed = parseYamlText(file.text, configPath)
  const {value, findings} = validateYaml(parsed, chargeOpsYamlSchema, 'yaml')
  if (!value)
    throw invalid(
      findings.map((f) => `${location(f)}: ${f.message}`),
      configPath,
    )
  const yamlSource = (key: string): SettingSource => ({
    source: 'charge-ops.yaml',
    file: configPath,
    line: lineFor(parsed, key),
  })
  for (const key of ['stack', 'target', 'paths.stateDir', 'paths.envFile', 'backup.repository']) {
    if (parsed.document.getIn(key.split('.')) !== undefined) sources[key] = yamlSource(key)
  }
  return value
}

/** The backend .env's entries (ConfigError on a syntax error). */
function readEnvFileValues(envFilePath: string): Record<string, {value: string; line: number}> {
  const fileValues: Record<string, {value: string; line: number}> = {}
  const file = readConfigText(envFilePath, '.env file')
  const parsed = parseEnvText(file.text, envFilePath)
  const errors = parsed.findings.filter((f) => f.severity === 'error')
  if (errors.length > 0)
    throw invalid(
      errors.map((f) => `${location(f)}: ${f.message}`),
      envFilePath,
    )
  for (const entry of parsed.entries.values()) fileValues[entry.key] = {value: entry.value, line: entry.line}
  return fileValues
}

/**
 * The backend settings: the environment over the .env, secrets registered with the redactor,
 * validated (ConfigError naming where each bad value came from).
 */
function mergeBackendEnv(
  env: NodeJS.ProcessEnv,
  fileValues: Record<string, {value: string; line: number}>,
  envFilePath: string | undefined,
  sources: Record<string, SettingSource>,
) {
  const merged: Record<string, string> = {}
  for (const key of BACKEND_ENV_KEYS) {
    if (env[key] !== undefined && env[key] !== '') {
      merged[key] = env[key]!
      sources[key] = {source: 'environment', name: key}
    } else if (fileValues[key]) {
      merged[key] = fileValues[key].value
      sources[key] = {source: '.env', file: envFilePath, line: fileValues[key].line}
    }
  }
  for (const key of ['SECRET_KEY', 'OPENAI_API_KEY']) registerSecret(merged[key])
  for (const key of ['DATABASE_URL', 'REDIS_URL', 'CHROMA_URL']) registerSecret(passwordOf(merged[key]))
  // The admin connection (restore drill, rehearsal): the environment, else the .env (init writes it there for compose).
  const adminDatabaseUrl = env.CHARGE_OPS_ADMIN_URL || fileValues.CHARGE_OPS_ADMIN_URL?.value || undefined
  registerSecret(passwordOf(adminDatabaseUrl))

  const envResult = backendEnvSchema.safeParse(merged)
  if (!envResult.success) {
    const messages = envResult.error.issues.map((issue) => {
      const key = String(issue.path[0])
      const src = sources[key]
      const where = src?.file ? `${src.file}:${src.line}` : src?.name ? `environment ${src.name}` : key
      return `${where}: ${key} ${issue.message}`
    })
    throw invalid(messages, envFilePath ?? 'environment')
  }
  return {backendEnv: envResult.data, adminDatabaseUrl}
}

/**
 * Loads and merges configuration with the precedence defaults < charge-ops.yaml < .env <
 * environment < flags. Invalid files raise ConfigError (exit 2) naming file:line;
 * `config validate` is the command that reports every finding.
 */
export function loadSettings(options: LoadOptions = {}): Settings {
  const cwd = options.cwd ?? process.cwd()
  const env = options.env ?? process.env
  const sources: Record<string, SettingSource> = {}

  const explicitConfig = options.configPath ?? env.CHARGE_OPS_CONFIG
  const configPath = explicitConfig
    ? resolve(cwd, explicitConfig)
    : existsSync(resolve(cwd, DEFAULT_CONFIG_FILE))
      ? resolve(cwd, DEFAULT_CONFIG_FILE)
      : undefined
  const baseDir = configPath ? dirname(configPath) : cwd

  const yaml = configPath ? readYamlConfig(configPath, sources) : chargeOpsYamlSchema.parse({})

  const at = (p: string) => (isAbsolute(p) ? p : resolve(baseDir, p))

  // The backend .env: flag/env > charge-ops.yaml paths.envFile > ./.env when present.
  const explicitEnvFile = options.envFile ?? env.CHARGE_OPS_ENV_FILE
  const envFilePath = explicitEnvFile
    ? resolve(cwd, explicitEnvFile)
    : existsSync(at(yaml.paths.envFile))
      ? at(yaml.paths.envFile)
      : undefined
  const fileValues = envFilePath ? readEnvFileValues(envFilePath) : {}
  const merged = mergeBackendEnv(env, fileValues, envFilePath, sources)
  const backendEnv = merged.backendEnv
  let adminDatabaseUrl = merged.adminDatabaseUrl
  // On the host of a compose deployment the .env's in-network names are reached through the published ports.
  const hostView = composeHostView(yaml, {...backendEnv, CHARGE_OPS_ADMIN_URL: adminDatabaseUrl}, env)
  if (hostView) {
    Object.assign(
      backendEnv,
      Object.fromEntries(
        Object.entries(hostView.env).filter(([key, value]) => key in backendEnv && value !== undefined),
      ),
    )
    adminDatabaseUrl = hostView.env.CHARGE_OPS_ADMIN_URL
    if (hostView.uploadsDir) backendEnv.UPLOADS_DIR = hostView.uploadsDir
    if (hostView.chromaDir) backendEnv.CHROMA_PERSIST_DIRECTORY = hostView.chromaDir
  }

  let repository = yaml.backup.repository
  if (env.CHARGE_OPS_REPO) {
    repository = env.CHARGE_OPS_REPO
    sources['backup.repository'] = {source: 'environment', name: 'CHARGE_OPS_REPO'}
  }
  if (options.repository) {
    repository = options.repository
    sources['backup.repository'] = {source: 'flag', name: '--repo'}
  }
  if (repository && !repository.startsWith('s3://')) repository = at(repository)

  let stateDir = at(yaml.paths.stateDir)
  if (env.CHARGE_OPS_STATE_DIR) {
    stateDir = resolve(cwd, env.CHARGE_OPS_STATE_DIR)
    sources['paths.stateDir'] = {source: 'environment', name: 'CHARGE_OPS_STATE_DIR'}
  }
  let stack = yaml.stack
  if (options.stack) {
    if (!/^[a-z0-9][a-z0-9-]*$/.test(options.stack))
      throw new ConfigError(`invalid --stack ${JSON.stringify(options.stack)}`, {
        code: 'CONFIG_INVALID',
        hint: 'lower-case letters, digits and dashes (the repository folder of the stack)',
      })
    stack = options.stack
    sources.stack = {source: 'flag', name: '--stack'}
  }
  for (const key of ['stack', 'target', 'paths.stateDir', 'backup.repository']) sources[key] ??= {source: 'default'}

  return {
    baseDir,
    configPath,
    envFilePath,
    yaml,
    backendEnv,
    stack,
    target: yaml.target,
    stateDir,
    repository,
    databaseUrl: backendEnv.DATABASE_URL,
    adminDatabaseUrl,
    redisUrl: backendEnv.REDIS_URL,
    chromaUrl: backendEnv.CHROMA_URL,
    uploadsDir: backendEnv.UPLOADS_DIR ? at(backendEnv.UPLOADS_DIR) : undefined,
    chromaDir: backendEnv.CHROMA_PERSIST_DIRECTORY ? at(backendEnv.CHROMA_PERSIST_DIRECTORY) : undefined,
    sources,
  }
}

function lineFor(parsed: ReturnType<typeof parseYamlText>, dotted: string): number | undefined {
  const node = parsed.document.getIn(dotted.split('.'), true) as {range?: number[]} | undefined
  return node?.range ? parsed.lineCounter.linePos(node.range[0]).line : undefined
}

export function passwordOf(url: string | undefined): string | undefined {
  if (!url) return undefined
  try {
    const parsed = new URL(url)
    return parsed.password ? decodeURIComponent(parsed.password) : undefined
  } catch {
    return undefined
  }
}

function invalid(messages: string[], file: string): ConfigError {
  const shown = messages.slice(0, 5)
  const more = messages.length > shown.length ? `\n  … and ${messages.length - shown.length} more` : ''
  return new ConfigError(`invalid configuration in ${file}:\n  ${shown.join('\n  ')}${more}`, {
    hint: 'Run `charge-ops config validate` to see every finding with its fix.',
  })
}

/** Throws a clear error when a setting a command needs is missing. */
export function requireSetting<T>(value: T | undefined, name: string, how: string): T {
  if (value === undefined || value === null || value === '') {
    throw new ConfigError(`${name} is not configured`, {code: 'CONFIG_MISSING', hint: how})
  }
  return value
}
