/**
 * The HTTP API (fastify). Built by `buildApp(deps)` so tests and the server entry share it.
 *
 *   GET  /health                       PostgreSQL, Redis and Chroma (200 / 503 naming the failing one)
 *   GET  /metrics                      Prometheus
 *   POST /api/v1/uploads               a session log (multipart field "file", or a text/csv body), streamed to UPLOADS_DIR
 *   GET  /api/v1/analyses/:id          status, metrics, findings and their knowledge passages
 *   GET  /api/v1/sessions              uploaded sessions with their latest analysis
 *   POST /api/v1/knowledge             documents, chunked and embedded
 *   GET  /api/v1/knowledge/search?q=   passages nearest to q
 *   GET  /api/v1/analyses/:id/series   the session's curves (columns; min/max-decimated above ?max=)
 *   POST /api/v1/logs                  the frontend's error reports (authenticated, rate-limited)
 *   GET  /ws                           WebSocket: analysis state changes, live (token in the first message)
 *   GET  /*                            the built web UI (dist/web), index.html for the UI's own paths
 *
 * /api/v1 needs a bearer JWT signed with SECRET_KEY. In maintenance mode writes answer 503.
 */
import {createHash, randomUUID} from 'node:crypto'
import {createWriteStream, mkdirSync, openSync, fsyncSync, closeSync, renameSync, rmSync} from 'node:fs'
import {join, resolve, sep} from 'node:path'
import type {Readable} from 'node:stream'
import {Transform} from 'node:stream'
import {pipeline} from 'node:stream/promises'

import Fastify, {type FastifyInstance, type FastifyReply, type FastifyRequest} from 'fastify'
import type {Redis} from 'ioredis'
import type {Logger} from 'pino'

import {verifyToken, type TokenClaims} from './auth.js'
import type {ServiceConfig} from './config.js'
import {inTransaction, type Pool} from './db.js'
import type {Embedder} from './embedder.js'
import {headerMismatch} from './analysis.js'
import {addDocument, searchKnowledge, type KnowledgeStore} from './knowledge.js'
import {publishEvent} from './events.js'
import {maintenanceState} from './maintenance.js'
import type {ServiceMetrics} from './metrics.js'
import {enqueue} from './queue.js'
import {readSeries} from './series.js'
import {registerWebUi} from './web.js'
import {registerLiveEvents} from './ws.js'
import {SERVICE_VERSION} from './version.js'

export interface AppDeps {
  config: ServiceConfig
  pool: Pool
  redis: Redis
  knowledge: KnowledgeStore
  embedder: Embedder
  metrics: ServiceMetrics
  logger: Logger
}

declare module 'fastify' {
  interface FastifyRequest {
    claims?: TokenClaims
    startedAt?: bigint
  }
}

/** ?sort= of GET /api/v1/sessions → its SQL (a whitelist: never the caller's text). */
const SESSION_SORTS: Record<string, string> = {
  uploadedAt: 'u.uploaded_at',
  startedAt: "(a.metrics->>'startedAt')",
  status: 'a.status',
  findings: 'a.findings_count',
  energy: "(a.metrics->>'energyKwh')::float8",
  peakPower: "(a.metrics->>'peakPowerKw')::float8",
  filename: 'u.filename',
}

const WRITE_METHODS = new Set(['POST', 'PUT', 'PATCH', 'DELETE'])
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i
export const MAINTENANCE_RETRY_AFTER_SECONDS = 120

class HttpError extends Error {
  constructor(
    readonly statusCode: number,
    readonly code: string,
    message: string,
  ) {
    super(message)
  }
}

