/**
 * One analysis job, exactly once: the job is claimed in PostgreSQL (queued, or running with an
 * expired lease), its lease is renewed while the file is analysed, and findings + status='done'
 * are committed in one transaction that first checks the claim is still ours (the attempt number
 * is the fencing token). A worker killed at any moment leaves either nothing or the complete result.
 */
import {join, resolve, sep} from 'node:path'

import type {Logger} from 'pino'

import {AnalysisInputError, analyzeFile, type AnalysisResult, type FindingKind} from './analysis.js'
import {inTransaction, type Pool} from './db.js'
import type {Embedder} from './embedder.js'
import {searchKnowledge, type KnowledgeStore, type PassageHit} from './knowledge.js'
import {summarize} from './summary.js'

export const MAX_ATTEMPTS = 5
export const PASSAGES_PER_FINDING = 2

/** The query each finding kind asks the knowledge base. */
export const FINDING_QUERIES: Record<FindingKind, string> = {
  over_temperature:
    'battery over-temperature during charging: thermal management, cooling failure, high battery temperature',
  derating: 'charger derating: charging power reduced, current limited because of temperature or grid limits',
  interruption: 'charging session interrupted: charger fault, communication loss, session stopped and resumed',
  abnormal_voltage: 'abnormal charging voltage: voltage spike or drop, insulation fault, contactor or sensor problem',
}

export interface JobDeps {
  pool: Pool
  uploadsDir: string
  workerId: string
  leaseSeconds: number
  logger: Logger
  knowledge?: KnowledgeStore
  embedder: Embedder
  llm?: {url: string; model: string; apiKey?: string}
  /** chaos/test knob: wait this long after claiming (WORKER_PAUSE_AFTER_CLAIM_MS) */
  pauseAfterClaimMs?: number
  /** told each state change once it is committed (the worker publishes it to the web UI) */
  onStatus?: (change: {
    analysisId: string
    status: 'queued' | 'running' | 'done' | 'failed'
    findingsCount?: number
    error?: string
  }) => void
}

export type JobOutcome = 'done' | 'failed' | 'skipped' | 'retry' | 'lost-lease'

export async function processAnalysis(deps: JobDeps, analysisId: string): Promise<JobOutcome> {
  const {pool, logger} = deps
  const claimed = await pool.query<{attempts: number; path: string; filename: string}>(
    `UPDATE analyses a SET status = 'running', worker = $2, attempts = a.attempts + 1, started_at = now(),
            lease_until = now() + make_interval(secs => $3), error = NULL
       FROM uploads u
      WHERE a.id = $1 AND u.id = a.upload_id
        AND (a.status = 'queued' OR (a.status = 'running' AND a.lease_until < now()))
      RETURNING a.attempts, u.path, u.filename`,
    [analysisId, deps.workerId, deps.leaseSeconds],
  )
  const job = claimed.rows[0]
  if (!job) return 'skipped'
  const attempt = job.attempts
  const log = logger.child({analysisId, attempt})
  log.info({file: job.filename}, 'analysis started')
  deps.onStatus?.({analysisId, status: 'running'})

  const renew = setInterval(
    () => {
      pool
        .query(
          `UPDATE analyses SET lease_until = now() + make_interval(secs => $3) WHERE id = $1 AND worker = $2 AND attempts = $4 AND status = 'running'`,
          [analysisId, deps.workerId, deps.leaseSeconds, attempt],
        )
        .catch((error: Error) => log.warn({err: error.message}, 'lease renewal failed'))
    },
    Math.max(1000, (deps.leaseSeconds * 1000) / 3),
  )
  try {
    if (deps.pauseAfterClaimMs) await new Promise((r) => setTimeout(r, deps.pauseAfterClaimMs))
    const path = resolve(deps.uploadsDir, job.path)
    if (!path.startsWith(resolve(deps.uploadsDir) + sep))
      throw new AnalysisInputError(`upload path ${job.path} escapes UPLOADS_DIR`)
    const started = process.hrtime.bigint()
    let result: AnalysisResult
    try {
      result = await analyzeFile(path)
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT')
        throw new AnalysisInputError(`the uploaded file ${join('UPLOADS_DIR', job.path)} is missing`)
      throw error
    }
    const seconds = Number(process.hrtime.bigint() - started) / 1e9
    const passages = await linkPassages(deps, result, log)
    const summary = await summarize(result, deps.llm)
    const committed = await commitResult(deps, analysisId, attempt, result, passages, summary)
    if (!committed) {
      log.warn('lost the lease before committing; another worker owns the analysis now')
      return 'lost-lease'
    }
    log.info(
      {
        samples: result.metrics.samples,
        findings: result.findings.length,
        seconds: Number(seconds.toFixed(3)),
        samplesPerSecond: Math.round(result.metrics.samples / Math.max(seconds, 1e-6)),
      },
      'analysis done',
    )
    deps.onStatus?.({analysisId, status: 'done', findingsCount: result.findings.length})
    return 'done'
  } catch (error) {
    const permanent = error instanceof AnalysisInputError || attempt >= MAX_ATTEMPTS
    const message = error instanceof Error ? error.message : String(error)
    await pool.query(
      `UPDATE analyses SET status = $4, error = $5, lease_until = NULL, worker = CASE WHEN $4 = 'queued' THEN NULL ELSE worker END,
              finished_at = CASE WHEN $4 = 'failed' THEN now() ELSE NULL END
        WHERE id = $1 AND worker = $2 AND attempts = $3 AND status = 'running'`,
      [analysisId, deps.workerId, attempt, permanent ? 'failed' : 'queued', message],
    )
    deps.onStatus?.({analysisId, status: permanent ? 'failed' : 'queued', ...(permanent ? {error: message} : {})})
    if (permanent) log.error({err: message}, 'analysis failed')
    else log.warn({err: message}, 'analysis attempt failed; it will be retried')
    return permanent ? 'failed' : 'retry'
  } finally {
    clearInterval(renew)
  }
}

