import {registerSecret} from '../../output/redact.js'
import {envRecord, parseEnvText, type EnvEntry, type ParsedEnvFile} from '../env-file.js'
import type {Finding} from '../findings.js'
import {BACKEND_ENV_KEYS, FRONTEND_ENV_KEYS} from '../schema.js'
import {isInterpolated, isPlaceholder} from './secrets.js'
import {findingsFor, strictSeverity, type RuleContext} from './types.js'
import {databaseHost, isLoopback, tryParseUrl, urlPassword, withoutInterpolation} from './urls.js'

const ENVIRONMENTS = ['development', 'staging', 'production', 'test']
const REQUIRED_BACKEND = ['DATABASE_URL', 'REDIS_URL', 'SECRET_KEY'] as const
const SECRET_VALUE_KEYS = ['SECRET_KEY', 'OPENAI_API_KEY']

/** Parses a .env and registers every secret it holds with the redactor before anything is printed. */
export function parseEnvForValidation(text: string, file: string): ParsedEnvFile {
  const parsed = parseEnvText(text, file)
  for (const entry of parsed.entries.values()) {
    if (SECRET_VALUE_KEYS.includes(entry.key) || /PASSWORD|SECRET|TOKEN|API_KEY/i.test(entry.key)) {
      if (!isPlaceholder(entry.value)) registerSecret(entry.value)
    }
    const url = tryParseUrl(entry.value)
    if (url) {
      const password = urlPassword(url)
      if (password && !isPlaceholder(password)) registerSecret(password)
    }
  }
  return parsed
}

/** True when the environment the backend .env declares is production (turns on strict rules). */
export function declaresProduction(parsed: ParsedEnvFile): boolean {
  return parsed.entries.get('ENVIRONMENT')?.value.trim().toLowerCase() === 'production'
}

/** Holds a real secret (so the file must be 0600)? */
export function holdsSecrets(parsed: ParsedEnvFile): boolean {
  for (const entry of parsed.entries.values()) {
    if (entry.value === '' || isInterpolated(entry.value)) continue
    if (/PASSWORD|SECRET|TOKEN|API_KEY|ACCESS_KEY/i.test(entry.key)) return true
    const url = tryParseUrl(entry.value)
    if (url && url.password && !isInterpolated(decodeURIComponent(url.password))) return true
  }
  return false
}

/** Mode rule shared by every secret-holding file. */
export function fileModeFinding(
  file: string,
  mode: number | undefined,
  ctx: RuleContext,
  line?: number,
): Finding | undefined {
  if (mode === undefined || process.platform === 'win32') return undefined
  if ((mode & 0o077) === 0) return undefined
  return {
    file,
    line,
    severity: strictSeverity(ctx),
    rule: 'file/mode',
    message: `the file holds secrets but its mode is ${(mode & 0o777).toString(8).padStart(4, '0')}: other users on the host can read it`,
    fix: `chmod 600 ${file}`,
  }
}

function levenshtein(a: string, b: string): number {
  const d = Array.from({length: a.length + 1}, (_, i) => [i, ...Array(b.length).fill(0)])
  for (let j = 1; j <= b.length; j++) d[0][j] = j
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++)
      d[i][j] = Math.min(d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + (a[i - 1] === b[j - 1] ? 0 : 1))
  }
  return d[a.length][b.length]
}

function suggest(key: string, known: readonly string[]): string | undefined {
  const best = known.map((k) => ({k, d: levenshtein(key.toUpperCase(), k)})).sort((x, y) => x.d - y.d)[0]
  return best && best.d <= 2 ? best.k : undefined
}

type Get = (key: string) => EnvEntry | undefined

/** Keys the service does not read (a likely typo named), required keys missing or empty. */
function checkKeys(parsed: ParsedEnvFile, get: Get, add: Add): void {
  for (const entry of parsed.entries.values()) {
    if ((BACKEND_ENV_KEYS as readonly string[]).includes(entry.key)) continue
    const near = suggest(entry.key, BACKEND_ENV_KEYS)
    if (near)
      add(
        'warning',
        'env/unknown-key',
        `${entry.key} is not a variable the service reads; did you mean ${near}?`,
        `Rename it to ${near}.`,
        entry.line,
        entry.key,
      )
  }
  for (const key of REQUIRED_BACKEND) {
    const entry = get(key)
    if (!entry) add('error', 'env/required', `${key} is missing`, requiredFix(key), undefined, key)
    else if (entry.value.trim() === '')
      add('error', 'env/required', `${key} is empty`, requiredFix(key), entry.line, key)
  }
}

