import {z} from 'zod'

import {tryParseDuration} from '../core/units/duration.js'

/**
 * The schemas of every configuration file charge-ops reads. Types come from here; nothing else
 * declares the shape of a config value. Unknown keys are rejected (`strict`) so that a typo like
 * `retension:` is reported instead of silently ignored.
 */

// PostgreSQL timeouts in charge-ops.yaml take the grammar of the --lock-timeout / --statement-timeout
// flags and migration directives (src/core/units): one grammar, not a stricter regex of its own
const timeoutSetting = (fallback: string) =>
  z
    .string()
    .refine(
      (v) => tryParseDuration(v, {bareMs: 1}) !== undefined,
      'is not a duration (500ms, 10s, 30m or 30min, 2h; a bare number is milliseconds)',
    )
    .default(fallback)

export const retentionSchema = z
  .object({
    keepLast: z.number().int().min(1).default(7).describe('always keep the newest N complete backups per kind'),
    keepDays: z
      .number()
      .int()
      .min(0)
      .default(30)
      .describe('keep every backup younger than D days (the guide keeps 30)'),
    daily: z.number().int().min(0).default(7),
    weekly: z.number().int().min(0).default(4),
    monthly: z.number().int().min(0).default(6),
  })
  .strict()

export const backupSchema = z
  .object({
    repository: z.string().min(1).optional().describe('a directory or s3://bucket/prefix'),
    engine: z.enum(['native', 'wal-g']).default('native'),
    compression: z
      .object({
        algorithm: z.enum(['zstd', 'gzip']).default('zstd'),
        level: z.number().int().min(1).max(19).default(1),
        threads: z.number().int().min(0).max(64).default(0).describe('0 = one per core'),
      })
      .strict()
      .default({algorithm: 'zstd', level: 1, threads: 0}),
    encryption: z
      .object({keyFile: z.string().min(1)})
      .strict()
      .optional(),
    s3: z
      .object({
        endpoint: z.string().url().optional(),
        region: z.string().optional(),
        forcePathStyle: z.boolean().optional(),
        serverSideEncryption: z.enum(['AES256', 'aws:kms']).optional(),
        kmsKeyId: z.string().optional(),
      })
      .strict()
      .optional(),
    retention: retentionSchema.default({keepLast: 7, keepDays: 30, daily: 7, weekly: 4, monthly: 6}),
    metricsFile: z.string().optional(),
    pingUrl: z.string().url().optional(),
  })
  .strict()

export const thresholdSchema = z.object({warning: z.number(), critical: z.number()}).strict()

export const scheduleJobSchema = z
  .object({
    cron: z.string().min(1),
    command: z.string().min(1),
    timezone: z.string().optional(),
    enabled: z.boolean().default(true),
  })
  .strict()

const hostPort = z.number().int().min(1).max(65_535)

/**
 * target compose: how charge-ops on the host reaches the stack (the ports the compose file
 * publishes on 127.0.0.1) and where the containers' data folders are on the host. Inside a
 * container (CHARGE_OPS_IN_CONTAINER=1, set by the service image) the .env's in-network names apply.
 */
export const composeAccessSchema = z
  .object({
    project: z
      .string()
      .regex(/^[a-z0-9][a-z0-9_-]*$/)
      .optional()
      .describe('the compose project name (default: the stack)'),
    hostPorts: z
      .object({
        postgres: hostPort,
        redis: hostPort,
        chroma: hostPort,
        backend: hostPort,
        https: hostPort,
        http: hostPort,
        pgbouncer: hostPort,
      })
      .partial()
      .strict()
      .default({}),
    volumes: z
      .object({uploads: z.string(), chroma: z.string()})
      .partial()
      .strict()
      .default({})
      .describe('host folders (relative to charge-ops.yaml) bind-mounted as the uploads and Chroma data'),
  })
  .strict()