/** One knowledge-base query per finding kind present (not per finding: a session can have thousands). */
async function linkPassages(
  deps: JobDeps,
  result: AnalysisResult,
  log: Logger,
): Promise<Map<FindingKind, PassageHit[]>> {
  const out = new Map<FindingKind, PassageHit[]>()
  if (!deps.knowledge || result.findings.length === 0) return out
  const kinds = [...new Set(result.findings.map((f) => f.kind))]
  try {
    for (const kind of kinds)
      out.set(
        kind,
        await searchKnowledge(deps.pool, deps.knowledge, deps.embedder, FINDING_QUERIES[kind], PASSAGES_PER_FINDING),
      )
  } catch (error) {
    // Findings are worth storing without their references; the log says why they are missing.
    log.warn({err: (error as Error).message}, 'knowledge base unavailable: findings stored without passages')
    out.clear()
  }
  return out
}

async function commitResult(
  deps: JobDeps,
  analysisId: string,
  attempt: number,
  result: AnalysisResult,
  passages: Map<FindingKind, PassageHit[]>,
  summary: string,
): Promise<boolean> {
  return inTransaction(deps.pool, async (client) => {
    const mine = await client.query(
      `SELECT 1 FROM analyses WHERE id = $1 AND worker = $2 AND attempts = $3 AND status = 'running' FOR UPDATE`,
      [analysisId, deps.workerId, attempt],
    )
    if (mine.rowCount === 0) {
      await client.query('ROLLBACK')
      await client.query('BEGIN') // inTransaction commits an empty transaction
      return false
    }
    const f = result.findings
    if (f.length > 0) {
      const inserted = await client.query<{id: string; kind: FindingKind}>(
        `INSERT INTO findings (analysis_id, kind, severity, started_at, ended_at, duration_seconds, samples, peak_value, detail)
         SELECT $1, * FROM unnest($2::text[], $3::text[], $4::timestamptz[], $5::timestamptz[], $6::float8[], $7::int[], $8::float8[], $9::text[])
         RETURNING id::text, kind`,
        [
          analysisId,
          f.map((x) => x.kind),
          f.map((x) => x.severity),
          f.map((x) => x.startedAt),
          f.map((x) => x.endedAt),
          f.map((x) => x.durationSeconds),
          f.map((x) => x.samples),
          f.map((x) => x.peakValue),
          f.map((x) => x.detail),
        ],
      )
      const links: {finding: string[]; passage: string[]; rank: number[]; distance: number[]} = {
        finding: [],
        passage: [],
        rank: [],
        distance: [],
      }
      for (const row of inserted.rows) {
        ;(passages.get(row.kind) ?? []).forEach((hit, i) => {
          links.finding.push(row.id)
          links.passage.push(hit.passageId)
          links.rank.push(i + 1)
          links.distance.push(hit.distance)
        })
      }
      if (links.finding.length > 0) {
        await client.query(
          `INSERT INTO finding_passages (finding_id, passage_id, rank, distance)
           SELECT * FROM unnest($1::bigint[], $2::uuid[], $3::int[], $4::float8[]) ON CONFLICT DO NOTHING`,
          [links.finding, links.passage, links.rank, links.distance],
        )
      }
    }
    await client.query(
      `UPDATE analyses SET status = 'done', metrics = $2, summary = $3, findings_count = $4, finished_at = now(), lease_until = NULL, error = NULL WHERE id = $1`,
      [analysisId, JSON.stringify(result.metrics), summary, f.length],
    )
    return true
  })
}
