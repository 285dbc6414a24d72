/**
 * The upgrade journal: what an upgrade did, step by step, so that a rerun after a crash knows the
 * truth (GitLab's pg-upgrade rerun falsely reported success: omnibus-gitlab#8499).
 *
 *   <stateDir>/upgrade/journal.json          the current (or last) run, rewritten atomically
 *                                            (temp file, fsync, rename) before and after each step
 *   <stateDir>/upgrade/history/<id>.json     every finished run (what `upgrade history` reads)
 *   table charge_ops_upgrades                the same journal in the stack's database (best effort:
 *                                            the file is authoritative, the table lets other hosts
 *                                            and dashboards see upgrades)
 */
import {randomBytes} from 'node:crypto'
import {existsSync, readFileSync, readdirSync} from 'node:fs'
import {hostname} from 'node:os'
import {join} from 'node:path'

import type {Settings} from '../config/settings.js'
import {writeFileAtomicSync} from '../core/fs/atomic.js'
import {CliError, ExitCode} from '../errors.js'
import type {Logger} from '../output/logger.js'

export type UpgradeTarget = 'local' | 'compose' | 'k8s'
export type StepName = 'backup' | 'stop' | 'fetch' | 'install' | 'migrate' | 'start' | 'verify'
export type StepStatus = 'pending' | 'running' | 'done' | 'failed' | 'undone' | 'undo-failed'
export type UpgradeStatus = 'running' | 'rolling-back' | 'succeeded' | 'rolled-back' | 'rollback-failed'

export const STEP_TITLES: Record<StepName, string> = {
  backup: '1 verified backup (database + files) of the current state',
  stop: '2 maintenance mode on, stop the service (drain the worker)',
  fetch: '3 fetch the new version',
  install: '4 install its dependencies',
  migrate: '5 migrate up',
  start: '6 switch to the new release and start it',
  verify: '7 verify (/health, smoke request, web UI, migrate status, version)',
}
export const STEP_ORDER: StepName[] = ['backup', 'stop', 'fetch', 'install', 'migrate', 'start', 'verify']

export interface StepRecord {
  name: StepName
  title: string
  status: StepStatus
  startedAt?: string
  finishedAt?: string
  durationMs?: number
  note?: string
  error?: string
  /** the schema head after the step (or at the failure) */
  schemaHead?: string | null
  /** what undo needs (backup id, previous link …) */
  data: Record<string, unknown>
}

export interface UpgradeJournal {
  formatVersion: 1
  id: string
  stack: string
  target: UpgradeTarget
  status: UpgradeStatus
  pid: number
  host: string
  startedAt: string
  finishedAt?: string
  durationMs?: number
  from: {
    version: string | null
    /** the release directory that ran (null: the service bundled with charge-ops) */
    release: string | null
    schemaHead: string | null
    /** compose / k8s: the database was unreachable before the upgrade, so schemaHead is not known */
    schemaHeadUnknown?: boolean
    migrationsDir: string
    serviceRunning: boolean
    maintenanceWasOn: boolean
    /** schemas of the database before the upgrade (a restore drops any other) */
    schemasBefore?: string[]
  }
  to: {source: string; version: string; release: string; schemaHead: string | null; migrationsDir: string}
  /** sha256 of charge-ops.yaml + the backend .env: a resume under another configuration is refused */
  configHash: string
  /** the preflight checks as they passed */
  preflight?: Array<{name: string; status: string; detail: string}>
  backupId?: string
  steps: StepRecord[]
  failure?: {step: StepName | 'resume'; error: string; code?: string}
  rollback?: {
    method?: 'down-migrations' | 'restore' | 'none'
    startedAt: string
    finishedAt?: string
    verified?: boolean
    error?: string
    resumed?: boolean
  }
  /** set when a later run found this one interrupted: during `atStep`, or (killed between two steps) after `afterStep` */
  interrupted?: {detectedAt: string; byPid: number; atStep?: StepName; afterStep?: StepName}
}

export const journalDir = (settings: Pick<Settings, 'stateDir'>) => join(settings.stateDir, 'upgrade')
export const journalFile = (settings: Pick<Settings, 'stateDir'>) => join(journalDir(settings), 'journal.json')
export const historyDir = (settings: Pick<Settings, 'stateDir'>) => join(journalDir(settings), 'history')

