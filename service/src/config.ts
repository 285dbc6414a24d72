/**
 * The service's configuration, read from its environment only (charge-ops passes the backend .env
 * variables as environment, never argv). Everything has an offline-friendly default except the
 * three stores and SECRET_KEY.
 */
import {existsSync} from 'node:fs'
import {hostname} from 'node:os'
import {basename, dirname, join, resolve} from 'node:path'
import {fileURLToPath} from 'node:url'

export interface ServiceConfig {
  host: string
  port: number
  databaseUrl: string
  redisUrl: string
  chromaUrl: string
  /** the knowledge-base collection (default charging_knowledge; tests use their own) */
  chromaCollection: string
  secretKey: string
  uploadsDir: string
  logDir: string
  /** charge-ops' state dir: holds the `maintenance` flag file */
  stateDir?: string
  environment: string
  allowedOrigins: string[]
  maxUploadBytes: number
  /** OpenAI-compatible embeddings endpoint (…/v1); unset = the local deterministic embedder */
  embeddingsUrl?: string
  embeddingsModel: string
  embeddingsApiKey?: string
  /** OpenAI-compatible chat endpoint for the optional summary; unset = template summary */
  llmUrl?: string
  llmModel: string
  workerId: string
  leaseSeconds: number
  logStdout: boolean
  logRateLimitPerMinute: number
  /** the built web UI served at / (WEB_ROOT; default the package's dist/web when built; "off" serves none) */
  webRoot?: string
}

export class ConfigurationError extends Error {}

function required(env: NodeJS.ProcessEnv, key: string): string {
  const value = env[key]
  if (!value)
    throw new ConfigurationError(
      `${key} is not set; the service reads it from its environment (charge-ops service start passes the backend .env)`,
    )
  return value
}

/** ALLOWED_ORIGINS is either a JSON array (the guide's form) or a comma-separated list. */
export function parseOrigins(value: string | undefined): string[] {
  if (!value) return []
  const trimmed = value.trim()
  if (trimmed.startsWith('[')) {
    try {
      const parsed = JSON.parse(trimmed) as unknown
      if (Array.isArray(parsed)) return parsed.map(String)
    } catch {
      // fall through to the comma form
    }
  }
  return trimmed
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean)
}

export function loadServiceConfig(env: NodeJS.ProcessEnv = process.env): ServiceConfig {
  return {
    host: env.HOST ?? '127.0.0.1',
    port: Number(env.PORT ?? 8000),
    databaseUrl: required(env, 'DATABASE_URL'),
    redisUrl: required(env, 'REDIS_URL'),
    chromaUrl: env.CHROMA_URL ?? 'http://127.0.0.1:8001',
    chromaCollection: env.CHROMA_COLLECTION ?? 'charging_knowledge',
    secretKey: required(env, 'SECRET_KEY'),
    uploadsDir: resolve(env.UPLOADS_DIR ?? 'uploads'),
    logDir: resolve(env.LOG_DIR ?? 'logs'),
    stateDir: env.CHARGE_OPS_STATE_DIR ? resolve(env.CHARGE_OPS_STATE_DIR) : undefined,
    environment: env.ENVIRONMENT ?? 'development',
    allowedOrigins: parseOrigins(env.ALLOWED_ORIGINS),
    maxUploadBytes: Number(env.MAX_UPLOAD_BYTES ?? 100 * 1024 * 1024),
    embeddingsUrl: env.EMBEDDINGS_URL || undefined,
    embeddingsModel: env.EMBEDDINGS_MODEL ?? env.BGE_MODEL_NAME ?? 'BAAI/bge-base-zh-v1.5',
    embeddingsApiKey: env.EMBEDDINGS_API_KEY ?? env.OPENAI_API_KEY ?? undefined,
    llmUrl: env.LLM_URL || undefined,
    llmModel: env.LLM_MODEL ?? 'gpt-4o-mini',
    workerId: env.WORKER_ID ?? `${hostname()}:${process.pid}`,
    leaseSeconds: Number(env.ANALYSIS_LEASE_SECONDS ?? 60),
    logStdout: env.LOG_STDOUT === '1' || env.LOG_STDOUT === 'true',
    logRateLimitPerMinute: Number(env.LOG_RATE_LIMIT_PER_MINUTE ?? 60),
    webRoot: env.WEB_ROOT === 'off' ? undefined : env.WEB_ROOT ? resolve(env.WEB_ROOT) : bundledWebRoot(),
  }
}

/** Secrets the logger must never write. */
export function configSecrets(config: ServiceConfig): string[] {
  const out = [config.secretKey]
  for (const url of [config.databaseUrl, config.redisUrl]) {
    try {
      const p = new URL(url).password
      if (p) out.push(decodeURIComponent(p))
    } catch {
      // not a URL: nothing to redact
    }
  }
  if (config.embeddingsApiKey) out.push(config.embeddingsApiKey)
  return out.filter((s) => s.length >= 4)
}

/**
 * The UI that `npm run build` writes to dist/web (scripts/build.mjs). Found from this file:
 * dist/service/src/config.js → dist/web; service/src/config.ts (tests, tsx) → dist/web of the checkout.
 */
export function bundledWebRoot(): string | undefined {
  const up2 = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..')
  const dir = basename(up2) === 'dist' ? join(up2, 'web') : join(up2, 'dist', 'web')
  return existsSync(join(dir, 'index.html')) ? dir : undefined
}
