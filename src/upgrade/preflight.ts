/**
 * Preflight: every check runs before anything changes, and all of them are reported together.
 * config validates; PostgreSQL, Redis, Chroma reachable; the service healthy; free disk for the
 * backup (estimated from the last one) and for the migrations (the tables they rewrite); the new
 * version's pending migrations pass `migrate lint`; no downgrade below the database's migration
 * head (unless --force); a recently verified backup when required.
 */
import {createHash} from 'node:crypto'
import {existsSync, readFileSync, statfsSync} from 'node:fs'
import {tmpdir} from 'node:os'

import type {Settings} from '../config/settings.js'
import {CliError, ExitCode, type ExitCodeValue} from '../errors.js'
import type {Logger} from '../output/logger.js'
import {formatDuration, parseDuration} from '../core/units/duration.js'
import {formatBytes} from '../core/units/size.js'
import type {StagedRelease} from './release.js'

export interface PreflightCheck {
  name: string
  status: 'ok' | 'warning' | 'failed' | 'skipped'
  detail: string
  /** the exit code this failure maps to */
  exitCode?: ExitCodeValue
  hint?: string
}

export interface PreflightInput {
  settings: Settings
  databaseUrl: string
  staged: StagedRelease
  /** schema head of the database now */
  head: string | null
  force?: boolean
  requireVerifiedWithinMs?: number
  /** check the service's health (the local target runs it) */
  checkService: boolean
  logger: Logger
  now?: () => Date
}

export interface PreflightFacts {
  checks: PreflightCheck[]
  /** pending migrations of the new version (file names) */
  pending: string[]
  estimatedBackupBytes?: number
  serviceVersion?: string
  serviceRunning: boolean
}

/** sha256 over charge-ops.yaml and the backend .env (hex) — never their contents. */
export function configHash(settings: Pick<Settings, 'configPath' | 'envFilePath'>): string {
  const hash = createHash('sha256')
  for (const file of [settings.configPath, settings.envFilePath]) {
    hash.update(`${file ?? '-'}\0`)
    if (file && existsSync(file)) hash.update(readFileSync(file))
  }
  return hash.digest('hex')
}

export function parseWithin(text: string): number {
  return parseDuration(text, {
    message: `--require-verified-within "${text}" is not a duration`,
    hint: 'Use minutes, hours or days: 90m, 24h, 7d.',
  })
}

function freeBytes(path: string): number | undefined {
  try {
    const st = statfsSync(path)
    return Number(st.bavail) * Number(st.bsize)
  } catch {
    return undefined
  }
}

