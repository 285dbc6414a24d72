/**
 * The guided questions of `charge-ops init`, in order. Prompt-library free: the command passes
 * in the three kinds of question (text, choice, yes/no), so this stays testable. Every answer is
 * checked with the same zod schema as flags and answers files, so a bad answer is re-asked with
 * the reason instead of failing the whole run at the end.
 */
import type {z} from 'zod'

import {answersSchema, domainSchema, ENVIRONMENTS, ramSchema, STORAGE_TYPES, TARGETS} from './answers.js'

export interface Asker {
  input(options: {message: string; default?: string; validate?: (value: string) => true | string}): Promise<string>
  select<T extends string>(options: {
    message: string
    choices: Array<{name: string; value: T}>
    default?: T
  }): Promise<T>
  confirm(options: {message: string; default?: boolean}): Promise<boolean>
}

const check = (schema: z.ZodType) => (value: string) => {
  const result = schema.safeParse(value)
  return result.success ? true : (result.error.issues[0]?.message ?? 'invalid')
}

/** The same bounds as answersSchema, so an answer accepted here is never refused after the last question. */
const intCheck = (min: number, max: number) => (value: string) =>
  /^\d+$/.test(value.trim()) && Number(value) >= min && Number(value) <= max
    ? true
    : `enter a whole number from ${min} to ${max}`

type Merged = Record<string, unknown>
const obj = (v: unknown): Record<string, unknown> => (v && typeof v === 'object' ? (v as Record<string, unknown>) : {})

/** Asks for every answer not already given (by the answers file or flags); returns the merged answers. */
export async function askAnswers(given: Merged, ask: Asker): Promise<Merged> {
  const out: Merged = {...given}
  const host = {...obj(given.host)}
  const backup = {...obj(given.backup)}
  out.target ??= await ask.select({
    message: 'Where will the stack run?',
    choices: TARGETS.map((t) => ({
      name: {
        compose: 'compose — Docker Compose on one host',
        k8s: 'k8s — Kubernetes',
        local: 'local — systemd services on this host',
      }[t],
      value: t,
    })),
  })
  out.domain ??= await ask.input({
    message: 'Public domain name (e.g. charge.example.com):',
    validate: check(domainSchema),
  })
  out.environment ??= await ask.select({
    message: 'Environment:',
    choices: ENVIRONMENTS.map((e) => ({name: e, value: e})),
    default: 'production',
  })
  host.ram ??= await ask.input({
    message: "Database host's RAM (e.g. 16GB):",
    default: '16GB',
    validate: check(ramSchema),
  })
  if (host.cpus === undefined)
    host.cpus = Number(await ask.input({message: "Database host's CPUs:", default: '4', validate: intCheck(1, 256)}))
  host.storage ??= await ask.select({
    message: 'Database storage:',
    choices: STORAGE_TYPES.map((s) => ({name: s.toUpperCase(), value: s})),
    default: 'ssd',
  })
  if (host.connections === undefined)
    host.connections = Number(
      await ask.input({message: 'Expected client connections:', default: '200', validate: intCheck(10, 10_000)}),
    )
  out.host = host
  backup.repository ??= await ask.input({
    message: 'S3 backup repository (s3://BUCKET/PREFIX):',
    validate: check(answersSchema.shape.backup.shape.repository),
  })
  out.backup = backup
  // k8s + PgBouncer is refused by planInit: do not offer a choice that fails after the last question.
  if (out.target === 'k8s') out.pgbouncer ??= false
  else out.pgbouncer ??= await ask.confirm({message: 'Put PgBouncer in front of PostgreSQL?', default: false})
  if (
    out.managed === undefined &&
    (await ask.confirm({message: 'Use managed PostgreSQL and Redis (no self-hosted database)?', default: false}))
  ) {
    const hostCheck = check(answersSchema.shape.managed.unwrap().shape.databaseHost)
    out.managed = {
      databaseHost: await ask.input({message: 'Managed PostgreSQL endpoint (host[:port]):', validate: hostCheck}),
      redisHost: await ask.input({message: 'Managed Redis endpoint (host[:port]):', validate: hostCheck}),
    }
  }
  return out
}