/** ENVIRONMENT, PORT and HOST. */
function checkServerSettings(get: Get, add: Add): void {
  const environment = get('ENVIRONMENT')
  if (environment && !ENVIRONMENTS.includes(environment.value.trim().toLowerCase())) {
    add(
      'error',
      'env/type',
      `ENVIRONMENT must be one of ${ENVIRONMENTS.join(', ')}`,
      'Set ENVIRONMENT=production on servers.',
      environment.line,
      'ENVIRONMENT',
    )
  }
  const port = get('PORT')
  if (port) {
    const v = port.value.trim()
    if (!/^\d+$/.test(v))
      add('error', 'env/port', 'PORT is not a number', 'Set PORT to a port number such as 8000.', port.line, 'PORT')
    else if (Number(v) < 1 || Number(v) > 65_535)
      add(
        'error',
        'env/port',
        `PORT ${v} is outside 1–65535`,
        'Set PORT to a port number such as 8000.',
        port.line,
        'PORT',
      )
  }
  const host = get('HOST')
  if (host && host.value.trim() === '')
    add(
      'error',
      'env/required',
      'HOST is empty',
      'Set HOST=0.0.0.0 in a container, 127.0.0.1 behind a local proxy.',
      host.line,
      'HOST',
    )
}

/** SECRET_KEY strength (strict) and placeholder API keys. */
function checkSecrets(get: Get, ctx: RuleContext, add: Add): void {
  const secret = get('SECRET_KEY')
  if (secret && secret.value.trim() !== '') {
    const v = secret.value.trim()
    if (isInterpolated(v)) {
      add(
        'info',
        'env/interpolated',
        'SECRET_KEY comes from a ${…} reference filled in at deploy time; its strength is not checked here',
        'Run config validate where the real value is present, or check the secret store.',
        secret.line,
        'SECRET_KEY',
      )
    } else if (isPlaceholder(v)) {
      add(
        strictSeverity(ctx),
        'env/secret-key-placeholder',
        'SECRET_KEY is a template placeholder; anyone who knows the template can forge session tokens',
        'Generate one: openssl rand -hex 32',
        secret.line,
        'SECRET_KEY',
      )
    } else if (v.length < 32) {
      add(
        strictSeverity(ctx),
        'env/secret-key-short',
        `SECRET_KEY is ${v.length} characters; at least 32 are required`,
        'Generate one: openssl rand -hex 32',
        secret.line,
        'SECRET_KEY',
      )
    }
  }
  const openai = get('OPENAI_API_KEY')
  if (openai && openai.value.trim() !== '' && !isInterpolated(openai.value) && isPlaceholder(openai.value)) {
    add(
      'warning',
      'env/api-key-placeholder',
      'OPENAI_API_KEY is a placeholder',
      'Set the real key from your secret store, or remove the line to use the local embedder.',
      openai.line,
      'OPENAI_API_KEY',
    )
  }
}

/**
 * The backend .env: syntax, required keys, types (PORT, ENVIRONMENT), URLs that parse with the
 * right scheme, ALLOWED_ORIGINS as a JSON array of origins, and the strict (production) rules:
 * SECRET_KEY strength, no `*` origin, sslmode for remote databases.
 */
export function validateBackendEnv(parsed: ParsedEnvFile, ctx: RuleContext): Finding[] {
  const {findings, add} = findingsFor(parsed.file)
  findings.push(...parsed.findings)
  const get: Get = (key) => parsed.entries.get(key)
  checkKeys(parsed, get, add)
  checkServerSettings(get, add)
  checkDatabaseUrl(get('DATABASE_URL'), ctx, add)
  checkRedisUrl(get('REDIS_URL'), add)
  const chromaUrl = get('CHROMA_URL')
  if (chromaUrl && chromaUrl.value) checkHttpUrl(chromaUrl, add, 'env/chroma-url')
  checkSecrets(get, ctx, add)
  checkOrigins(get('ALLOWED_ORIGINS'), ctx, add)
  for (const key of ['CHROMA_PERSIST_DIRECTORY', 'UPLOADS_DIR']) {
    const entry = get(key)
    if (entry && entry.value && !entry.value.startsWith('/')) {
      add(
        'warning',
        'env/relative-path',
        `${key} is a relative path: it depends on the directory the service starts in`,
        'Use an absolute path (the one the volume is mounted at).',
        entry.line,
        key,
      )
    }
  }
  return findings
}

type Add = ReturnType<typeof findingsFor>['add']

function requiredFix(key: string): string {
  switch (key) {
    case 'DATABASE_URL':
      return 'Add DATABASE_URL=postgresql://charge_user:PASSWORD@HOST:5432/charge_analysis'
    case 'REDIS_URL':
      return 'Add REDIS_URL=redis://:PASSWORD@HOST:6379/0'
    default:
      return 'Add SECRET_KEY=<output of: openssl rand -hex 32>'
  }
}

