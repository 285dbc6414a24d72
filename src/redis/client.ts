/**
 * Redis adapter (ioredis, loaded lazily). The whole API:
 *
 *   connectRedis(url, {timeoutMs?, probe?}) → a connected ioredis client; fails fast (no endless
 *                                       retries) with an UnreachableError naming the cause (refused,
 *                                       DNS, timeout, NOAUTH / WRONGPASS, TLS). Call `client.quit()`.
 *                                       probe 'info' checks the connection with INFO instead of PING:
 *                                       a server in MISCONF refuses PING but still answers INFO.
 *   withRedis(url, fn, {timeoutMs?})  → runs fn(client) and always disconnects
 *   redisInfo(client, section?)       → INFO parsed into {key: value} (e.g. redis_version, aof_enabled)
 *   redisPersistence(client)          → {aof, rdb, rdbSaveRules} from INFO + CONFIG GET save
 *   diagnoseRedisError(error, url)    → UnreachableError with code REDIS_REFUSED | REDIS_DNS |
 *                                       REDIS_TIMEOUT | REDIS_AUTH | REDIS_TLS | REDIS_UNREACHABLE
 *
 * The URL's password is registered with the redactor and never appears in messages.
 */
import type {Redis} from 'ioredis'

import {ConfigError, UnreachableError, type ErrorCode} from '../errors.js'
import {registerSecret} from '../output/redact.js'

export interface RedisTarget {
  host: string
  port: number
  tls: boolean
  db: number
  username?: string
  password?: string
}