export function newUpgradeId(now = new Date()): string {
  return `${now
    .toISOString()
    .replace(/[-:]/g, '')
    .replace(/\.\d+Z$/, 'Z')}-upgrade-${randomBytes(3).toString('hex')}`
}

export function newJournal(
  input: Omit<UpgradeJournal, 'formatVersion' | 'id' | 'status' | 'pid' | 'host' | 'startedAt' | 'steps'> & {
    now?: Date
    steps?: StepName[]
  },
): UpgradeJournal {
  const now = input.now ?? new Date()
  const {now: _now, steps, ...rest} = input
  return {
    formatVersion: 1,
    id: newUpgradeId(now),
    status: 'running',
    pid: process.pid,
    host: hostname(),
    startedAt: now.toISOString(),
    ...rest,
    steps: (steps ?? STEP_ORDER).map((name) => ({name, title: STEP_TITLES[name], status: 'pending', data: {}})),
  }
}

export function readJournal(settings: Pick<Settings, 'stateDir'>): UpgradeJournal | undefined {
  const file = journalFile(settings)
  if (!existsSync(file)) return undefined
  try {
    return JSON.parse(readFileSync(file, 'utf8')) as UpgradeJournal
  } catch (error) {
    // never read as "no journal" (jsonJournal's load): it may record an upgrade that still needs its rollback
    throw new CliError(
      'UPGRADE_JOURNAL_UNREADABLE',
      ExitCode.findings,
      `the upgrade journal ${file} cannot be parsed: ${(error as Error).message}`,
      {
        hint: `Check by hand which versions the stack runs (finished upgrades are recorded in ${historyDir(settings)}), then move the file aside.`,
      },
    )
  }
}

/** True when the journal describes a run that has not finished (running or rolling back). */
export const isUnfinished = (journal: UpgradeJournal | undefined): journal is UpgradeJournal =>
  journal !== undefined && (journal.status === 'running' || journal.status === 'rolling-back')

/**
 * Runs one journalled step of either upgrade (local: index.ts, compose / k8s: targets.ts): marked
 * running and saved before it starts, then done or failed (its error also the journal's failure),
 * timed and saved again. `ended` records what the caller reads once the step ended (the local
 * upgrade: the schema head) before that save.
 */
export async function runJournalledStep<T>(
  journal: UpgradeJournal,
  record: StepRecord,
  store: Pick<JournalStore, 'save'>,
  fn: () => Promise<T>,
  ended?: () => Promise<void>,
): Promise<T> {
  record.status = 'running'
  record.startedAt = new Date().toISOString()
  await store.save(journal)
  try {
    const result = await fn()
    record.status = 'done'
    return result
  } catch (error) {
    record.status = 'failed'
    record.error = (error as Error).message
    journal.failure = {step: record.name, error: (error as Error).message, code: (error as {code?: string}).code}
    throw error
  } finally {
    record.finishedAt = new Date().toISOString()
    record.durationMs = Date.parse(record.finishedAt) - Date.parse(record.startedAt)
    await ended?.()
    await store.save(journal)
  }
}

export const UPGRADES_TABLE = 'charge_ops_upgrades'

const TABLE_DDL = `CREATE TABLE IF NOT EXISTS ${UPGRADES_TABLE} (
  id text PRIMARY KEY,
  stack text NOT NULL,
  target text NOT NULL,
  status text NOT NULL,
  started_at timestamptz NOT NULL,
  finished_at timestamptz,
  duration_ms bigint,
  from_version text,
  to_version text,
  from_head text,
  to_head text,
  failed_step text,
  error text,
  config_hash text,
  journal jsonb NOT NULL,
  updated_at timestamptz NOT NULL DEFAULT now()
)`

/** Persists the journal: the file (authoritative) and the database table (best effort). */
export class JournalStore {
  private tableWarned = false
  constructor(
    private readonly settings: Pick<Settings, 'stateDir'>,
    private readonly databaseUrl: string | undefined,
    private readonly logger: Logger,
  ) {}

