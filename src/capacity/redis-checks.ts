/**
 * Redis checks: memory vs maxmemory, evictions, persistence (RDB / AOF, last save, MISCONF),
 * rejected connections, and maxmemory sizing against the container's or host's memory.
 */
import type {Redis} from 'ioredis'

import {CliError} from '../errors.js'
import {measure, pct, unknown} from './check-kit.js'
import {formatBytes, formatSeconds} from './render.js'
import {memoryInfo} from '../core/fs/system.js'
import {type Check, type CheckContext, type CheckResult, once} from './types.js'

const C = 'redis'

export interface RedisFacts {
  info: Record<string, string>
  config: Record<string, string>
}

const CONFIG_KEYS = [
  'maxmemory',
  'maxmemory-policy',
  'maxclients',
  'save',
  'appendonly',
  'stop-writes-on-bgsave-error',
  'dir',
  'dbfilename',
]

/** INFO (every section) and the CONFIG values the checks read, through the shared adapter (src/redis/client.ts). */
export async function redisFacts(client: Redis): Promise<RedisFacts> {
  const {redisInfo} = await import('../redis/client.js')
  const info = await redisInfo(client)
  const config: Record<string, string> = {}
  try {
    const pairs = (await client.config('GET', '*')) as string[]
    for (let i = 0; i + 1 < pairs.length; i += 2) if (CONFIG_KEYS.includes(pairs[i])) config[pairs[i]] = pairs[i + 1]
  } catch {
    // CONFIG renamed or disabled (managed Redis): INFO still carries most of it
  }
  return {info, config}
}

function getFacts(ctx: CheckContext): Promise<RedisFacts | {error: string; hint?: string}> {
  return once(ctx, 'redis.facts', async () => {
    const url = ctx.settings.redisUrl
    if (!url) return {error: 'REDIS_URL is not set'}
    const {withRedis, diagnoseRedisError, parseRedisUrl} = await import('../redis/client.js')
    try {
      // INFO rather than PING proves the connection: a server in MISCONF refuses PING, and that is what we must report
      return await withRedis(url, redisFacts, {timeoutMs: 5000, probe: 'info'})
    } catch (error) {
      const e = error instanceof CliError ? error : diagnoseRedisError(error, parseRedisUrl(url))
      return {error: e.message, hint: e.hint}
    }
  })
}

