/** Chroma, uploads and local-disk checks. */
import {existsSync} from 'node:fs'

import {measure, unknown} from './check-kit.js'
import {diskResult} from './pg-checks.js'
import {formatBytes} from './render.js'
import {directorySize, diskUsage, memoryInfo} from '../core/fs/system.js'
import {type Check, type CheckResult, once, type CheckContext} from './types.js'

export interface ChromaFacts {
  heartbeatNs: number
  collections: {id: string; name: string; count: number}[]
}

/** Heartbeat and record counts per collection, through the shared adapter (src/chroma/client.ts); errors name the cause. */
export function getChromaFacts(ctx: CheckContext): Promise<ChromaFacts | {error: string; hint?: string}> {
  return once(ctx, 'chroma.facts', async () => {
    const url = ctx.settings.chromaUrl
    if (!url) return {error: 'CHROMA_URL is not set'}
    const {chromaHeartbeat, collectionCounts} = await import('../chroma/client.js')
    try {
      const hb = await chromaHeartbeat(url, {timeoutMs: 5000})
      return {heartbeatNs: hb.nanoseconds, collections: await collectionCounts(url)}
    } catch (error) {
      const e = error as {message?: string; hint?: string}
      return {error: e.message ?? String(error), hint: e.hint}
    }
  })
}

export const CHROMA_CHECK: Check = {
  id: 'chroma',
  component: 'chroma',
  title: 'Chroma heartbeat, collections, persist directory',
  async run(ctx) {
    const out: CheckResult[] = []
    const facts = await getChromaFacts(ctx)
    if ('error' in facts) {
      out.push(
        ctx.settings.chromaUrl
          ? measure(ctx, {
              id: 'chroma.heartbeat',
              component: 'chroma',
              title: 'Chroma heartbeat',
              value: 0,
              unit: 'bool',
              status: 'critical',
              message: `Chroma is down: ${facts.error}`,
              remedy: `${facts.hint ? `${facts.hint} ` : ''}Start the Chroma server (docker compose up -d chroma) and check its persist volume.`,
            })
          : unknown(
              'chroma',
              'chroma.heartbeat',
              'Chroma heartbeat',
              'Chroma not checked: CHROMA_URL is not set',
              'Set CHROMA_URL in the backend .env.',
            ),
      )
    } else {
      out.push(
        measure(ctx, {
          id: 'chroma.heartbeat',
          component: 'chroma',
          title: 'Chroma heartbeat',
          value: 1,
          unit: 'bool',
          status: 'ok',
          message: `Chroma answers (${facts.collections.length} collections)`,
        }),
      )
      for (const c of facts.collections) {
        out.push(
          measure(ctx, {
            id: 'chroma.records',
            component: 'chroma',
            title: 'Records per Chroma collection',
            value: c.count,
            unit: 'count',
            info: true,
            labels: {collection: c.name},
            message: `${c.name}: ${c.count} records`,
          }),
        )
      }
    }
    const dir = ctx.settings.chromaDir
    if (dir && existsSync(dir)) {
      const size = await directorySize(dir)
      out.push(
        measure(ctx, {
          id: 'chroma.persist_bytes',
          component: 'chroma',
          title: 'Chroma persist directory size',
          value: size.bytes,
          unit: 'bytes',
          info: true,
          labels: {path: dir},
          message: `${formatBytes(size.bytes)} in ${size.files} files`,
        }),
      )
      out.push(diskResult(ctx, await diskUsage(dir), 'chroma'))
    }
    return out
  },
}

export const UPLOADS_CHECK: Check = {
  id: 'uploads',
  component: 'uploads',
  title: 'Uploads directory',
  async run(ctx) {
    const dir = ctx.settings.uploadsDir
    if (!dir)
      return [
        unknown(
          'uploads',
          'uploads.bytes',
          'Uploads',
          'UPLOADS_DIR is not set',
          'Set UPLOADS_DIR in the backend .env.',
        ),
      ]
    if (!existsSync(dir))
      return [
        measure(ctx, {
          id: 'uploads.bytes',
          component: 'uploads',
          title: 'Uploads size',
          value: null,
          unit: 'bytes',
          status: 'warning',
          labels: {path: dir},
          message: `${dir} does not exist`,
          remedy: 'Create the uploads directory (or fix UPLOADS_DIR); the service cannot store uploads without it.',
        }),
      ]
    const size = await directorySize(dir)
    ctx.memo.set('uploads.bytes', Promise.resolve(size.bytes))
    return [
      measure(ctx, {
        id: 'uploads.files',
        component: 'uploads',
        title: 'Uploaded files',
        value: size.files,
        unit: 'count',
        info: true,
        labels: {path: dir},
        message: `${size.files} files`,
      }),
      measure(ctx, {
        id: 'uploads.bytes',
        component: 'uploads',
        title: 'Uploads size',
        value: size.bytes,
        unit: 'bytes',
        info: true,
        labels: {path: dir},
        message: formatBytes(size.bytes),
      }),
      diskResult(ctx, await diskUsage(dir), 'uploads'),
    ]
  },
}

export const MEMORY_CHECK: Check = {
  id: 'memory.available_pct',
  component: 'host',
  title: 'Available memory',
  async run(ctx) {
    const m = await memoryInfo()
    if (!m.limitBytes || m.availableBytes === undefined)
      return [
        unknown(
          'host',
          'memory.available_pct',
          'Available memory',
          'cannot read /proc/meminfo or the cgroup memory files',
        ),
      ]
    const p = (m.availableBytes / m.limitBytes) * 100
    return [
      measure(ctx, {
        id: 'memory.available_pct',
        component: 'host',
        title: 'Available memory (cgroup limit or host)',
        value: Math.round(p * 100) / 100,
        unit: '%',
        message: `${formatBytes(m.availableBytes)} available of ${formatBytes(m.limitBytes)} (${m.source})`,
        remedy:
          'Guide 11 (memory pressure): add swap, lower concurrency (service workers, pool sizes, work_mem), or give the host / container more memory.',
      }),
    ]
  },
}