export async function buildApp(deps: AppDeps): Promise<FastifyInstance> {
  const {config, pool, redis, metrics} = deps
  const app = Fastify({
    loggerInstance: deps.logger,
    disableRequestLogging: true,
    bodyLimit: 2 * 1024 * 1024,
    trustProxy: true,
  })
  const multipart = (await import('@fastify/multipart')).default
  await app.register(multipart, {limits: {fileSize: config.maxUploadBytes, files: 1, fields: 5}})
  // A raw CSV body (curl --data-binary @session.csv) is passed through as a stream, never buffered.
  app.addContentTypeParser(['text/csv', 'application/octet-stream'], (_req, payload, done) => done(null, payload))

  app.addHook('onRequest', async (request, reply) => {
    request.startedAt = process.hrtime.bigint()
    const origin = request.headers.origin
    if (origin && config.allowedOrigins.includes(origin)) {
      reply.header('access-control-allow-origin', origin).header('vary', 'Origin')
      reply
        .header('access-control-allow-headers', 'authorization, content-type')
        .header('access-control-allow-methods', 'GET, POST, OPTIONS')
    }
    if (request.method === 'OPTIONS') return reply.code(204).send()
    if (!request.url.startsWith('/api/v1')) return
    const header = request.headers.authorization ?? ''
    const token = header.startsWith('Bearer ') ? header.slice(7).trim() : ''
    if (!token)
      throw new HttpError(401, 'unauthorized', 'missing bearer token (mint one with `charge-ops service token`)')
    try {
      request.claims = await verifyToken(config.secretKey, token)
    } catch (error) {
      throw new HttpError(401, 'unauthorized', `invalid token: ${(error as Error).message}`)
    }
    if (WRITE_METHODS.has(request.method)) {
      const state = await maintenanceState(config.stateDir, redis)
      if (state.on) {
        reply.header('retry-after', String(MAINTENANCE_RETRY_AFTER_SECONDS))
        throw new HttpError(
          503,
          'maintenance',
          `the service is in maintenance mode${state.reason ? ` (${state.reason})` : ''}; reads still work, retry writes later`,
        )
      }
    }
  })

  app.addHook('onResponse', async (request, reply) => {
    const route = request.routeOptions.url ?? 'unmatched'
    metrics.requests.inc({method: request.method, route, status: String(reply.statusCode)})
    if (request.startedAt)
      metrics.latency.observe(
        {method: request.method, route},
        Number(process.hrtime.bigint() - request.startedAt) / 1e9,
      )
  })

  app.setErrorHandler((error: Error & {statusCode?: number; code?: string; validation?: unknown}, request, reply) => {
    // An upload refused half-way leaves unread body bytes on the socket: close it after answering.
    if (request.method === 'POST' && request.url.startsWith('/api/v1/uploads')) reply.header('connection', 'close')
    if (error instanceof HttpError)
      return reply.code(error.statusCode).send({error: {code: error.code, message: error.message}})
    const status = error.statusCode && error.statusCode < 500 ? error.statusCode : 500
    if (status >= 500) request.log.error({err: error, route: request.routeOptions.url}, 'request failed')
    return reply.code(status).send({
      error: {
        code: status === 500 ? 'internal' : (error.code ?? 'bad_request'),
        message: status === 500 ? 'internal error (see logs/error.log)' : error.message,
      },
    })
  })

  app.get('/health', async (_request, reply) => {
    const result = await healthCheck(deps)
    return reply.code(result.status === 'ok' ? 200 : 503).send(result)
  })

  app.get('/metrics', async (_request, reply) => {
    const body = await metrics.registry.metrics()
    return reply.type(metrics.registry.contentType).send(body)
  })

  app.post('/api/v1/uploads', async (request, reply) => {
    let source: Readable
    let filename: string
    let truncated = () => false
    if (request.isMultipart()) {
      const file = await request.file()
      if (!file) throw new HttpError(400, 'no_file', 'send the session log as multipart field "file"')
      source = file.file
      filename = file.filename
      truncated = () => file.file.truncated
    } else if (request.body && typeof (request.body as Readable).pipe === 'function') {
      source = request.body as Readable
      filename = String(
        (request.query as {filename?: string}).filename ?? request.headers['x-filename'] ?? 'session.csv',
      )
    } else {
      throw new HttpError(415, 'unsupported_media_type', 'send multipart/form-data (field "file") or a text/csv body')
    }
    const stored = await storeUpload(config, source, filename, truncated)
    metrics.uploadsBytes.inc(stored.bytes)
    const analysisId = await inTransaction(pool, async (client) => {
      await client.query(
        `INSERT INTO uploads (id, filename, path, sha256, bytes, content_type) VALUES ($1, $2, $3, $4, $5, $6)`,
        [
          stored.id,
          stored.filename,
          stored.path,
          stored.sha256,
          stored.bytes,
          request.headers['content-type']?.split(';')[0] ?? null,
        ],
      )
      const {rows} = await client.query<{id: string}>(
        `INSERT INTO analyses (upload_id) VALUES ($1) RETURNING id::text`,
        [stored.id],
      )
      return rows[0]!.id
    })
    let queued = true
    try {
      await enqueue(redis, analysisId)
    } catch (error) {
      // PostgreSQL holds the job; the worker's reconcile pushes it when Redis is back.
      queued = false
      request.log.warn(
        {analysisId, err: (error as Error).message},
        'Redis unavailable: analysis recorded, will be queued by the worker',
      )
    }
    request.log.info({analysisId, uploadId: stored.id, bytes: stored.bytes, sha256: stored.sha256}, 'session uploaded')
    await publishEvent(redis, {
      type: 'analysis',
      analysisId,
      status: 'queued',
      uploadId: stored.id,
      filename: stored.filename,
      at: new Date().toISOString(),
    })
    return reply.code(202).send({
      analysisId,
      uploadId: stored.id,
      filename: stored.filename,
      bytes: stored.bytes,
      sha256: stored.sha256,
      status: 'queued',
      queuedInRedis: queued,
    })
  })

  app.get('/api/v1/analyses/:id', async (request) => {
    const {id} = request.params as {id: string}
    if (!UUID.test(id)) throw new HttpError(400, 'bad_id', 'the analysis id is a UUID')
    const {rows} = await pool.query(
      `SELECT a.id::text, a.status, a.attempts, a.error, a.metrics, a.summary, a.findings_count AS "findingsCount",
              a.queued_at AS "queuedAt", a.started_at AS "startedAt", a.finished_at AS "finishedAt",
              json_build_object('id', u.id, 'filename', u.filename, 'bytes', u.bytes, 'sha256', u.sha256, 'uploadedAt', u.uploaded_at) AS upload
         FROM analyses a JOIN uploads u ON u.id = a.upload_id WHERE a.id = $1`,
      [id],
    )
    if (!rows[0]) throw new HttpError(404, 'not_found', `no analysis ${id}`)
    const findings = await pool.query(
      `SELECT f.id::text, f.kind, f.severity, f.started_at AS "startedAt", f.ended_at AS "endedAt", f.duration_seconds AS "durationSeconds",
              f.samples, f.peak_value AS "peakValue", f.detail,
              COALESCE(json_agg(json_build_object('passageId', p.id, 'title', d.title, 'content', p.content, 'rank', fp.rank, 'distance', fp.distance)
                         ORDER BY fp.rank) FILTER (WHERE p.id IS NOT NULL), '[]') AS passages
         FROM findings f
         LEFT JOIN finding_passages fp ON fp.finding_id = f.id
         LEFT JOIN knowledge_passages p ON p.id = fp.passage_id
         LEFT JOIN knowledge_documents d ON d.id = p.document_id
        WHERE f.analysis_id = $1
        GROUP BY f.id ORDER BY f.started_at, f.id LIMIT 1000`,
      [id],
    )
    return {...rows[0], findings: findings.rows}
  })

  app.get('/api/v1/analyses/:id/series', async (request) => {
    const {id} = request.params as {id: string}
    if (!UUID.test(id)) throw new HttpError(400, 'bad_id', 'the analysis id is a UUID')
    const max = Math.min(Math.max(Number((request.query as {max?: string}).max ?? 20_000) || 20_000, 100), 200_000)
    const {rows} = await pool.query<{path: string; samples: number | null; invalid: number | null; bytes: string}>(
      `SELECT u.path, (a.metrics->>'samples')::int AS samples, (a.metrics->>'invalidLines')::int AS invalid, u.bytes::text
         FROM analyses a JOIN uploads u ON u.id = a.upload_id WHERE a.id = $1`,
      [id],
    )
    const row = rows[0]
    if (!row) throw new HttpError(404, 'not_found', `no analysis ${id}`)
    const path = resolve(config.uploadsDir, row.path)
    if (!path.startsWith(resolve(config.uploadsDir) + sep))
      throw new HttpError(500, 'bad_path', 'upload path escapes UPLOADS_DIR')
    // Not analysed yet: estimate the lines from the size (≈ 60 bytes a line) so decimation still bounds the answer.
    const expectedLines = row.samples === null ? Math.ceil(Number(row.bytes) / 60) : row.samples + (row.invalid ?? 0)
    try {
      return await readSeries(path, {max, expectedLines})
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT')
        throw new HttpError(410, 'upload_missing', `the uploaded file of analysis ${id} is no longer in UPLOADS_DIR`)
      throw error
    }
  })

  app.get('/api/v1/sessions', async (request) => {
    const q = request.query as {limit?: string; offset?: string; sort?: string; order?: string}
    const limit = Math.min(Math.max(Number(q.limit ?? 50) || 50, 1), 500)
    const offset = Math.max(Number(q.offset ?? 0) || 0, 0)
    const sortKey = q.sort ?? 'uploadedAt'
    const sort = Object.hasOwn(SESSION_SORTS, sortKey) ? SESSION_SORTS[sortKey] : undefined
    if (!sort) throw new HttpError(400, 'bad_sort', `sort is one of ${Object.keys(SESSION_SORTS).join(', ')}`)
    const order = q.order === 'asc' ? 'ASC' : 'DESC'
    const {rows} = await pool.query(
      `SELECT u.id::text AS "uploadId", u.filename, u.bytes, u.sha256, u.uploaded_at AS "uploadedAt",
              a.id::text AS "analysisId", a.status, a.findings_count AS "findingsCount", a.metrics
         FROM uploads u
         LEFT JOIN LATERAL (SELECT * FROM analyses WHERE upload_id = u.id ORDER BY queued_at DESC LIMIT 1) a ON true
        ORDER BY ${sort} ${order} NULLS LAST, u.uploaded_at DESC, u.id LIMIT $1 OFFSET $2`,
      [limit, offset],
    )
    const total = await pool.query<{n: string}>(`SELECT count(*) AS n FROM uploads`)
    return {total: Number(total.rows[0]!.n), limit, offset, sessions: rows}
  })

  app.post('/api/v1/knowledge', async (request, reply) => {
    const body = request.body as {title?: unknown; text?: unknown; source?: unknown; documents?: unknown} | undefined
    const docs = Array.isArray(body?.documents) ? (body.documents as unknown[]) : [body]
    const valid = docs.map((d, i) => {
      const doc = d as {title?: unknown; text?: unknown; source?: unknown}
      if (
        !doc ||
        typeof doc.title !== 'string' ||
        typeof doc.text !== 'string' ||
        !doc.title.trim() ||
        !doc.text.trim()
      ) {
        throw new HttpError(400, 'bad_document', `document ${i + 1}: "title" and "text" are required strings`)
      }
      return {title: doc.title.trim(), text: doc.text, source: typeof doc.source === 'string' ? doc.source : undefined}
    })
    const added = []
    for (const doc of valid) {
      const end = metrics.vectorSearch.startTimer({operation: 'upsert'})
      try {
        added.push(await addDocument(pool, deps.knowledge, deps.embedder, doc))
      } finally {
        end()
      }
    }
    return reply.code(201).send({documents: added})
  })

  app.get('/api/v1/knowledge/search', async (request) => {
    const q = request.query as {q?: string; limit?: string}
    if (!q.q || !q.q.trim()) throw new HttpError(400, 'missing_query', 'pass the search text as ?q=')
    const limit = Math.min(Math.max(Number(q.limit ?? 5) || 5, 1), 50)
    const end = metrics.vectorSearch.startTimer({operation: 'query'})
    try {
      return {query: q.q, results: await searchKnowledge(pool, deps.knowledge, deps.embedder, q.q, limit)}
    } finally {
      end()
    }
  })

  const windows = new Map<string, {minute: number; count: number}>()
  app.post('/api/v1/logs', async (request, reply) => {
    const subject = request.claims?.sub ?? request.ip
    if (!(await allowLogReport(redis, windows, subject, config.logRateLimitPerMinute))) {
      reply.header('retry-after', '60')
      throw new HttpError(429, 'rate_limited', `at most ${config.logRateLimitPerMinute} reports per minute`)
    }
    const body = (request.body ?? {}) as Record<string, unknown>
    const level = ['error', 'warn', 'info'].includes(String(body.level)) ? String(body.level) : 'error'
    const report = {
      frontend: true,
      subject,
      message: String(body.message ?? '').slice(0, 2000),
      url: body.url === undefined ? undefined : String(body.url).slice(0, 500),
      stack: body.stack === undefined ? undefined : String(body.stack).slice(0, 8000),
      userAgent: request.headers['user-agent'],
    }
    if (!report.message) throw new HttpError(400, 'missing_message', '"message" is required')
    request.log[level as 'error' | 'warn' | 'info'](report, 'frontend report')
    return reply.code(202).send({accepted: true})
  })

  const plain = app as unknown as FastifyInstance
  await registerLiveEvents(plain, {secretKey: config.secretKey, redis, logger: deps.logger})
  if (config.webRoot) await registerWebUi(plain, config.webRoot)
  return app as unknown as FastifyInstance
}