export const chargeOpsYamlSchema = z
  .object({
    stack: z
      .string()
      .regex(/^[a-z0-9][a-z0-9-]*$/, 'lower-case letters, digits and dashes')
      .default('charge-analysis'),
    target: z.enum(['local', 'compose', 'k8s']).default('local'),
    environment: z.enum(['development', 'staging', 'production']).optional(),
    paths: z
      .object({
        stateDir: z.string().default('.charge-ops'),
        envFile: z.string().default('.env').describe('the backend .env'),
        frontendEnvFile: z.string().default('.env.production'),
        composeFile: z.string().optional(),
        postgresqlConf: z.string().optional(),
        redisConf: z.string().optional(),
        crontab: z.string().optional(),
      })
      .strict()
      .default({stateDir: '.charge-ops', envFile: '.env', frontendEnvFile: '.env.production'}),
    service: z
      .object({
        workers: z.number().int().min(1).default(2),
        poolSize: z.number().int().min(1).default(10),
        pgbouncer: z
          .object({defaultPoolSize: z.number().int().min(1), maxClientConn: z.number().int().min(1).optional()})
          .strict()
          .optional(),
      })
      .strict()
      .default({workers: 2, poolSize: 10}),
    migrations: z
      .object({
        lockTimeout: timeoutSetting('5s'),
        statementTimeout: timeoutSetting('15m'),
      })
      .strict()
      .default({lockTimeout: '5s', statementTimeout: '15m'}),
    backup: backupSchema.default({
      engine: 'native',
      compression: {algorithm: 'zstd', level: 1, threads: 0},
      retention: {keepLast: 7, keepDays: 30, daily: 7, weekly: 4, monthly: 6},
    }),
    schedules: z.record(z.string(), scheduleJobSchema).optional(),
    thresholds: z.record(z.string(), thresholdSchema).optional(),
    compose: composeAccessSchema.optional(),
    /** k8s: CronJob pods live minutes, so the backup, verify and capacity jobs push their metrics here (docs/monitoring.md) */
    metrics: z.object({pushgatewayUrl: z.string().url().optional()}).strict().optional(),
  })
  .strict()

export type ChargeOpsYaml = z.infer<typeof chargeOpsYamlSchema>
export type BackupSettings = z.infer<typeof backupSchema>
export type RetentionPolicy = z.infer<typeof retentionSchema>

/** Every variable of the guide's backend .env, plus CHROMA_URL and UPLOADS_DIR for the bundled service. */
export const BACKEND_ENV_KEYS = [
  'APP_NAME',
  'ENVIRONMENT',
  'HOST',
  'PORT',
  'DATABASE_URL',
  'REDIS_URL',
  'SECRET_KEY',
  'BGE_MODEL_NAME',
  'CHROMA_PERSIST_DIRECTORY',
  'CHROMA_URL',
  'UPLOADS_DIR',
  'OPENAI_API_KEY',
  'ALLOWED_ORIGINS',
] as const

export const FRONTEND_ENV_KEYS = ['VITE_APP_TITLE', 'VITE_API_URL', 'VITE_WS_URL'] as const

const portString = z
  .string()
  .regex(/^\d+$/, 'must be a number')
  .refine((v) => Number(v) >= 1 && Number(v) <= 65_535, 'must be between 1 and 65535')

/**
 * Shape of the backend .env. Deeper rules (URL schemes, strict-mode secrets) live in the
 * validators so they can report precise fixes; this schema is what the CLI relies on at run time.
 */
export const backendEnvSchema = z.object({
  APP_NAME: z.string().default('Charge Analysis Backend'),
  ENVIRONMENT: z.enum(['development', 'staging', 'production', 'test']).default('development'),
  HOST: z.string().default('127.0.0.1'),
  PORT: portString.default('8000'),
  DATABASE_URL: z.string().optional(),
  REDIS_URL: z.string().optional(),
  SECRET_KEY: z.string().optional(),
  BGE_MODEL_NAME: z.string().default('BAAI/bge-base-zh-v1.5'),
  CHROMA_PERSIST_DIRECTORY: z.string().optional(),
  CHROMA_URL: z.string().optional(),
  UPLOADS_DIR: z.string().optional(),
  OPENAI_API_KEY: z.string().optional(),
  ALLOWED_ORIGINS: z.string().optional(),
})

export type BackendEnv = z.infer<typeof backendEnvSchema>
