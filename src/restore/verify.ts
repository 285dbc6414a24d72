/**
 * `backup verify <id|latest> [--restore-drill]`: every part's size and sha256 against the
 * manifest (a flipped byte anywhere → exit 1 naming the part); with a drill, the dump is restored
 * into a scratch database on the same server (or --drill-url), row counts compared, the scratch
 * database dropped, and the measured recovery time recorded in the manifest and as a metric.
 */
import {requireSetting} from '../config/settings.js'
import {faultPoint} from '../core/faults.js'
import {ChecksFailedError, CliError, LockHeldError} from '../errors.js'
import {scratchDatabase} from '../postgres/scratch.js'
import {
  manifestKey,
  recordVerification,
  resolveBackup,
  type BackupManifest,
  type Verification,
} from '../repository/manifest.js'
import {checkPart, type PartCheck} from './logical.js'
import type {BackupContext} from '../backup/context.js'

export interface VerifyResult {
  id: string
  kind: string
  ok: boolean
  parts: PartCheck[]
  /** file-engine base backups: the blocks checked across the chain */
  chain?: {backups: string[]; blocks: number; bytes: number; bad: {what: string; error: string}[]}
  restoreDrill?: {
    durationMs: number
    database: string
    rowCountsMatch: boolean
    mismatches: string[]
    tables: number
    skippedExtensions: string[]
  }
  manifest: BackupManifest
}

type VerifyOptions = {restoreDrill?: boolean; drillUrl?: string; jobs?: number}

export async function verifyBackup(
  ctx: BackupContext,
  ref: string,
  options: VerifyOptions = {},
): Promise<VerifyResult> {
  // the drill restores a database dump: `latest` is then the newest backup that has one (the nightly
  // verify runs after the files backup, which would otherwise be "latest" and fail every night)
  const manifest = await resolveBackup(
    ctx.storage,
    ctx.stack,
    ref,
    options.restoreDrill && ref === 'latest' ? {kind: ['db', 'all']} : {},
  )
  let result: VerifyResult
  try {
    result = await verifyManifest(ctx, manifest, options)
  } catch (error) {
    // a drill that could not run (no CREATEDB, restore error) is a failed drill for the alert too
    await recordVerifyMetrics(ctx, manifest.kind, {ok: false, ...(options.restoreDrill ? {drill: {ok: false}} : {})})
    throw error
  }
  const drill = result.restoreDrill
  await recordVerifyMetrics(ctx, manifest.kind, {
    ok: result.ok,
    ...(options.restoreDrill
      ? {drill: drill ? {ok: drill.rowCountsMatch, durationMs: drill.durationMs} : {ok: false}}
      : {}),
  })
  return result
}

async function recordVerifyMetrics(
  ctx: BackupContext,
  kind: string,
  outcome: Parameters<typeof import('../backup/metrics.js').verifyMetrics>[3],
): Promise<void> {
  if (!ctx.metricsFile && !ctx.pushgatewayUrl) return
  const {publishMetrics, verifyMetrics} = await import('../backup/metrics.js')
  await publishMetrics(ctx, verifyMetrics(ctx.stack, kind, ctx.now(), outcome), ctx.logger)
}