async function allowLogReport(
  redis: Redis,
  windows: Map<string, {minute: number; count: number}>,
  subject: string,
  limit: number,
): Promise<boolean> {
  const minute = Math.floor(Date.now() / 60_000)
  if (redis.status === 'ready') {
    try {
      const key = `charge-ops:ratelimit:logs:${subject}:${minute}`
      const [[, count]] = (await redis.multi().incr(key).expire(key, 120).exec()) as [[null, number], unknown]
      return count <= limit
    } catch {
      // fall back to this process's window
    }
  }
  const w = windows.get(subject)
  if (!w || w.minute !== minute) {
    windows.set(subject, {minute, count: 1})
    return true
  }
  w.count++
  return w.count <= limit
}

interface StoredUpload {
  id: string
  filename: string
  path: string
  sha256: string
  bytes: number
}

const HEADER_SNIFF_BYTES = 4096

/** What is wrong with the first line of an upload, once it is complete (or the file ended); undefined = fine so far. */
function headerProblem(head: Buffer, ended: boolean): string | undefined {
  const newline = head.indexOf(10)
  if (newline < 0 && !ended && head.length <= HEADER_SNIFF_BYTES) return undefined
  const problem = headerMismatch(
    head.toString('utf8', 0, newline < 0 ? Math.min(head.length, HEADER_SNIFF_BYTES) : newline).slice(0, 200),
  )
  return problem && `line 1: ${problem} — not a charging-session log`
}

