/**
 * The answers `charge-ops init` works from: one zod schema shared by the prompts, the flags and
 * the answers file, so the three routes cannot drift apart. Everything derived from the answers
 * (file contents, tuning) is computed elsewhere from the parsed value.
 */
import {z} from 'zod'

import {tryParseSize} from '../core/units/size.js'
import {UsageError} from '../errors.js'
import {location} from '../config/findings.js'
import {parseYamlText, validateYaml} from '../config/yaml-file.js'

export const TARGETS = ['compose', 'k8s', 'local'] as const
export const STORAGE_TYPES = ['ssd', 'hdd', 'san'] as const
export const ENVIRONMENTS = ['production', 'staging', 'development'] as const

export type Target = (typeof TARGETS)[number]
export type StorageType = (typeof STORAGE_TYPES)[number]

const HOSTNAME = /^(?=.{1,253}$)(?!-)[a-z0-9-]{1,63}(?<!-)(\.(?!-)[a-z0-9-]{1,63}(?<!-))+$/

/** A DNS name with at least two labels, no scheme, port or path (an IP address is not a domain). */
export const domainSchema = z
  .string()
  .trim()
  .toLowerCase()
  .refine(
    (v) => !/^[a-z]+:\/\//.test(v),
    'must be a host name without a scheme (write charge.example.com, not https://charge.example.com)',
  )
  .refine((v) => !/[/:]/.test(v) || /^[a-z]+:\/\//.test(v), 'must be a host name without a port or path')
  .refine(
    (v) => !/^\d+(\.\d+){3}$/.test(v),
    'must be a DNS name, not an IP address (TLS certificates and the Ingress need a name)',
  )
  .refine(
    (v) => HOSTNAME.test(v),
    'is not a valid DNS name (letters, digits and dashes in dot-separated labels, e.g. charge.example.com)',
  )

/** "16GB", "16 GiB", "512MB", "16" (GB) → bytes; undefined when it is not a size. */
export function parseSize(value: string | number): number | undefined {
  if (typeof value === 'number') return Number.isFinite(value) ? value * 1024 ** 3 : undefined
  const bytes = tryParseSize(value, {bareBytes: 1024 ** 3})
  return bytes === undefined ? undefined : Math.round(bytes)
}

const MIN_RAM = 512 * 1024 ** 2

export const ramSchema = z.union([z.string(), z.number()]).transform((value, ctx) => {
  const bytes = parseSize(value)
  if (bytes === undefined) {
    ctx.addIssue({code: 'custom', message: `"${value}" is not a memory size (write e.g. 16GB or 512MB)`})
    return z.NEVER
  }
  if (bytes <= 0) {
    ctx.addIssue({code: 'custom', message: "must be greater than 0 (the database host's RAM, e.g. 16GB)"})
    return z.NEVER
  }
  if (bytes < MIN_RAM) {
    ctx.addIssue({code: 'custom', message: `${value} is below the 512MB PostgreSQL 15 needs to run this stack`})
    return z.NEVER
  }
  return bytes
})

const s3UrlSchema = z
  .string()
  .trim()
  .regex(
    /^s3:\/\/[a-z0-9][a-z0-9.-]{1,61}[a-z0-9](\/[^\s]*)?$/,
    'must be s3://BUCKET/PREFIX with a valid bucket name (lower case, 3–63 characters)',
  )
/** The repository: s3://BUCKET/PREFIX, or an absolute local directory (compose and local targets; the guide's /backups). */
const repositorySchema = z
  .string()
  .trim()
  .refine(
    (v) => v.startsWith('/') || s3UrlSchema.safeParse(v).success,
    'must be s3://BUCKET/PREFIX with a valid bucket name (lower case, 3–63 characters) or an absolute directory',
  )
const portSchema = z.number().int().min(1).max(65_535)

const imageSchema = z.string().regex(/^[a-z0-9][a-z0-9._\/:@-]*$/i, 'is not a container image reference')
const hostSchema = z
  .string()
  .trim()
  .regex(/^[a-z0-9]([a-z0-9.-]*[a-z0-9])?(:\d{1,5})?$/i, 'must be a host name or address, optionally with :port')

/** The answers, as the prompts / flags / answers file give them. */
export const answersSchema = z
  .object({
    target: z.enum(TARGETS),
    domain: domainSchema,
    environment: z.enum(ENVIRONMENTS).default('production'),
    stack: z
      .string()
      .regex(/^[a-z0-9][a-z0-9-]{0,40}$/, 'lower-case letters, digits and dashes')
      .default('charge-analysis'),
    host: z
      .object({
        ram: ramSchema.describe("the database host's RAM"),
        cpus: z.number().int().min(1, 'must be at least 1').max(256),
        storage: z.enum(STORAGE_TYPES).default('ssd'),
        connections: z
          .number()
          .int()
          .min(10, 'must be at least 10')
          .max(10_000)
          .default(200)
          .describe('expected client connections'),
      })
      .strict(),
    backup: z
      .object({
        repository: repositorySchema,
        endpoint: z.string().url().optional(),
        region: z
          .string()
          .regex(/^[a-z0-9-]+$/)
          .optional(),
      })
      .strict(),
    pgbouncer: z.boolean().default(false),
    managed: z
      .object({
        databaseHost: hostSchema.describe('managed PostgreSQL endpoint'),
        redisHost: hostSchema.describe('managed Redis endpoint'),
      })
      .strict()
      .optional()
      .describe('omit to run PostgreSQL and Redis yourself'),
    dataDir: z
      .string()
      .regex(/^\/\S*$/, 'must be an absolute path')
      .default('/var/lib/charge-analysis'),
    timezone: z
      .string()
      .default('UTC')
      .refine((tz) => {
        try {
          new Intl.DateTimeFormat('en', {timeZone: tz})
          return true
        } catch {
          return false
        }
      }, 'is not an IANA time zone (e.g. UTC, Europe/Berlin, Asia/Shanghai)'),
    k8s: z
      .object({
        namespace: z
          .string()
          .regex(/^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/, 'must be a DNS label')
          .optional(),
        storageClass: z.string().optional(),
        ingressClass: z.string().default('nginx'),
      })
      .strict()
      .default({ingressClass: 'nginx'}),
    images: z
      .object({
        /** the repository prefix of the images `charge-ops images build` tags (charge-ops/service:V …) */
        prefix: imageSchema.default('charge-ops'),
        /** their version (default: this charge-ops' version) */
        version: z
          .string()
          .regex(/^[\w][\w.-]{0,127}$/, 'is not an image tag')
          .optional(),
      })
      .strict()
      .default({prefix: 'charge-ops'}),
    compose: z
      .object({
        /** host ports, all on 127.0.0.1 except nginx's http/https */
        ports: z
          .object({
            postgres: portSchema.default(5432),
            redis: portSchema.default(6379),
            chroma: portSchema.default(8001),
            backend: portSchema.default(8000),
            http: portSchema.default(80),
            https: portSchema.default(443),
            pgbouncer: portSchema.default(6432),
          })
          .strict()
          .default({postgres: 5432, redis: 6379, chroma: 8001, backend: 8000, http: 80, https: 443, pgbouncer: 6432}),
      })
      .strict()
      .default({
        ports: {postgres: 5432, redis: 6379, chroma: 8001, backend: 8000, http: 80, https: 443, pgbouncer: 6432},
      }),
  })
  .strict()

export type AnswersInput = z.input<typeof answersSchema>
export type Answers = z.output<typeof answersSchema>

/** Turns zod issues into one UsageError naming every bad answer (nothing is written). */
/** The flag that gives each answer, so that a missing one is named as the user would give it. */
const FLAG_FOR: Record<string, string> = {
  target: '--target',
  domain: '--domain',
  environment: '--environment',
  stack: '--stack',
  'host.ram': '--ram',
  'host.cpus': '--cpus',
  'host.storage': '--storage',
  'host.connections': '--connections',
  'backup.repository': '--repo',
  'backup.endpoint': '--s3-endpoint',
  'backup.region': '--s3-region',
  dataDir: '--data-dir',
  timezone: '--timezone',
  'k8s.namespace': '--namespace',
  'k8s.storageClass': '--storage-class',
  'managed.databaseHost': '--managed-db-host',
  'managed.redisHost': '--managed-redis-host',
}

/** The required answers inside a group that is missing as a whole. */
const REQUIRED_IN: Record<string, string[]> = {host: ['host.ram', 'host.cpus'], backup: ['backup.repository']}

function valueAt(input: unknown, path: PropertyKey[]): unknown {
  let value = input
  for (const key of path)
    value = value && typeof value === 'object' ? (value as Record<PropertyKey, unknown>)[key] : undefined
  return value
}

function issueLines(i: z.core.$ZodIssue, source: string, input: unknown): string[] {
  const path = i.path.map(String).join('.')
  const required = (p: string) =>
    `  ${FLAG_FOR[p] ?? p} is required${source === 'flags' || !FLAG_FOR[p] ? '' : ` (${p} in the answers file)`}`
  if (valueAt(input, i.path) === undefined && i.path.length > 0) return (REQUIRED_IN[path] ?? [path]).map(required)
  const flag = FLAG_FOR[path]
  return [`  ${flag && source === 'flags' ? flag : path || '(answers)'}: ${i.message}`]
}

function answersError(issues: z.core.$ZodIssue[], source: string, input?: unknown): UsageError {
  const lines = issues.flatMap((i) => issueLines(i, source, input))
  return new UsageError(`invalid answers (${source}):\n${lines.join('\n')}`, {
    code: 'INVALID_ANSWERS',
    hint: 'Fix the answers above and rerun; nothing was written.',
    data: {issues: issues.map((i) => ({path: i.path.map(String).join('.'), message: i.message}))},
  })
}

export function parseAnswers(input: unknown, source = 'flags'): Answers {
  const result = answersSchema.safeParse(input)
  if (!result.success) throw answersError(result.error.issues, source, input)
  if (result.data.target === 'k8s' && !result.data.backup.repository.startsWith('s3://')) {
    throw answersError(
      [
        {
          code: 'custom',
          path: ['backup', 'repository'],
          message: 'must be s3://BUCKET/PREFIX for k8s (pods share no local directory)',
          input: result.data.backup.repository,
        },
      ],
      source,
      input,
    )
  }
  return result.data
}

/** Parses an answers.yaml (or .json), reporting problems with their line. */
export function parseAnswersFile(text: string, file: string): AnswersInput {
  const parsed = parseYamlText(text, file)
  if (parsed.findings.length > 0) {
    throw new UsageError(parsed.findings.map((f) => `${location(f)}: ${f.message}`).join('\n'), {
      code: 'INVALID_ANSWERS',
      hint: 'Fix the YAML syntax of the answers file.',
    })
  }
  // Validate shape (with lines) here; the caller merges flags on top and validates again.
  const {findings} = validateYaml(parsed, answersSchema.partial(), 'answers')
  if (findings.length > 0) {
    throw new UsageError(`invalid answers file:\n${findings.map((f) => `  ${location(f)}: ${f.message}`).join('\n')}`, {
      code: 'INVALID_ANSWERS',
      hint: 'Fix the answers file and rerun; nothing was written.',
    })
  }
  return (parsed.document.toJS() ?? {}) as AnswersInput
}

/** Deep-merges answer sources: later wins, undefined never overrides. */
export function mergeAnswers(...sources: Array<Record<string, unknown> | undefined>): Record<string, unknown> {
  const out: Record<string, unknown> = {}
  for (const source of sources) {
    if (!source) continue
    for (const [key, value] of Object.entries(source)) {
      if (value === undefined) continue
      const prev = out[key]
      if (
        value &&
        typeof value === 'object' &&
        !Array.isArray(value) &&
        prev &&
        typeof prev === 'object' &&
        !Array.isArray(prev)
      ) {
        out[key] = mergeAnswers(prev as Record<string, unknown>, value as Record<string, unknown>)
      } else if (value && typeof value === 'object' && !Array.isArray(value)) {
        const nested = mergeAnswers(value as Record<string, unknown>)
        if (Object.keys(nested).length > 0) out[key] = nested
      } else {
        out[key] = value
      }
    }
  }
  return out
}

/** Names derived from the answers that every renderer uses. */
export function namesFor(answers: Answers) {
  return {
    database: 'charge_analysis',
    appRole: 'charge_user',
    migratorRole: 'charge_migrator',
    /** the read-only reporting role (`db bootstrap`'s default name) */
    readonlyRole: 'charge_reader',
    namespace: answers.k8s.namespace ?? answers.stack,
  }
}