async function verifyManifest(
  ctx: BackupContext,
  manifest: BackupManifest,
  options: VerifyOptions,
): Promise<VerifyResult> {
  const parts: PartCheck[] = []
  for (const part of manifest.parts) {
    const p = ctx.progress(`verify ${part.name}`, part.bytes)
    const check = await checkPart(ctx.storage, manifest, part, (n) => p.add(n))
    p.done(check.ok ? 'ok' : 'MISMATCH')
    parts.push(check)
  }
  // a file-engine base backup: every block of the chain, in whichever backup holds it
  const {isFileBackup} = await import('../backup/base-files.js')
  let chain: VerifyResult['chain']
  if (isFileBackup(manifest)) {
    const {verifyFileChain} = await import('./pitr-files.js')
    const p = ctx.progress(`verify ${manifest.id} chain`)
    chain = await verifyFileChain(ctx.storage, manifest, {onProgress: (n) => p.add(n)})
    p.done(
      chain.bad.length === 0
        ? `${chain.blocks} blocks in ${chain.backups.length} backup(s) ok`
        : `${chain.bad.length} BAD`,
    )
    for (const bad of chain.bad)
      parts.push({part: bad.what, ok: false, expectedSha256: '', expectedBytes: 0, error: bad.error})
  }
  const checksumsOk = parts.every((p) => p.ok)
  const verifiedAt = ctx.now().toISOString()
  let drill: VerifyResult['restoreDrill']
  if (checksumsOk && options.restoreDrill) {
    if (!manifest.db)
      throw new ChecksFailedError(
        `backup ${manifest.id} is a ${manifest.kind} backup without a database dump; --restore-drill needs one`,
        {code: 'BACKUP_WRONG_KIND'},
      )
    const serverUrl =
      options.drillUrl ??
      ctx.settings.adminDatabaseUrl ??
      requireSetting(
        ctx.settings.databaseUrl,
        'DATABASE_URL',
        'The drill restores into a scratch database on that server (or pass --drill-url).',
      )
    const via = options.drillUrl
      ? 'the drill URL'
      : ctx.settings.adminDatabaseUrl
        ? 'CHARGE_OPS_ADMIN_URL'
        : 'DATABASE_URL'
    const db = scratchDatabase(serverUrl, 'charge_ops_drill', {
      code: 'DRILL_NO_CREATEDB',
      message: (m) =>
        `the restore drill cannot create its scratch database: ${m} (the role of ${via} lacks CREATEDB); the checksums were verified`,
      hint: 'Set CHARGE_OPS_ADMIN_URL (or pass --drill-url) to a role that may create databases on that server, e.g. postgresql://postgres@host:5432/postgres, or ALTER ROLE … CREATEDB.',
    })
    const scratch = db.name
    await db.create()
    ctx.logger.info(`restore drill: restoring ${manifest.id} into scratch database ${scratch}`)
    try {
      const {restoreDatabaseDump} = await import('./logical.js')
      const result = await restoreDatabaseDump({
        storage: ctx.storage,
        manifest,
        targetUrl: db.url,
        jobs: options.jobs,
        logger: ctx.logger,
        progress: ctx.progress,
        encryption: ctx.encryption,
        skipChecksums: true,
      })
      drill = {
        durationMs: result.durationMs,
        database: scratch,
        rowCountsMatch: result.mismatches.length === 0,
        mismatches: result.mismatches,
        tables: Object.keys(result.rowCounts).length,
        skippedExtensions: result.skippedExtensions,
      }
    } finally {
      await db.drop(ctx.logger)
    }
  }
  const ok = checksumsOk && (!drill || drill.rowCountsMatch)
  await faultPoint('backup.verify.before-record')
  const updated = await recordUnderLock(ctx, manifest, {
    verifiedAt,
    ok,
    checksumsOk,
    ...(drill
      ? {
          restoreDrill: {
            at: verifiedAt,
            durationMs: drill.durationMs,
            rowCountsMatch: drill.rowCountsMatch,
            mismatches: drill.mismatches,
          },
        }
      : {}),
  })
  return {id: manifest.id, kind: manifest.kind, ok, parts, chain, restoreDrill: drill, manifest: updated}
}

/**
 * Records the verification in the manifest — unless the backup was deleted meanwhile. A drill reads
 * parts through open file handles, so a `backup prune` that deletes the backup mid-drill does not
 * make the drill fail: without this check the verify reported "verified" for a backup that no
 * longer exists, and its manifest rewrite could even resurrect the manifest of a half-deleted
 * backup. Prune deletes under the stack's backup lock, so the rewrite takes that lock too; a
 * backup writer holding it never deletes a complete backup, so then the rewrite goes ahead without
 * it rather than waiting minutes for a dump to finish.
 */
async function recordUnderLock(
  ctx: BackupContext,
  manifest: BackupManifest,
  verification: Verification,
): Promise<BackupManifest> {
  const {acquireLock, readLock} = await import('../repository/lock.js')
  const deadline = Date.now() + 120_000
  let release: (() => Promise<void>) | undefined
  for (;;) {
    try {
      release = await acquireLock(ctx.storage, ctx.stack, {command: `backup verify ${manifest.id}`})
      break
    } catch (error) {
      if (!(error instanceof LockHeldError)) throw error
      const holder = await readLock(ctx.storage, ctx.stack)
      if (holder && holder !== 'invalid' && !holder.command.startsWith('backup prune')) break
      if (Date.now() > deadline) throw error
      await new Promise((resolve) => setTimeout(resolve, 250))
    }
  }
  try {
    if (!(await ctx.storage.exists(manifestKey(ctx.stack, manifest.id)))) {
      throw new ChecksFailedError(
        `backup ${manifest.id} was deleted while it was being verified (by backup prune?): the verification is void`,
        {
          code: 'BACKUP_DELETED',
          hint: 'Run `charge-ops backup list` and verify a backup that still exists.',
        },
      )
    }
    return await recordVerification(ctx.storage, ctx.stack, manifest.id, verification).catch((error) => {
      if (error instanceof CliError) throw error
      ctx.logger.warn(`could not record the verification in the manifest: ${(error as Error).message}`)
      return manifest
    })
  } finally {
    await release?.()
  }
}

/** The error the command throws when verification failed (exit 1), naming every bad part. */
export function verificationError(result: VerifyResult): ChecksFailedError {
  const bad = result.parts.filter((p) => !p.ok)
  const reasons = bad.map(
    (p) =>
      `part ${p.part}: ${p.error ? `unreadable (${p.error})` : `sha256 ${p.actualSha256?.slice(0, 12)}… ≠ manifest ${p.expectedSha256.slice(0, 12)}…${p.actualBytes !== p.expectedBytes ? `, ${p.actualBytes} bytes ≠ ${p.expectedBytes}` : ''}`}`,
  )
  if (result.restoreDrill && !result.restoreDrill.rowCountsMatch)
    reasons.push(`restore drill: row counts differ (${result.restoreDrill.mismatches.join('; ')})`)
  return new ChecksFailedError(`backup ${result.id} failed verification: ${reasons.join('; ')}`, {
    code: 'VERIFY_FAILED',
    hint: 'Do not rely on this backup; take a new one and check the repository storage.',
    data: {parts: bad.map((p) => p.part)},
  })
}