export const REDIS_CHECK: Check = {
  id: 'redis',
  component: C,
  title: 'Redis memory, evictions, persistence',
  async run(ctx) {
    const facts = await getFacts(ctx)
    if ('error' in facts)
      return [
        unknown(
          C,
          'redis.memory_used_pct',
          'Redis',
          `Redis not checked: ${facts.error}`,
          `${facts.hint ? `${facts.hint} ` : ''}\`charge-ops doctor\` checks Redis in depth.`,
        ),
      ]
    const {info, config} = facts
    const used = Number(info.used_memory ?? 0)
    const maxmemory = Number(config.maxmemory ?? info.maxmemory ?? 0)
    const policy = config['maxmemory-policy'] ?? info.maxmemory_policy ?? 'unknown'
    const out: CheckResult[] = []
    out.push(
      measure(ctx, {
        id: 'redis.memory_used_pct',
        component: C,
        title: 'Redis used_memory vs maxmemory',
        value: maxmemory > 0 ? pct((used / maxmemory) * 100) : null,
        unit: '%',
        status: maxmemory > 0 ? undefined : 'ok',
        message:
          maxmemory > 0
            ? `${formatBytes(used)} of maxmemory ${formatBytes(maxmemory)} (policy ${policy})`
            : `${formatBytes(used)} used, no maxmemory set`,
        remedy:
          'Raise maxmemory (and the container limit), or find the big keys (redis-cli --bigkeys); sessions need a TTL.',
      }),
    )
    const evicted = Number(info.evicted_keys ?? 0)
    out.push(
      measure(ctx, {
        id: 'redis.evicted_keys',
        component: C,
        title: 'Evicted keys',
        value: evicted,
        unit: 'count',
        message: `${evicted} keys evicted since start (policy ${policy})`,
        remedy:
          'Evictions can drop queued analysis jobs and sessions: raise maxmemory, or use volatile-lru / noeviction so only keys with a TTL are evicted.',
      }),
    )
    const rejected = Number(info.rejected_connections ?? 0)
    out.push(
      measure(ctx, {
        id: 'redis.rejected_connections',
        component: C,
        title: 'Rejected connections',
        value: rejected,
        unit: 'count',
        message: `${rejected} connections rejected (maxclients ${config.maxclients ?? info.maxclients ?? '?'})`,
        remedy: 'Raise maxclients or fix connection leaks in the service (pool per worker, not per request).',
      }),
    )

    // persistence
    const bgsaveErr = info.rdb_last_bgsave_status === 'err'
    const aofErr =
      info.aof_enabled === '1' && (info.aof_last_write_status === 'err' || info.aof_last_bgrewrite_status === 'err')
    const stopWrites = (config['stop-writes-on-bgsave-error'] ?? 'yes') === 'yes'
    const misconf = bgsaveErr && stopWrites
    const persistMsg = [
      `RDB last bgsave ${info.rdb_last_bgsave_status ?? '?'}`,
      `AOF ${info.aof_enabled === '1' ? `on (last write ${info.aof_last_write_status ?? '?'})` : 'off'}`,
      `${info.rdb_changes_since_last_save ?? '?'} changes since last save`,
    ].join(', ')
    out.push(
      measure(ctx, {
        id: 'redis.persistence',
        component: C,
        title: 'Redis persistence (RDB / AOF) and MISCONF',
        value: misconf || aofErr ? 2 : bgsaveErr ? 1 : 0,
        unit: 'state',
        status: misconf || aofErr ? 'critical' : bgsaveErr ? 'warning' : 'ok',
        message: misconf ? `MISCONF: writes are refused because the last RDB save failed (${persistMsg})` : persistMsg,
        remedy:
          'Check the disk holding Redis’ dir (df -h, permissions), then `redis-cli BGSAVE`; writes resume after a successful save (guide 11: disk space, AOF state, restart + RDB restore if needed).',
      }),
    )
    const saveConfigured = config.save === undefined ? info.rdb_last_save_time !== undefined : config.save.trim() !== ''
    if (saveConfigured && info.rdb_last_save_time) {
      const age = ctx.now.getTime() / 1000 - Number(info.rdb_last_save_time)
      out.push(
        measure(ctx, {
          id: 'redis.last_save_age_seconds',
          component: C,
          title: 'Time since the last RDB save',
          value: Math.max(0, Math.round(age)),
          unit: 's',
          message: `last successful save ${formatSeconds(Math.max(0, age))} ago`,
          remedy: 'Check that BGSAVE succeeds (redis-cli INFO persistence) and that save points are configured.',
        }),
      )
    }
    // sizing against the memory of the container / host
    const mem = await memoryInfo()
    if (mem.limitBytes > 0) {
      out.push(
        measure(ctx, {
          id: 'sizing.redis_maxmemory_pct',
          component: 'sizing',
          title: 'Redis maxmemory vs container / host memory',
          value: maxmemory > 0 ? pct((maxmemory / mem.limitBytes) * 100) : 100,
          unit: '%',
          message:
            (maxmemory > 0
              ? `maxmemory ${formatBytes(maxmemory)} is ${pct((maxmemory / mem.limitBytes) * 100)}% of ${formatBytes(mem.limitBytes)} (${mem.source})`
              : `no maxmemory: Redis may grow to all ${formatBytes(mem.limitBytes)} (${mem.source}) and be OOM-killed`) +
            (/^allkeys-/.test(policy) ? `; policy ${policy} may evict queued jobs` : ''),
          remedy:
            'Set maxmemory to at most ~75% of the memory limit (leave room for fork/COW during BGSAVE and AOF rewrite).',
        }),
      )
    }
    return out
  },
}