  async save(journal: UpgradeJournal): Promise<void> {
    writeFileAtomicSync(journalFile(this.settings), JSON.stringify(journal, null, 2) + '\n', {mode: 0o644})
    if (journal.status !== 'running' && journal.status !== 'rolling-back') {
      writeFileAtomicSync(
        join(historyDir(this.settings), `${journal.id}.json`),
        JSON.stringify(journal, null, 2) + '\n',
        {mode: 0o644},
      )
    }
    await this.saveRow(journal)
  }

  async saveRow(journal: UpgradeJournal): Promise<void> {
    if (!this.databaseUrl) return
    try {
      const {withClient} = await import('../postgres/connection.js')
      await withClient(
        this.databaseUrl,
        async (client) => {
          await client.query(TABLE_DDL)
          await client.query(
            `INSERT INTO ${UPGRADES_TABLE} (id, stack, target, status, started_at, finished_at, duration_ms, from_version, to_version, from_head, to_head, failed_step, error, config_hash, journal, updated_at)
             VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13,$14,$15,now())
             ON CONFLICT (id) DO UPDATE SET status = EXCLUDED.status, finished_at = EXCLUDED.finished_at, duration_ms = EXCLUDED.duration_ms,
               to_version = EXCLUDED.to_version, to_head = EXCLUDED.to_head, failed_step = EXCLUDED.failed_step, error = EXCLUDED.error,
               journal = EXCLUDED.journal, updated_at = now()`,
            [
              journal.id,
              journal.stack,
              journal.target,
              journal.status,
              journal.startedAt,
              journal.finishedAt ?? null,
              journal.durationMs ?? null,
              journal.from.version,
              journal.to.version,
              journal.from.schemaHead,
              journal.to.schemaHead,
              journal.failure?.step ?? null,
              journal.failure?.error ?? null,
              journal.configHash,
              JSON.stringify(journal),
            ],
          )
        },
        {connectTimeoutMs: 3000, applicationName: 'charge-ops upgrade journal'},
      )
    } catch (error) {
      if (!this.tableWarned)
        this.logger.warn(
          `could not record the upgrade in table ${UPGRADES_TABLE} (the journal file is kept): ${(error as Error).message}`,
        )
      this.tableWarned = true
    }
  }
}

/** Finished upgrades, newest first: the state dir's history merged with the database table. */
export async function listUpgrades(
  settings: Pick<Settings, 'stateDir' | 'databaseUrl'>,
  logger?: Logger,
): Promise<{upgrades: UpgradeJournal[]; sources: string[]}> {
  const byId = new Map<string, UpgradeJournal>()
  const sources: string[] = []
  const dir = historyDir(settings)
  if (existsSync(dir)) {
    sources.push(dir)
    for (const name of readdirSync(dir).filter((f) => f.endsWith('.json'))) {
      try {
        const journal = JSON.parse(readFileSync(join(dir, name), 'utf8')) as UpgradeJournal
        byId.set(journal.id, journal)
      } catch {
        logger?.warn(`skipping unreadable ${join(dir, name)}`)
      }
    }
  }
  const current = readJournal(settings)
  if (current) byId.set(current.id, current)
  if (settings.databaseUrl) {
    try {
      const {withClient} = await import('../postgres/connection.js')
      const rows = await withClient(
        settings.databaseUrl,
        async (client) => {
          const exists = await client.query(`SELECT to_regclass($1) AS t`, [UPGRADES_TABLE])
          if (!exists.rows[0]?.t) return []
          return (
            await client.query<{journal: UpgradeJournal}>(
              `SELECT journal FROM ${UPGRADES_TABLE} ORDER BY started_at DESC`,
            )
          ).rows
        },
        {connectTimeoutMs: 3000},
      )
      sources.push(`table ${UPGRADES_TABLE}`)
      // The file is written first, so on disagreement it is the newer truth.
      for (const row of rows) if (!byId.has(row.journal.id)) byId.set(row.journal.id, row.journal)
    } catch (error) {
      logger?.warn(`could not read table ${UPGRADES_TABLE}: ${(error as Error).message}`)
    }
  }
  const upgrades = [...byId.values()].sort((a, b) => b.startedAt.localeCompare(a.startedAt))
  return {upgrades, sources}
}