/** Streams to <uploads>/.incoming/<id>.part with a running sha256, fsyncs, then renames into YYYY/MM/DD/. */
async function storeUpload(
  config: ServiceConfig,
  source: Readable,
  rawName: string,
  truncated: () => boolean,
): Promise<StoredUpload> {
  const id = randomUUID()
  const filename = rawName.replace(/[^\w.\-]+/g, '_').slice(0, 200) || 'session.csv'
  const incoming = join(config.uploadsDir, '.incoming')
  mkdirSync(incoming, {recursive: true})
  const temp = join(incoming, `${id}.part`)
  const hash = createHash('sha256')
  let bytes = 0
  const limit = config.maxUploadBytes
  // The first line is checked while the bytes stream in, so a file that is not a session log is
  // refused at once (422) instead of being stored, queued and failing later in the worker.
  let head: Buffer | undefined = Buffer.alloc(0)
  const meter = new Transform({
    transform(chunk: Buffer, _enc, done) {
      bytes += chunk.length
      if (bytes > limit) return done(new HttpError(413, 'too_large', `the log is larger than ${limit} bytes`))
      if (head) {
        head = Buffer.concat([head, chunk])
        const problem = headerProblem(head, false)
        if (problem) return done(new HttpError(422, 'not_a_session_log', problem))
        if (head.includes(10) || head.length > HEADER_SNIFF_BYTES) head = undefined
      }
      hash.update(chunk)
      done(null, chunk)
    },
    flush(done) {
      const problem = head && head.length > 0 ? headerProblem(head, true) : undefined
      done(problem ? new HttpError(422, 'not_a_session_log', problem) : null)
    },
  })
  const sink = createWriteStream(temp, {mode: 0o640})
  try {
    await pipeline(source, meter, sink)
    if (truncated()) throw new HttpError(413, 'too_large', `the log is larger than ${limit} bytes`)
    if (bytes === 0) throw new HttpError(400, 'empty', 'the uploaded log is empty')
    const fd = openSync(temp, 'r')
    fsyncSync(fd)
    closeSync(fd)
  } catch (error) {
    // a refusal on the first chunk can come before the file is even open: removing it then would
    // race the open, which creates it afterwards — wait until the sink is closed, then remove
    if (!sink.closed) await new Promise<void>((resolve) => sink.once('close', () => resolve()))
    rmSync(temp, {force: true})
    if ((error as {code?: string}).code === 'FST_REQ_FILE_TOO_LARGE')
      throw new HttpError(413, 'too_large', `the log is larger than ${limit} bytes`)
    throw error
  }
  const day = new Date().toISOString().slice(0, 10).split('-')
  const relative = join(day[0]!, day[1]!, day[2]!, `${id}.csv`)
  const finalDir = join(config.uploadsDir, day[0]!, day[1]!, day[2]!)
  mkdirSync(finalDir, {recursive: true})
  renameSync(temp, join(config.uploadsDir, relative))
  const dirFd = openSync(finalDir, 'r')
  fsyncSync(dirFd)
  closeSync(dirFd)
  return {id, filename, path: relative, sha256: hash.digest('hex'), bytes}
}