/** Parses redis:// / rediss:// URLs; errors never echo the URL. */
export function parseRedisUrl(url: string): RedisTarget {
  let parsed: URL
  try {
    parsed = new URL(url)
  } catch {
    throw new ConfigError('REDIS_URL is not a valid URL', {
      hint: 'Use redis://:PASSWORD@HOST:6379/0 (rediss:// for TLS).',
    })
  }
  if (parsed.protocol !== 'redis:' && parsed.protocol !== 'rediss:') {
    throw new ConfigError(`REDIS_URL must start with redis:// or rediss://, not ${parsed.protocol}//`, {
      hint: 'Use redis://:PASSWORD@HOST:6379/0',
    })
  }
  const password = parsed.password ? decodeURIComponent(parsed.password) : undefined
  registerSecret(password)
  const db = parsed.pathname.replace(/^\//, '')
  return {
    host: parsed.hostname.replace(/^\[|\]$/g, '') || '127.0.0.1',
    port: parsed.port ? Number(parsed.port) : 6379,
    tls: parsed.protocol === 'rediss:',
    db: db === '' ? 0 : Number(db),
    username: parsed.username ? decodeURIComponent(parsed.username) : undefined,
    password,
  }
}

export interface ConnectRedisOptions {
  timeoutMs?: number
  /**
   * how the connection is proven (and AUTH errors surfaced): 'ping' (default) or 'info' —
   * for readers of INFO (capacity) that must still see a server that refuses writes and PING
   * (MISCONF after a failed RDB save).
   */
  probe?: 'ping' | 'info'
}

export async function connectRedis(url: string, options: ConnectRedisOptions = {}): Promise<Redis> {
  const target = parseRedisUrl(url)
  const timeoutMs = options.timeoutMs ?? 5000
  const {Redis} = await import('ioredis')
  const client = new Redis({
    host: target.host,
    port: target.port,
    db: target.db,
    username: target.username,
    password: target.password,
    tls: target.tls ? {servername: target.host} : undefined,
    lazyConnect: true,
    connectTimeout: timeoutMs,
    commandTimeout: timeoutMs,
    maxRetriesPerRequest: 0,
    enableOfflineQueue: false,
    retryStrategy: () => null,
    reconnectOnError: () => false,
  })
  let lastError: unknown
  // Without a listener ioredis reports every socket error as an unhandled 'error' event.
  client.on('error', (error) => {
    lastError = error
  })
  let timer: NodeJS.Timeout | undefined
  try {
    await Promise.race([
      client.connect(),
      new Promise((_resolve, reject) => {
        timer = setTimeout(() => reject(Object.assign(new Error('connect timeout'), {code: 'ETIMEDOUT'})), timeoutMs)
      }),
    ])
    // AUTH errors surface on the first command when the server demands a password we lack.
    if (options.probe === 'info') await client.info('server')
    else await client.ping()
  } catch (error) {
    client.disconnect()
    throw diagnoseRedisError(pickError(error, lastError), target)
  } finally {
    clearTimeout(timer)
  }
  return client
}

function pickError(primary: unknown, fromEvent: unknown): unknown {
  // ioredis rejects connect() with "Connection is closed." after the socket error it emitted.
  const message = (primary as Error)?.message ?? ''
  if (fromEvent && /Connection is closed|Stream isn't writeable/i.test(message)) return fromEvent
  return primary
}

export async function withRedis<T>(
  url: string,
  fn: (client: Redis) => Promise<T>,
  options?: ConnectRedisOptions,
): Promise<T> {
  const client = await connectRedis(url, options)
  try {
    return await fn(client)
  } finally {
    await client.quit().catch(() => client.disconnect())
  }
}

/** Turns an ioredis / socket error into an UnreachableError naming the likely cause. */
export function diagnoseRedisError(
  error: unknown,
  target: Pick<RedisTarget, 'host' | 'port' | 'tls'>,
): UnreachableError {
  const err = error as {code?: string; message?: string}
  const message = err?.message ?? String(error)
  const where = `${target.host}:${target.port}`
  const make = (code: ErrorCode, text: string, hint: string) =>
    new UnreachableError(text, {code, hint, cause: error, data: {host: target.host, port: target.port}})
  if (err?.code === 'ECONNREFUSED')
    return make(
      'REDIS_REFUSED',
      `Redis at ${where} refused the connection`,
      'Is redis-server running and bound to that address (bind, port)? Check firewalls.',
    )
  if (err?.code === 'ENOTFOUND' || err?.code === 'EAI_AGAIN')
    return make('REDIS_DNS', `Redis host "${target.host}" does not resolve (DNS)`, 'Check the host name in REDIS_URL.')
  if (/^NOAUTH/.test(message))
    return make(
      'REDIS_AUTH',
      `Redis at ${where} requires a password and REDIS_URL has none`,
      'Put the requirepass value in REDIS_URL: redis://:PASSWORD@host:6379/0',
    )
  if (/^WRONGPASS|invalid password|invalid username-password/i.test(message))
    return make(
      'REDIS_AUTH',
      `Redis at ${where} rejected the password in REDIS_URL`,
      "Make REDIS_URL's password match requirepass in redis.conf.",
    )
  if (/without any password configured/i.test(message))
    return make(
      'REDIS_AUTH',
      `Redis at ${where} has no password set but REDIS_URL sends one`,
      'Set requirepass in redis.conf (recommended) or remove the password from REDIS_URL.',
    )
  if (
    /SSL|TLS|wrong version number|EPROTO|certificate/i.test(message) ||
    err?.code === 'EPROTO' ||
    /^ERR_TLS|^CERT_|DEPTH_ZERO/.test(err?.code ?? '')
  ) {
    return make(
      'REDIS_TLS',
      `TLS handshake with Redis at ${where} failed${target.tls ? ' (is the server serving TLS on this port?)' : ''}`,
      target.tls
        ? 'Use redis:// if the server does not serve TLS on this port, or fix the certificate.'
        : 'The server expects TLS: use rediss://',
    )
  }
  if (err?.code === 'ECONNRESET' && !target.tls)
    return make(
      'REDIS_TLS',
      `Redis at ${where} closed the connection at once: it probably requires TLS`,
      'Use rediss:// in REDIS_URL.',
    )
  if (target.tls && (err?.code === 'ETIMEDOUT' || /timed? ?out/i.test(message))) {
    // a plain-text Redis never completes a TLS handshake: it waits for a command that never ends
    return make(
      'REDIS_TLS',
      `the TLS handshake with Redis at ${where} did not complete: the server probably does not serve TLS on this port`,
      'Use redis:// for a plain-text server, or point rediss:// at the tls-port.',
    )
  }
  if (err?.code === 'ETIMEDOUT' || /timed? ?out/i.test(message))
    return make(
      'REDIS_TIMEOUT',
      `Redis at ${where} did not answer in time`,
      'A firewall may be dropping the traffic; check the route and that the server is up.',
    )
  if (err?.code === 'EHOSTUNREACH' || err?.code === 'ENETUNREACH')
    return make(
      'REDIS_TIMEOUT',
      `Redis at ${where} is unreachable (${err.code})`,
      'Check the network route to the server.',
    )
  if (/LOADING/.test(message))
    return make('REDIS_LOADING', `Redis at ${where} is loading its dataset`, 'Wait for it to finish loading and retry.')
  return make(
    'REDIS_UNREACHABLE',
    `cannot use Redis at ${where}: ${message}`,
    'Check REDIS_URL and that the server is reachable.',
  )
}

/** INFO [section], parsed into key → value. */
export async function redisInfo(client: Redis, section?: string): Promise<Record<string, string>> {
  const text = section ? await client.info(section) : await client.info()
  const info: Record<string, string> = {}
  for (const line of text.split(/\r?\n/)) {
    if (line === '' || line.startsWith('#')) continue
    const colon = line.indexOf(':')
    if (colon > 0) info[line.slice(0, colon)] = line.slice(colon + 1)
  }
  return info
}

export interface RedisPersistence {
  aof: boolean
  /** RDB snapshots configured (save rules) — undefined when CONFIG is disabled on the server */
  rdb?: boolean
  rdbSaveRules?: string
  lastBgsaveOk: boolean
}

/** Whether the server persists data (AOF and/or RDB save rules). */
export async function redisPersistence(client: Redis): Promise<RedisPersistence> {
  const info = await redisInfo(client, 'persistence')
  let rules: string | undefined
  try {
    const reply = (await client.config('GET', 'save')) as string[]
    rules = reply[1] ?? ''
  } catch {
    rules = undefined // CONFIG renamed or disabled (managed Redis)
  }
  return {
    aof: info.aof_enabled === '1',
    rdb: rules === undefined ? undefined : rules.trim() !== '',
    rdbSaveRules: rules,
    lastBgsaveOk: info.rdb_last_bgsave_status !== 'err',
  }
}
