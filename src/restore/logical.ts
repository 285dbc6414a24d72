/**
 * The logical restore routine shared by `backup verify --restore-drill` and `restore db`:
 * checksums first (nothing is touched when a part is corrupt), then download → decrypt →
 * decompress → pg_restore, then per-table row counts compared with the manifest.
 *
 * Custom-format dumps stream straight into `pg_restore` (stdin, no temp file) with jobs = 1; with
 * jobs > 1 the plain dump is first written to a staging file, because pg_restore's parallel mode
 * needs a seekable archive. Directory-format backups (backup db --jobs) are untarred to staging.
 */
import {createHash} from 'node:crypto'
import {createWriteStream} from 'node:fs'
import {mkdtemp, rm} from 'node:fs/promises'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import type {Readable} from 'node:stream'
import {pipeline} from 'node:stream/promises'

import {ChecksFailedError, ConfigError} from '../errors.js'
import type {Logger} from '../output/logger.js'
import type {Progress} from '../output/progress.js'
import {libpqEnv, parseDatabaseUrl, withClient} from '../postgres/connection.js'
import {findPart, partKey, type BackupManifest, type BackupPart} from '../repository/manifest.js'
import type {RepositoryStorage} from '../repository/storage.js'
import type {EncryptionKey} from '../backup/encryption.js'

export interface RestoreDumpOptions {
  storage: RepositoryStorage
  manifest: BackupManifest
  /** the database to restore into (must exist) */
  targetUrl: string
  jobs?: number
  logger: Logger
  progress?: (label: string, totalBytes?: number) => Progress
  /** needed when the parts are encrypted */
  encryption?: EncryptionKey
  /** pg_restore --clean --if-exists (replace objects of a non-empty database) */
  clean?: boolean
  /** skip ownership (a scratch database, another server, a non-superuser restoring) — default true */
  noOwner?: boolean
  /** skip GRANT / REVOKE — default: same as noOwner */
  noPrivileges?: boolean
  /** checksums already verified by the caller */
  skipChecksums?: boolean
}

export interface RestoreDumpResult {
  durationMs: number
  rowCounts: Record<string, number>
  /** tables whose count differs from the manifest, `schema.table: expected N, got M` */
  mismatches: string[]
}

export interface PartCheck {
  part: string
  ok: boolean
  expectedSha256: string
  actualSha256?: string
  expectedBytes: number
  actualBytes?: number
  error?: string
}

/** Reads a part once and compares its size and sha256 with the manifest. */
export async function checkPart(storage: RepositoryStorage, manifest: BackupManifest, part: BackupPart, onProgress?: (n: number) => void): Promise<PartCheck> {
  const base = {part: part.name, expectedSha256: part.sha256, expectedBytes: part.bytes}
  try {
    const stream = await storage.get(partKey(manifest.stack, manifest.id, part.name))
    const hash = createHash('sha256')
    let bytes = 0
    for await (const chunk of stream) {
      hash.update(chunk as Buffer)
      bytes += (chunk as Buffer).length
      onProgress?.((chunk as Buffer).length)
    }
    const actualSha256 = hash.digest('hex')
    return {...base, ok: actualSha256 === part.sha256 && bytes === part.bytes, actualSha256, actualBytes: bytes}
  } catch (error) {
    return {...base, ok: false, error: (error as Error).message}
  }
}

/** The stored bytes of a part turned back into plaintext (decrypt, decompress). */
export async function openPartPlaintext(storage: RepositoryStorage, manifest: BackupManifest, part: BackupPart, encryption?: EncryptionKey, onStoredBytes?: (n: number) => void): Promise<{stream: Readable; done: Promise<void>}> {
  let stream: Readable = await storage.get(partKey(manifest.stack, manifest.id, part.name))
  if (onStoredBytes) {
    // A counting transform, not a 'data' listener: that would switch the stream to flowing mode
    // before anything is piped, and the first chunks (the zstd magic) would be lost.
    const {Transform} = await import('node:stream')
    const source = stream
    const counter = new Transform({
      transform(chunk: Buffer, _enc, callback) {
        onStoredBytes(chunk.length)
        callback(null, chunk)
      },
    })
    source.on('error', (error) => counter.destroy(error))
    stream = source.pipe(counter)
  }
  if (part.encryption) {
    if (!encryption) {
      throw new ConfigError(`part ${part.name} of backup ${manifest.id} is encrypted with key ${part.encryption.keyId}`, {code: 'KEY_REQUIRED', hint: 'Pass --encrypt KEYFILE (or set backup.encryption.keyFile) with the key used for the backup.'})
    }
    const {createDecryptStream} = await import('../backup/encryption.js')
    const decrypt = createDecryptStream(encryption, `part ${part.name}`)
    const encrypted = stream
    encrypted.on('error', (error) => decrypt.destroy(error))
    stream = encrypted.pipe(decrypt)
  }
  const {decompressStream} = await import('../backup/compression.js')
  return decompressStream(stream, part.compression)
}

function checksumError(manifest: BackupManifest, checks: PartCheck[]): ChecksFailedError {
  const bad = checks.filter((c) => !c.ok)
  return new ChecksFailedError(`backup ${manifest.id}: ${bad.map((c) => `part ${c.part} ${c.error ? `unreadable (${c.error})` : 'checksum mismatch'}`).join('; ')} — nothing was restored`, {
    code: 'CHECKSUM_MISMATCH',
    hint: 'The backup is damaged; restore another one (charge-ops backup list).',
    data: {parts: bad},
  })
}