export interface HealthResult {
  status: 'ok' | 'fail'
  version: string
  failing: string[]
  checks: Record<string, {status: 'ok' | 'fail'; latencyMs: number; error?: string}>
  maintenance: boolean
  /** the reason given to `charge-ops service maintenance on --reason` (the UI's banner shows it) */
  maintenanceReason?: string
}

async function timed(
  fn: () => Promise<unknown>,
  timeoutMs = 2000,
): Promise<{status: 'ok' | 'fail'; latencyMs: number; error?: string}> {
  const started = performance.now()
  try {
    await Promise.race([
      fn(),
      new Promise((_, reject) =>
        setTimeout(() => reject(new Error(`no answer within ${timeoutMs} ms`)), timeoutMs).unref(),
      ),
    ])
    return {status: 'ok', latencyMs: Math.round(performance.now() - started)}
  } catch (error) {
    return {
      status: 'fail',
      latencyMs: Math.round(performance.now() - started),
      error: (error as Error).message || String(error),
    }
  }
}

export async function healthCheck(deps: Pick<AppDeps, 'pool' | 'redis' | 'config'>): Promise<HealthResult> {
  const [postgres, redis, chroma] = await Promise.all([
    timed(() => deps.pool.query('SELECT 1')),
    timed(async () => {
      if (deps.redis.status !== 'ready') throw new Error(`connection ${deps.redis.status}`)
      await deps.redis.ping()
    }),
    timed(async () => {
      const response = await fetch(`${deps.config.chromaUrl.replace(/\/$/, '')}/api/v2/heartbeat`, {
        signal: AbortSignal.timeout(2000),
      })
      if (!response.ok) throw new Error(`heartbeat answered ${response.status}`)
    }),
  ])
  const checks = {postgres, redis, chroma}
  const failing = Object.entries(checks)
    .filter(([, c]) => c.status === 'fail')
    .map(([name]) => name)
  const m = await maintenanceState(deps.config.stateDir, deps.redis.status === 'ready' ? deps.redis : undefined)
  return {
    status: failing.length === 0 ? 'ok' : 'fail',
    version: SERVICE_VERSION,
    failing,
    checks,
    maintenance: m.on,
    ...(m.on && m.reason ? {maintenanceReason: m.reason} : {}),
  }
}

export type {FastifyReply, FastifyRequest}
