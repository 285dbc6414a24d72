import {registerSecret} from '../../output/redact.js'
import type {Finding} from '../findings.js'
import {isPlaceholder} from './secrets.js'
import {findingsFor, strictSeverity, type RuleContext} from './types.js'

export interface RedisDirective {
  args: string[]
  line: number
}

export interface ParsedRedisConf {
  file: string
  /** lower-cased directive → every occurrence in file order (save, bind and rename-command repeat) */
  directives: Map<string, RedisDirective[]>
  findings: Finding[]
}

/** Splits a redis.conf line into arguments the way Redis does (double quotes with escapes, single quotes). */
function splitArgs(line: string): string[] | undefined {
  const args: string[] = []
  let i = 0
  while (i < line.length) {
    while (i < line.length && /\s/.test(line[i])) i++
    if (i >= line.length) break
    let arg = ''
    const quote = line[i] === '"' || line[i] === "'" ? line[i] : undefined
    if (quote) {
      i++
      let closed = false
      while (i < line.length) {
        if (quote === '"' && line[i] === '\\' && i + 1 < line.length) {
          arg += line[i + 1]
          i += 2
          continue
        }
        if (line[i] === quote) {
          closed = true
          i++
          break
        }
        arg += line[i++]
      }
      if (!closed || (i < line.length && !/\s/.test(line[i]))) return undefined
    } else {
      while (i < line.length && !/\s/.test(line[i])) arg += line[i++]
    }
    args.push(arg)
  }
  return args
}

export function parseRedisConf(text: string, file: string): ParsedRedisConf {
  const {findings, add} = findingsFor(file)
  const directives = new Map<string, RedisDirective[]>()
  text.split(/\r?\n/).forEach((raw, index) => {
    const line = index + 1
    const trimmed = raw.trim()
    if (trimmed === '' || trimmed.startsWith('#')) return
    const args = splitArgs(trimmed)
    if (!args || args.length === 0) {
      add('error', 'redis/syntax', 'unbalanced quotes', 'Close the quote; Redis refuses to start on this line.', line)
      return
    }
    const name = args[0].toLowerCase()
    if (!/^[a-z][a-z0-9-]*$/.test(name)) {
      add(
        'error',
        'redis/syntax',
        'line does not start with a directive name',
        'Write "directive value", e.g. "appendonly yes".',
        line,
      )
      return
    }
    if (name === 'requirepass' || name === 'masterauth') registerSecret(args[1])
    const list = directives.get(name) ?? []
    list.push({args: args.slice(1), line})
    directives.set(name, list)
  })
  return {file, directives, findings}
}

const last = (parsed: ParsedRedisConf, name: string): RedisDirective | undefined => parsed.directives.get(name)?.at(-1)

/** The password Redis demands (last requirepass), if any. */
export function requirePass(parsed: ParsedRedisConf): {password: string; line: number} | undefined {
  const d = last(parsed, 'requirepass')
  return d && d.args[0] ? {password: d.args[0], line: d.line} : undefined
}

/**
 * redis.conf rules: authentication and protected mode (strict), never open on all interfaces
 * without a password, persistence for the job queue, and an eviction policy that cannot drop
 * queued jobs or sessions.
 */
export function validateRedisConf(parsed: ParsedRedisConf, ctx: RuleContext): Finding[] {
  const {findings, add} = findingsFor(parsed.file)
  findings.push(...parsed.findings)
  const pass = last(parsed, 'requirepass')
  const password = pass?.args[0]
  if (!password) {
    add(
      strictSeverity(ctx),
      'redis/requirepass',
      'requirepass is not set: any client that reaches the port can read sessions and jobs',
      'Set requirepass to a long random value (openssl rand -hex 32) and put it in REDIS_URL as redis://:PASSWORD@host:6379/0.',
      pass?.line,
      'requirepass',
    )
  } else if (isPlaceholder(password)) {
    add(
      strictSeverity(ctx),
      'redis/requirepass-placeholder',
      'requirepass is a placeholder, not a real password',
      'Replace it with a long random value (openssl rand -hex 32).',
      pass!.line,
      'requirepass',
    )
  } else if (password.length < 16) {
    add(
      'warning',
      'redis/requirepass-short',
      `requirepass is only ${password.length} characters; Redis answers ~100k guesses a second`,
      'Use at least 32 random characters.',
      pass!.line,
      'requirepass',
    )
  }
  const pm = last(parsed, 'protected-mode')
  if (pm && pm.args[0]?.toLowerCase() !== 'yes') {
    add(
      strictSeverity(ctx),
      'redis/protected-mode',
      `protected-mode is ${pm.args[0] ?? '(empty)'}`,
      'Set protected-mode yes (the guide §6.2).',
      pm.line,
      'protected-mode',
    )
  }
  const binds = parsed.directives.get('bind') ?? []
  const openBind = binds.find((b) =>
    b.args.some((a) => a === '0.0.0.0' || a === '*' || a === '::' || a === '-::*' || a === '::*'),
  )
  if (openBind && !password) {
    add(
      'error',
      'redis/open-bind',
      'bind listens on all interfaces and no requirepass is set: the instance is open to the network',
      'Set requirepass, or bind 127.0.0.1 (and the private interface) only.',
      openBind.line,
      'bind',
    )
  }
  const aof = last(parsed, 'appendonly')
  const saves = parsed.directives.get('save') ?? []
  const rdbDisabled = saves.length > 0 && saves.at(-1)!.args.length === 1 && saves.at(-1)!.args[0] === ''
  const aofOn = aof?.args[0]?.toLowerCase() === 'yes'
  if (!aofOn && rdbDisabled) {
    add(
      'error',
      'redis/persistence',
      'persistence is off (appendonly no and save ""): queued analysis jobs and sessions are lost on every restart',
      'Set appendonly yes and appendfsync everysec (the guide §6.2).',
      aof?.line ?? saves.at(-1)!.line,
      'appendonly',
    )
  } else if (!aofOn) {
    add(
      'warning',
      'redis/appendonly',
      'appendonly is not yes: up to the last RDB snapshot of queued jobs is lost on a crash',
      'Set appendonly yes and appendfsync everysec (the guide §6.2).',
      aof?.line,
      'appendonly',
    )
  }
  const policy = last(parsed, 'maxmemory-policy')
  if (policy && /^allkeys-/.test(policy.args[0] ?? '')) {
    add(
      'warning',
      'redis/eviction-policy',
      `maxmemory-policy ${policy.args[0]} may evict queued jobs and sessions when memory is full`,
      'Use noeviction (writes fail loudly) or volatile-lru (only keys with a TTL are evicted).',
      policy.line,
      'maxmemory-policy',
    )
  }
  const maxmemory = last(parsed, 'maxmemory')
  if (maxmemory && !/^\d+\s*([kmg]b?)?$/i.test(maxmemory.args[0] ?? '')) {
    add(
      'error',
      'redis/type',
      'maxmemory is not a size',
      'Write it as e.g. maxmemory 1gb.',
      maxmemory.line,
      'maxmemory',
    )
  }
  return findings
}