/** Compares restored counts with the manifest's. */
export function compareRowCounts(expected: Record<string, number>, actual: Record<string, number>): string[] {
  const out: string[] = []
  for (const [table, n] of Object.entries(expected)) {
    if (actual[table] !== n) out.push(`${table}: expected ${n}, got ${actual[table] ?? 'no table'}`)
  }
  return out
}

const STAGING_PREFIX = 'charge-ops-restore-'

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM'
  }
}

/**
 * A staging directory `charge-ops-restore-<pid>-XXXXXX` in CHARGE_OPS_STAGING_DIR (else the temp
 * dir); those of killed restores (their pid no longer runs) are removed first.
 */
export async function makeRestoreStaging(logger?: Logger): Promise<string> {
  const base = process.env.CHARGE_OPS_STAGING_DIR ?? tmpdir()
  const {readdir} = await import('node:fs/promises')
  for (const name of await readdir(base).catch(() => [] as string[])) {
    const m = new RegExp(`^${STAGING_PREFIX}(\\d+)-`).exec(name)
    if (m && Number(m[1]) !== process.pid && !pidAlive(Number(m[1]))) {
      logger?.debug(`removing the staging directory of a killed restore: ${join(base, name)}`)
      await rm(join(base, name), {recursive: true, force: true})
    }
  }
  return mkdtemp(join(base, `${STAGING_PREFIX}${process.pid}-`))
}

export async function restoreDatabaseDump(options: RestoreDumpOptions): Promise<RestoreDumpResult> {
  const {storage, manifest, logger} = options
  const started = Date.now()
  const part = findPart(manifest, 'db')
  if (!part || !manifest.db) throw new ConfigError(`backup ${manifest.id} (${manifest.kind}) holds no database dump`, {code: 'BACKUP_WRONG_KIND'})
  const progress = options.progress ?? (() => ({add() {}, bytes: 0, done() {}}))

  if (!options.skipChecksums) {
    const p = progress(`verify ${part.name}`, part.bytes)
    const check = await checkPart(storage, manifest, part, (n) => p.add(n))
    p.done(check.ok ? 'checksum ok' : 'checksum MISMATCH')
    if (!check.ok) throw checksumError(manifest, [check])
  }

  const target = parseDatabaseUrl(options.targetUrl)
  const {pgTool} = await import('../backup/db.js')
  const major = await withClient(target, async (c) => Math.floor(Number((await c.query<{v: string}>('SHOW server_version_num')).rows[0].v) / 10_000))
  const pgRestore = pgTool('pg_restore', major)
  const jobs = Math.max(1, options.jobs ?? 1)
  const args = ['--exit-on-error', '--no-password', `--dbname=${target.database}`]
  if (options.noOwner ?? true) args.push('--no-owner')
  if (options.noPrivileges ?? options.noOwner ?? true) args.push('--no-privileges')
  if (options.clean) args.push('--clean', '--if-exists')
  const env = {...libpqEnv(target), PGAPPNAME: 'charge-ops pg_restore'}
  const {startChild} = await import('../backup/child.js')
  const {run} = await import('../exec.js')
  const p = progress(`restore ${part.name}`, part.bytes)
  const plain = await openPartPlaintext(storage, manifest, part, options.encryption, (n) => p.add(n))

  let staging: string | undefined
  try {
    if (manifest.db.format === 'directory') {
      staging = await makeRestoreStaging(logger)
      const tar = await startChild('tar', ['--extract', '--file=-', '-C', staging], {stdin: 'pipe', stdout: 'ignore', stderr: 'pipe', purpose: 'untar of the directory dump'})
      await Promise.all([pipeline(plain.stream, tar.stdin!), plain.done, tar.done])
      await run(pgRestore, [...args, `--jobs=${jobs}`, '--format=directory', staging], {env, purpose: 'pg_restore'})
    } else if (jobs > 1) {
      staging = await makeRestoreStaging(logger)
      const file = join(staging, 'db.dump')
      await Promise.all([pipeline(plain.stream, createWriteStream(file, {mode: 0o600})), plain.done])
      await run(pgRestore, [...args, `--jobs=${jobs}`, file], {env, purpose: 'pg_restore'})
    } else {
      const child = await startChild(pgRestore, args, {stdin: 'pipe', stdout: 'ignore', stderr: 'pipe', env, purpose: 'pg_restore'})
      child.stdin!.on('error', () => {})
      const fed = pipeline(plain.stream, child.stdin!)
      const results = await Promise.allSettled([child.done, fed, plain.done])
      // pg_restore's own error explains more than the broken pipe it causes upstream.
      if (results[0].status === 'rejected') throw results[0].reason
      for (const r of results) if (r.status === 'rejected') throw r.reason
    }
  } finally {
    if (staging) await rm(staging, {recursive: true, force: true})
  }
  p.done('restored')

  const {countRows} = await import('../backup/db.js')
  const rowCounts = await withClient(target, (c) => countRows(c))
  const mismatches = compareRowCounts(manifest.db.rowCounts, rowCounts)
  if (mismatches.length > 0) logger.warn(`row counts differ from the manifest: ${mismatches.join('; ')}`)
  return {durationMs: Date.now() - started, rowCounts, mismatches}
}

export {checksumError}