/** Table names a migration's up SQL rewrites or indexes (the worst case needs their size again). */
export function tablesTouched(sql: string): string[] {
  const names = new Set<string>()
  const patterns = [
    /\balter\s+table\s+(?:if\s+exists\s+)?(?:only\s+)?("?[\w.]+"?)/gi,
    /\bcreate\s+(?:unique\s+)?index\s+(?:concurrently\s+)?(?:if\s+not\s+exists\s+)?(?:\S+\s+)?on\s+(?:only\s+)?("?[\w.]+"?)/gi,
    /\bupdate\s+("?[\w.]+"?)\s+set\b/gi,
    /\bcluster\s+("?[\w.]+"?)/gi,
  ]
  for (const re of patterns) for (const m of sql.matchAll(re)) names.add(m[1]!.replace(/"/g, ''))
  return [...names]
}

const ok = (name: string, detail: string): PreflightCheck => ({name, status: 'ok', detail})
const failed = (name: string, detail: string, exitCode: ExitCodeValue, hint?: string): PreflightCheck => ({
  name,
  status: 'failed',
  detail,
  exitCode,
  hint,
})
/** A check that threw: its message, hint and exit code (`exitCode` when the error carries none). */
const failedBy = (name: string, error: unknown, exitCode: ExitCodeValue): PreflightCheck =>
  failed(name, (error as Error).message, (error as CliError).exitCode ?? exitCode, (error as CliError).hint)

type MigrationFiles = ReturnType<typeof import('../migrate/index.js').loadMigrations>

export async function runPreflight(input: PreflightInput): Promise<PreflightFacts> {
  const {settings, databaseUrl, logger} = input
  const checks: PreflightCheck[] = []
  let serviceVersion: string | undefined
  let serviceRunning = false

  checks.push(await configCheck(settings))
  const database = await databaseCheck(databaseUrl)
  checks.push(database.check, ...(await storeChecks(settings)))
  if (input.checkService) {
    const service = await serviceCheck(settings)
    serviceRunning = service.serviceRunning
    serviceVersion = service.serviceVersion
    checks.push(service.check)
  }
  const migrations = await migrationChecks(input)
  checks.push(...migrations.checks)
  const backups = await backupChecks(input, database.dbSize)
  checks.push(...backups.checks)
  checks.push(await migrationDiskCheck(databaseUrl, migrations.pendingFiles, database.dataDir))

  const stagingFree = freeBytes(settings.stateDir) ?? freeBytes(tmpdir())
  if (stagingFree !== undefined && stagingFree < 50 * 1024 * 1024)
    checks.push(
      failed(
        'disk: releases',
        `${formatBytes(stagingFree)} free in ${settings.stateDir}`,
        ExitCode.findings,
        'Free space for the new release.',
      ),
    )

  logger.debug(`preflight: ${checks.map((c) => `${c.name}=${c.status}`).join(' ')}`)
  return {
    checks,
    pending: migrations.pendingFiles.map((f) => f.file),
    estimatedBackupBytes: backups.estimatedBackupBytes,
    serviceVersion,
    serviceRunning,
  }
}

/** charge-ops.yaml and the backend .env pass `config validate` (warnings allowed). */
async function configCheck(settings: Settings): Promise<PreflightCheck> {
  if (!settings.configPath && !settings.envFilePath)
    return {name: 'config', status: 'skipped', detail: 'no charge-ops.yaml / .env file (settings from the environment)'}
  const {validateConfig} = await import('../config/validate/runner.js')
  const report = validateConfig({
    cwd: settings.baseDir,
    files: {
      ...(settings.configPath ? {'charge-ops-yaml': settings.configPath} : {}),
      ...(settings.envFilePath ? {'backend-env': settings.envFilePath} : {}),
    },
  })
  const errors = report.findings.filter((f) => f.severity === 'error')
  return errors.length === 0
    ? ok('config', `valid (${report.files.length} file(s), ${report.summary.warnings} warning(s))`)
    : failed(
        'config',
        `${errors.length} error(s): ${errors
          .slice(0, 3)
          .map((f) => `${f.file}${f.line ? `:${f.line}` : ''} ${f.message}`)
          .join('; ')}`,
        ExitCode.usage,
        'Run `charge-ops config validate` and fix every error.',
      )
}

/** PostgreSQL reachable; its database size (the backup estimate without a backup) and data directory. */
async function databaseCheck(databaseUrl: string): Promise<{check: PreflightCheck; dbSize?: number; dataDir?: string}> {
  try {
    const {withClient} = await import('../postgres/connection.js')
    const facts = await withClient(
      databaseUrl,
      async (c) => {
        const size = Number(
          (await c.query<{s: string}>('SELECT pg_database_size(current_database())::text AS s')).rows[0]!.s,
        )
        const dir = await c
          .query<{d: string}>(`SELECT current_setting('data_directory') AS d`)
          .then((r) => r.rows[0]?.d)
          .catch(() => undefined)
        return {size, dir}
      },
      {connectTimeoutMs: 5000},
    )
    return {
      check: ok('postgresql', `reachable, database ${formatBytes(facts.size)}`),
      dbSize: facts.size,
      dataDir: facts.dir,
    }
  } catch (error) {
    return {check: failed('postgresql', (error as Error).message, ExitCode.unreachable, (error as CliError).hint)}
  }
}

/** Redis and Chroma reachable, when configured. */
async function storeChecks(settings: Settings): Promise<PreflightCheck[]> {
  const checks: PreflightCheck[] = []
  if (settings.redisUrl) {
    try {
      const {withRedis} = await import('../redis/client.js')
      await withRedis(settings.redisUrl, (r) => r.ping(), {timeoutMs: 3000})
      checks.push(ok('redis', 'reachable (PING)'))
    } catch (error) {
      checks.push(failed('redis', (error as Error).message, ExitCode.unreachable, (error as CliError).hint))
    }
  } else checks.push({name: 'redis', status: 'skipped', detail: 'REDIS_URL not configured'})
  if (settings.chromaUrl) {
    try {
      const {chromaHeartbeat} = await import('../chroma/client.js')
      await chromaHeartbeat(settings.chromaUrl, {timeoutMs: 3000})
      checks.push(ok('chroma', 'reachable (heartbeat)'))
    } catch (error) {
      checks.push(failed('chroma', (error as Error).message, ExitCode.unreachable, (error as CliError).hint))
    }
  } else checks.push({name: 'chroma', status: 'skipped', detail: 'CHROMA_URL not configured'})
  return checks
}

/** The running service is healthy (an upgrade starts from a healthy stack); not running is only a warning. */
async function serviceCheck(
  settings: Settings,
): Promise<{check: PreflightCheck; serviceRunning: boolean; serviceVersion?: string}> {
  const {serviceStatus} = await import('../service/process.js')
  const status = await serviceStatus(settings)
  const serviceRunning = status.processes.some((p) => p.running)
  if (!serviceRunning)
    return {
      check: {
        name: 'service',
        status: 'warning',
        detail: 'not running: it is started on the new version after the migrations',
      },
      serviceRunning,
    }
  if (status.health?.status === 'ok')
    return {
      check: ok('service', `healthy, version ${status.health.version ?? '?'}`),
      serviceRunning,
      serviceVersion: status.health.version,
    }
  return {
    check: failed(
      'service',
      `running but not healthy (${status.health?.status ?? 'no API'}${status.health?.failing.length ? `: ${status.health.failing.join(', ')}` : ''})`,
      ExitCode.unreachable,
      'Fix the running service first (`charge-ops service status`, `charge-ops doctor`): an upgrade starts from a healthy stack.',
    ),
    serviceRunning,
  }
}

/** The new version's pending migrations pass lint, its files agree with the history, and it is no downgrade. */
async function migrationChecks(
  input: PreflightInput,
): Promise<{checks: PreflightCheck[]; pendingFiles: MigrationFiles}> {
  const {databaseUrl, staged} = input
  const checks: PreflightCheck[] = []
  const {loadMigrations, compareVersions} = await import('../migrate/index.js')
  let pendingFiles: MigrationFiles = []
  try {
    const files = loadMigrations(staged.migrationsDir)
    pendingFiles = files.filter((f) => input.head === null || compareVersions(f.version, input.head) > 0)
    const {lintMigrations} = await import('../migrate/lint.js')
    const lint =
      pendingFiles.length > 0
        ? lintMigrations({files: pendingFiles.map((f) => f.path)})
        : {errors: 0, warnings: 0, findings: []}
    checks.push(
      lint.errors === 0
        ? ok('migrate lint', `${pendingFiles.length} pending migration(s), ${lint.warnings} warning(s)`)
        : failed(
            'migrate lint',
            lint.findings
              .filter((f) => f.severity === 'error')
              .map((f) => `${f.file}:${f.line} ${f.rule}: ${f.message}`)
              .join('; '),
            ExitCode.findings,
            'Fix the migrations of the new version (or mark a reviewed statement with `-- charge-ops:lint-ignore <rule>`).',
          ),
    )
  } catch (error) {
    checks.push(failed('migrate lint', (error as Error).message, ExitCode.usage))
  }

  // the new version's files against the history: an applied migration edited or failed is drift (exit 3)
  try {
    const {migrationStatus} = await import('../migrate/index.js')
    const st = await migrationStatus({databaseUrl, migrationsDir: staged.migrationsDir})
    const drift = st.problems.filter(
      (p) => p.kind === 'changed' || p.kind === 'failed' || (p.kind === 'missing' && !input.force),
    )
    checks.push(
      drift.length === 0
        ? ok('migration history', `consistent with ${staged.info.version}'s files (${st.pending} pending)`)
        : failed(
            'migration history',
            drift.map((p) => p.message).join('; '),
            ExitCode.pendingMigrations,
            drift[0]!.hint,
          ),
    )
  } catch (error) {
    checks.push(failedBy('migration history', error, ExitCode.unreachable))
  }

  // downgrade
  const newHead = staged.info.migrationsHead
  if (input.head !== null && (newHead === null || compareVersions(newHead, input.head) < 0)) {
    const detail = `the database is at migration ${input.head} but ${staged.info.version} knows migrations only up to ${newHead ?? 'none'}`
    checks.push(
      input.force
        ? {name: 'downgrade', status: 'warning', detail: `${detail} (--force)`}
        : failed(
            'downgrade',
            detail,
            ExitCode.usage,
            'Downgrading past the schema head breaks the old code on the new schema. Migrate down first with the newer release, restore a backup, or pass --force if you know the schema is compatible.',
          ),
    )
  } else checks.push(ok('downgrade', `schema ${input.head ?? 'empty'} → ${newHead ?? 'none'}`))
  return {checks, pendingFiles}
}

/** The backup before the upgrade: its size estimated from the last one, room for it, a verified one when required. */
async function backupChecks(
  input: PreflightInput,
  dbSize: number | undefined,
): Promise<{checks: PreflightCheck[]; estimatedBackupBytes?: number}> {
  const {settings} = input
  const now = input.now ?? (() => new Date())
  const checks: PreflightCheck[] = []
  let estimatedBackupBytes: number | undefined
  try {
    const {openConfiguredRepository} = await import('../repository/open.js')
    const storage = await openConfiguredRepository(settings)
    const {listBackups, manifestBytes} = await import('../repository/manifest.js')
    const {complete} = await listBackups(storage, settings.stack)
    const last = complete.find((m) => m.kind === 'all' || m.kind === 'db')
    estimatedBackupBytes = last
      ? Math.ceil(
          complete.filter((m) => m.startedAt >= (last.startedAt ?? '')).reduce((n, m) => n + manifestBytes(m), 0) * 1.2,
        )
      : dbSize
    if (input.requireVerifiedWithinMs !== undefined) {
      const cutoff = now().getTime() - input.requireVerifiedWithinMs
      const verified = complete.find(
        (m) =>
          m.verification?.ok &&
          Date.parse(m.verification.verifiedAt) >= cutoff &&
          (m.kind === 'all' || m.kind === 'db'),
      )
      checks.push(
        verified
          ? ok(
              'verified backup',
              `${verified.id} verified ${formatDuration(now().getTime() - Date.parse(verified.verification!.verifiedAt))} ago`,
            )
          : failed(
              'verified backup',
              `no database backup verified within ${formatDuration(input.requireVerifiedWithinMs)}`,
              ExitCode.findings,
              'Run `charge-ops backup all && charge-ops backup verify latest --restore-drill` first.',
            ),
      )
    }
    if (storage.kind === 'local') {
      const free = freeBytes(storage.location)
      const need = estimatedBackupBytes ?? 0
      checks.push(
        free === undefined || free >= need
          ? ok(
              'disk: backup',
              `${free === undefined ? '?' : formatBytes(free)} free in the repository, the backup needs ≈ ${formatBytes(need)}${last ? ` (last backup ${last.id})` : ' (database size: no backup yet)'}`,
            )
          : failed(
              'disk: backup',
              `${formatBytes(free)} free in ${storage.location} but the backup needs ≈ ${formatBytes(need)}`,
              ExitCode.findings,
              'Free space (`charge-ops backup prune`) or point the repository at a larger volume.',
            ),
      )
    } else checks.push({name: 'disk: backup', status: 'skipped', detail: `object storage (${storage.location})`})
  } catch (error) {
    checks.push(failedBy('backup repository', error, ExitCode.usage))
  }
  return {checks, estimatedBackupBytes}
}

/** Disk for the migrations: the tables they rewrite or index may need their size again (measured when the data directory is on this host). */
async function migrationDiskCheck(
  databaseUrl: string,
  pendingFiles: MigrationFiles,
  dataDir: string | undefined,
): Promise<PreflightCheck> {
  if (!(
    pendingFiles.length > 0 &&
    dataDir &&
    existsSync(dataDir) &&
    /(^|@)(localhost|127\.0\.0\.1|\[::1\])(:|\/)/.test(databaseUrl)
  )) {
    return {
      name: 'disk: migrations',
      status: 'skipped',
      detail:
        pendingFiles.length === 0 ? 'no pending migration' : 'the data directory is not on this host (or not readable)',
    }
  }
  const tables = [...new Set(pendingFiles.flatMap((f) => tablesTouched(f.up.sql ?? '')))]
  try {
    const {withClient} = await import('../postgres/connection.js')
    const need =
      tables.length === 0
        ? 0
        : await withClient(databaseUrl, async (c) =>
            Number(
              (
                await c.query<{s: string}>(
                  `SELECT coalesce(sum(pg_total_relation_size(to_regclass(t))), 0)::text AS s FROM unnest($1::text[]) AS t`,
                  [tables],
                )
              ).rows[0]!.s,
            ),
          )
    const free = freeBytes(dataDir)
    return free === undefined || free >= need * 1.1
      ? ok(
          'disk: migrations',
          `${free === undefined ? '?' : formatBytes(free)} free for PostgreSQL, the migrations may rewrite ≈ ${formatBytes(need)}${tables.length ? ` (${tables.join(', ')})` : ''}`,
        )
      : failed(
          'disk: migrations',
          `${formatBytes(free)} free in ${dataDir} but the migrations may rewrite ≈ ${formatBytes(need)} (${tables.join(', ')})`,
          ExitCode.findings,
          'Free disk on the database server before upgrading.',
        )
  } catch (error) {
    return {name: 'disk: migrations', status: 'warning', detail: `not measured: ${(error as Error).message}`}
  }
}

/** Throws when a check failed: the first failure's exit code, every failure in the message. */
export function assertPreflight(checks: PreflightCheck[]): void {
  const bad = checks.filter((c) => c.status === 'failed')
  if (bad.length === 0) return
  const precedence: ExitCodeValue[] = [
    ExitCode.locked,
    ExitCode.unreachable,
    ExitCode.usage,
    ExitCode.pendingMigrations,
    ExitCode.findings,
  ]
  const exitCode = precedence.find((code) => bad.some((c) => c.exitCode === code)) ?? ExitCode.findings
  throw new CliError(
    'UPGRADE_PREFLIGHT_FAILED',
    exitCode,
    `preflight failed, nothing was changed:\n${bad.map((c) => `  ✗ ${c.name}: ${c.detail}`).join('\n')}`,
    {
      hint: bad.find((c) => c.hint)?.hint,
      data: {checks},
    },
  )
}

export function renderChecks(checks: PreflightCheck[]): string {
  const mark = {ok: '✓', warning: '!', failed: '✗', skipped: '-'}
  return checks.map((c) => `  ${mark[c.status]} ${c.name.padEnd(16)} ${c.detail}`).join('\n')
}