function checkDatabaseUrl(entry: EnvEntry | undefined, ctx: RuleContext, add: Add): void {
  if (!entry || entry.value.trim() === '') return
  const url = tryParseUrl(withoutInterpolation(entry.value.trim()))
  if (!url) {
    add(
      'error',
      'env/database-url',
      'DATABASE_URL is not a valid URL',
      'Use postgresql://USER:PASSWORD@HOST:5432/DBNAME (percent-encode special characters in the password).',
      entry.line,
      'DATABASE_URL',
    )
    return
  }
  const scheme = url.protocol.replace(/:$/, '')
  if (!/^postgres(ql)?(\+[a-z0-9]+)?$/.test(scheme)) {
    add(
      'error',
      'env/database-url',
      `DATABASE_URL must use postgresql://, not ${scheme}://`,
      'Use postgresql://USER:PASSWORD@HOST:5432/DBNAME',
      entry.line,
      'DATABASE_URL',
    )
    return
  }
  if (url.port && (Number(url.port) < 1 || Number(url.port) > 65_535)) {
    add(
      'error',
      'env/database-url',
      'DATABASE_URL has an invalid port',
      'Use port 5432 (or 6432 for PgBouncer).',
      entry.line,
      'DATABASE_URL',
    )
  }
  if (url.pathname.replace(/^\//, '') === '') {
    add(
      'warning',
      'env/database-url',
      'DATABASE_URL names no database; the user name is used as the database name',
      'Append the database: …:5432/charge_analysis',
      entry.line,
      'DATABASE_URL',
    )
  }
  const host = databaseHost(url)
  const sslmode = url.searchParams.get('sslmode')
  if (ctx.strict && !isLoopback(host) && !/^(require|verify-ca|verify-full)$/.test(sslmode ?? '')) {
    add(
      'error',
      'env/database-sslmode',
      `DATABASE_URL connects to a non-loopback host${sslmode ? ` with sslmode=${sslmode}` : ''} without requiring TLS`,
      'Append ?sslmode=require (or verify-full with the CA) to DATABASE_URL (the guide §6.1.6).',
      entry.line,
      'DATABASE_URL',
    )
  }
}

function checkRedisUrl(entry: EnvEntry | undefined, add: Add): void {
  if (!entry || entry.value.trim() === '') return
  const url = tryParseUrl(withoutInterpolation(entry.value.trim()))
  if (!url || !['redis:', 'rediss:', 'unix:'].includes(url.protocol)) {
    add(
      'error',
      'env/redis-url',
      url ? `REDIS_URL must use redis:// or rediss://, not ${url.protocol}//` : 'REDIS_URL is not a valid URL',
      'Use redis://:PASSWORD@HOST:6379/0 (rediss:// for TLS).',
      entry.line,
      'REDIS_URL',
    )
    return
  }
  const db = url.pathname.replace(/^\//, '')
  if (db !== '' && !/^\d+$/.test(db))
    add(
      'error',
      'env/redis-url',
      'REDIS_URL database index is not a number',
      'End the URL with /0 (or another database number).',
      entry.line,
      'REDIS_URL',
    )
  if (url.port && (Number(url.port) < 1 || Number(url.port) > 65_535))
    add('error', 'env/redis-url', 'REDIS_URL has an invalid port', 'Use port 6379.', entry.line, 'REDIS_URL')
}

function checkHttpUrl(entry: EnvEntry, add: Add, rule: string, schemes = ['http:', 'https:']): void {
  const url = tryParseUrl(withoutInterpolation(entry.value.trim()))
  if (!url || !schemes.includes(url.protocol)) {
    add(
      'error',
      rule,
      `${entry.key} is not a ${schemes.map((s) => s.replace(':', '')).join('/')} URL`,
      `Write it as ${schemes[schemes.length - 1].replace(':', '')}://host[:port]/path.`,
      entry.line,
      entry.key,
    )
  }
}

function checkOrigins(entry: EnvEntry | undefined, ctx: RuleContext, add: Add): void {
  if (!entry) return
  const example = 'ALLOWED_ORIGINS=["https://app.example.com", "https://admin.example.com"]'
  let origins: unknown
  try {
    origins = JSON.parse(entry.value)
  } catch (error) {
    const truncated = /Unexpected end|Unterminated|end of JSON/i.test((error as Error).message)
    add(
      'error',
      'env/allowed-origins',
      `ALLOWED_ORIGINS is not a JSON array${truncated ? ' (it ends early: a missing ] or quote)' : ''}`,
      `Write it as a JSON array on one line: ${example}`,
      entry.line,
      'ALLOWED_ORIGINS',
    )
    return
  }
  if (!Array.isArray(origins) || origins.some((o) => typeof o !== 'string')) {
    add(
      'error',
      'env/allowed-origins',
      'ALLOWED_ORIGINS must be a JSON array of strings',
      `Write it as ${example}`,
      entry.line,
      'ALLOWED_ORIGINS',
    )
    return
  }
  for (const origin of origins as string[]) {
    if (origin === '*') {
      add(
        strictSeverity(ctx),
        'env/allowed-origins-wildcard',
        'ALLOWED_ORIGINS contains "*": any web site can call the API with the user\'s credentials',
        'List the exact front-end origins instead.',
        entry.line,
        'ALLOWED_ORIGINS',
      )
      continue
    }
    const url = tryParseUrl(origin)
    if (
      !url ||
      !['http:', 'https:'].includes(url.protocol) ||
      (url.pathname !== '/' && url.pathname !== '') ||
      url.search ||
      url.hash ||
      url.username
    ) {
      add(
        'error',
        'env/allowed-origins',
        `ALLOWED_ORIGINS entry "${origin.slice(0, 80)}" is not an origin (scheme://host[:port], no path)`,
        'Remove the path and any trailing slash, e.g. https://app.example.com',
        entry.line,
        'ALLOWED_ORIGINS',
      )
      continue
    }
    if (origin.endsWith('/')) {
      add(
        'error',
        'env/allowed-origins',
        `ALLOWED_ORIGINS entry "${origin.slice(0, 80)}" ends with a slash; browsers send origins without one, so it never matches`,
        'Remove the trailing slash.',
        entry.line,
        'ALLOWED_ORIGINS',
      )
    } else if (ctx.strict && url.protocol === 'http:' && !isLoopback(url.hostname)) {
      add(
        'warning',
        'env/allowed-origins-http',
        `ALLOWED_ORIGINS entry ${url.origin} is plain http`,
        'Serve the front end over https and list the https origin.',
        entry.line,
        'ALLOWED_ORIGINS',
      )
    }
  }
}

/**
 * The frontend .env.production: only VITE_* variables reach the browser bundle, so anything else
 * is a mistake, and anything secret-looking here is published to every visitor.
 */
export function validateFrontendEnv(parsed: ParsedEnvFile, ctx: RuleContext): Finding[] {
  const {findings, add} = findingsFor(parsed.file)
  findings.push(...parsed.findings)
  for (const entry of parsed.entries.values()) {
    if (/SECRET|PASSWORD|TOKEN|PRIVATE|API_KEY/i.test(entry.key)) {
      add(
        'error',
        'frontend/secret',
        `${entry.key} is in the frontend env: Vite bakes it into the JavaScript every visitor downloads`,
        'Remove it from the frontend; keep secrets in the backend .env.',
        entry.line,
        entry.key,
      )
    } else if (!entry.key.startsWith('VITE_')) {
      add(
        'warning',
        'frontend/unknown-key',
        `${entry.key} does not start with VITE_, so Vite does not expose it to the app`,
        'Prefix it with VITE_ or remove it.',
        entry.line,
        entry.key,
      )
    } else if (!(FRONTEND_ENV_KEYS as readonly string[]).includes(entry.key)) {
      const near = suggest(entry.key, FRONTEND_ENV_KEYS)
      if (near)
        add(
          'warning',
          'frontend/unknown-key',
          `${entry.key} is not read by the front end; did you mean ${near}?`,
          `Rename it to ${near}.`,
          entry.line,
          entry.key,
        )
    }
  }
  const api = parsed.entries.get('VITE_API_URL')
  if (!api)
    add(
      'error',
      'frontend/required',
      'VITE_API_URL is missing',
      'Add VITE_API_URL=https://api.example.com/api/v1',
      undefined,
      'VITE_API_URL',
    )
  else {
    checkHttpUrl(api, add, 'frontend/url')
    if (ctx.strict && api.value.startsWith('http://') && !isLoopback(tryParseUrl(api.value)?.hostname ?? '')) {
      add(
        'warning',
        'frontend/insecure-url',
        'VITE_API_URL is plain http in production',
        'Use https://',
        api.line,
        'VITE_API_URL',
      )
    }
  }
  const ws = parsed.entries.get('VITE_WS_URL')
  if (ws) {
    checkHttpUrl(ws, add, 'frontend/url', ['ws:', 'wss:'])
    if (ctx.strict && ws.value.startsWith('ws://') && !isLoopback(tryParseUrl(ws.value)?.hostname ?? '')) {
      add(
        'warning',
        'frontend/insecure-url',
        'VITE_WS_URL is plain ws:// in production',
        'Use wss://',
        ws.line,
        'VITE_WS_URL',
      )
    }
  }
  return findings
}

export {envRecord}
