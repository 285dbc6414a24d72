/**
 * What every backup command shares: opening the repository from settings, the lock, the backup
 * id, storing parts (compressed, optionally encrypted, hashed while streaming), writing the
 * manifest last, cleanup of a failed attempt, metrics and pings.
 */
import type {Readable} from 'node:stream'

import type {Settings} from '../config/settings.js'
import {holdReadable} from '../core/stream.js'
import {CliError, UnreachableError} from '../errors.js'
import type {Logger} from '../output/logger.js'
import type {Progress} from '../output/progress.js'
import {acquireLock} from '../repository/lock.js'
import {
  backupPrefix,
  impossiblyEmpty,
  manifestBytes,
  newBackupId,
  partKey,
  writeManifest,
  type BackupKind,
  type BackupManifest,
  type BackupManifestInput,
  type BackupPart,
} from '../repository/manifest.js'
import {openConfiguredRepository} from '../repository/open.js'
import type {RepositoryStorage} from '../repository/storage.js'
import type {CompressionSpec} from './compression.js'
import type {EncryptionKey} from './encryption.js'

export interface BackupRunOptions {
  settings: Settings
  logger: Logger
  progress?: (label: string, totalBytes?: number) => Progress
  /** --encrypt KEYFILE (else backup.encryption.keyFile) */
  encryptKeyFile?: string
  /** --metrics-file (else backup.metricsFile) */
  metricsFile?: string
  /** --ping-url (else backup.pingUrl) */
  pingUrl?: string
  /** an already opened repository (tests) */
  storage?: RepositoryStorage
  now?: () => Date
}

export interface BackupContext {
  settings: Settings
  stack: string
  storage: RepositoryStorage
  logger: Logger
  progress: (label: string, totalBytes?: number) => Progress
  compression: CompressionSpec & {toolVersion?: string}
  encryption?: EncryptionKey
  metricsFile?: string
  /** metrics.pushgatewayUrl: k8s CronJobs push what a host's job writes to the textfile */
  pushgatewayUrl?: string
  pingUrl?: string
  now: () => Date
}

const noProgress = (): Progress => ({add() {}, bytes: 0, done() {}})

export async function openBackupContext(options: BackupRunOptions): Promise<BackupContext> {
  const {settings, logger} = options
  const storage = options.storage ?? (await openConfiguredRepository(settings))
  const {resolveCompression} = await import('./compression.js')
  const compression = await resolveCompression(settings.yaml.backup.compression, (m) => logger.warn(m))
  const keyFile = options.encryptKeyFile ?? settings.yaml.backup.encryption?.keyFile
  let encryption: EncryptionKey | undefined
  if (keyFile) {
    const {loadKeyFile} = await import('./encryption.js')
    const {resolve} = await import('node:path')
    encryption = loadKeyFile(resolve(settings.baseDir, keyFile))
  }
  return {
    settings,
    stack: settings.stack,
    storage,
    logger,
    progress: options.progress ?? noProgress,
    compression,
    encryption,
    metricsFile: options.metricsFile ?? settings.yaml.backup.metricsFile,
    pushgatewayUrl: settings.yaml.metrics?.pushgatewayUrl,
    pingUrl: options.pingUrl ?? settings.yaml.backup.pingUrl,
    now: options.now ?? (() => new Date()),
  }
}

/** Node's ENOSPC / EDQUOT on the repository become a clear error (exit 5: the store is unusable). */
export function describeStorageError(error: unknown, what: string): unknown {
  const code = (error as NodeJS.ErrnoException)?.code
  if (code === 'ENOSPC' || code === 'EDQUOT') {
    return new UnreachableError(`the repository ran out of space while writing ${what}`, {
      code: 'REPOSITORY_NO_SPACE',
      hint: 'Free space in the repository (charge-ops backup prune) or point --repo at a larger volume. Nothing was marked complete.',
      cause: error,
    })
  }
  if (code === 'EACCES' || code === 'EROFS') {
    return new UnreachableError(`the repository is not writable (${code}) while writing ${what}`, {
      code: 'REPOSITORY_NOT_WRITABLE',
      hint: 'Check the permissions / mount of the repository directory.',
      cause: error,
    })
  }
  return error
}

/**
 * Stores one part under the backup's directory: `source` is already compressed; it is encrypted
 * here when a key is configured. Returns the manifest entry (size and sha256 of the stored bytes).
 */
export async function storePart(
  ctx: BackupContext,
  id: string,
  name: string,
  source: Readable,
  meta: Omit<BackupPart, 'name' | 'bytes' | 'sha256' | 'compression'> & {compression?: BackupPart['compression']},
  onProgress?: (bytes: number) => void,
): Promise<BackupPart> {
  // held before the first await: a producer that exits meanwhile must not lose its output (core/stream.ts)
  const held = holdReadable(source)
  let stream = held
  let encryption: BackupPart['encryption'] = null
  if (ctx.encryption) {
    const {createEncryptStream, DEFAULT_CHUNK_SIZE, ENCRYPTION_ALGORITHM} = await import('./encryption.js')
    const encrypt = createEncryptStream(ctx.encryption)
    held.on('error', (error) => encrypt.destroy(error))
    stream = held.pipe(encrypt)
    encryption = {algorithm: ENCRYPTION_ALGORITHM, keyId: ctx.encryption.keyId, chunkSize: DEFAULT_CHUNK_SIZE}
  }
  let stored: Awaited<ReturnType<RepositoryStorage['put']>>
  try {
    stored = await ctx.storage.put(partKey(ctx.stack, id, name), stream, {ifNotExists: true, onProgress})
  } catch (error) {
    throw describeStorageError(error, name)
  }
  const part = {
    ...meta,
    name,
    bytes: stored.bytes,
    sha256: stored.sha256,
    compression: meta.compression ?? ctx.compression.algorithm,
    encryption,
  }
  // Never a complete backup with a part that cannot be empty and is (repository/manifest impossiblyEmpty):
  // that is a bug in charge-ops, so it leaves with exit 70 and the backup stays incomplete.
  if (impossiblyEmpty({...part, fileCount: meta.fileCount as number | undefined})) {
    throw new Error(
      `part ${name} of backup ${id} was stored empty although it cannot be; nothing was recorded as complete`,
    )
  }
  return part
}

export interface BackupBody {
  parts: BackupPart[]
  extra?: Partial<BackupManifestInput>
}

/**
 * Runs one backup: lock → id → body (stores parts) → manifest (last) → metrics / ping. On failure
 * the parts already stored are deleted (best effort; a kill -9 leaves them for `backup prune`),
 * the failure metric is written and the ping URL gets /fail.
 */
export async function runBackup(
  ctx: BackupContext,
  kind: BackupKind,
  command: string,
  body: (id: string) => Promise<BackupBody>,
): Promise<BackupManifest> {
  const {ping, publishMetrics, successMetrics, failureMetrics} = await import('./metrics.js')
  const release = await acquireLock(ctx.storage, ctx.stack, {command})
  // under the lock: what killed runs left (temp files, S3 uploads) goes before this run adds more
  const {sweepLeftoverTemporary} = await import('../repository/leftovers.js')
  const swept = await sweepLeftoverTemporary(ctx.storage, ctx.stack).catch((error) => {
    ctx.logger.warn(`could not remove the temp files of killed runs: ${(error as Error).message}`)
    return []
  })
  if (swept.length > 0)
    ctx.logger.info(
      `removed ${swept.length} temp file(s) left by killed runs (${swept.reduce((n, t) => n + t.size, 0)} bytes)`,
    )
  const started = ctx.now()
  const id = newBackupId(kind, started)
  await ping(ctx.pingUrl, 'start', `${command} ${id}`, ctx.logger)
  try {
    ctx.logger.info(`${command}: backup ${id} → ${ctx.storage.location}`)
    const result = await body(id)
    const finished = ctx.now()
    const {version} = await import('./versions.js')
    const manifest = await writeManifest(ctx.storage, ctx.stack, {
      formatVersion: 1,
      id,
      kind,
      stack: ctx.stack,
      startedAt: started.toISOString(),
      finishedAt: finished.toISOString(),
      durationMs: finished.getTime() - started.getTime(),
      compression: {
        algorithm: ctx.compression.algorithm,
        level: ctx.compression.level,
        threads: ctx.compression.threads,
      },
      encryption: ctx.encryption ? {algorithm: 'aes-256-gcm-chunked', keyId: ctx.encryption.keyId} : null,
      ...result.extra,
      tools: {
        'charge-ops': version(),
        [ctx.compression.algorithm === 'zstd' ? 'zstd' : 'gzip']: ctx.compression.toolVersion ?? '',
        ...result.extra?.tools,
      },
      parts: result.parts,
    })
    await publishMetrics(
      ctx,
      successMetrics(ctx.stack, kind, finished, manifest.durationMs ?? 0, manifestBytes(manifest)),
      ctx.logger,
    )
    await ping(ctx.pingUrl, 'success', `${command} ${id} ok`, ctx.logger)
    return manifest
  } catch (error) {
    const objects = await ctx.storage.list(backupPrefix(ctx.stack, id)).catch(() => [])
    await ctx.storage.delete(objects.map((o) => o.key)).catch(() => {})
    await publishMetrics(ctx, failureMetrics(ctx.stack, kind, ctx.now()), ctx.logger)
    await ping(
      ctx.pingUrl,
      'fail',
      `${command} ${id} failed: ${error instanceof Error ? error.message : String(error)}`,
      ctx.logger,
    )
    throw error instanceof CliError ? error : describeStorageError(error, `backup ${id}`)
  } finally {
    await release()
  }
}
