/**
 * The logical restore routine shared by `backup verify --restore-drill` and `restore db`:
 * checksums first (nothing is touched when a part is corrupt), then download → decrypt →
 * decompress → pg_restore, then per-table row counts compared with the manifest.
 *
 * Custom-format dumps stream straight into `pg_restore` (stdin, no temp file) with jobs = 1; with
 * jobs > 1 the plain dump is first written to a staging file, because pg_restore's parallel mode
 * needs a seekable archive. Directory-format backups (backup db --jobs) are untarred to staging.
 */
import {faultPoint} from '../core/faults.js'
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
import {findPart, impossiblyEmpty, partKey, type BackupManifest, type BackupPart} from '../repository/manifest.js'
import type {RepositoryStorage} from '../repository/storage.js'
import type {EncryptionKey} from '../backup/encryption.js'
import {pidAlive} from '../core/proc/pid.js'

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
  /**
   * When size + sha256 of the stored part are checked (unless skipChecksums):
   * - `before` (default): a separate full read before anything is restored — for callers that
   *   restore into a database they cannot simply drop;
   * - `streaming`: hashed as the bytes flow to pg_restore (one read). With a staging file (jobs > 1,
   *   directory format) still checked before pg_restore starts; when streaming into pg_restore, at
   *   the end, before the row counts — so only for a scratch database the caller drops on failure.
   *   A checksum mismatch throws CHECKSUM_MISMATCH (exit 1) either way.
   */
  checksums?: 'before' | 'streaming'
}

export interface RestoreDumpResult {
  durationMs: number
  rowCounts: Record<string, number>
  /** tables whose count differs from the manifest, `schema.table: expected N, got M` */
  mismatches: string[]
  /** extensions left out because the restoring role may not create them (restore/extensions.ts) */
  skippedExtensions: string[]
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
export async function checkPart(
  storage: RepositoryStorage,
  manifest: BackupManifest,
  part: BackupPart,
  onProgress?: (n: number) => void,
): Promise<PartCheck> {
  const base = {part: part.name, expectedSha256: part.sha256, expectedBytes: part.bytes}
  if (impossiblyEmpty(part))
    return {
      ...base,
      ok: false,
      error: 'stored empty: its content was lost when the backup was taken (take a new backup)',
    }
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

/** Size + sha256 of the stored bytes as they stream past (one read for the restore and the check). */
export interface StreamHash {
  update(chunk: Buffer): void
  /** the digest once the whole part went through, else undefined (the stream stopped early) */
  result(): {sha256: string; bytes: number} | undefined
  /** marks the stream as read to its end */
  end(): void
}

export function streamHash(): StreamHash {
  const hash = createHash('sha256')
  let bytes = 0
  let ended = false
  let digest: string | undefined
  return {
    update(chunk) {
      hash.update(chunk)
      bytes += chunk.length
    },
    end() {
      ended = true
    },
    result() {
      if (!ended) return undefined
      digest ??= hash.digest('hex')
      return {sha256: digest, bytes}
    },
  }
}

/**
 * The stored bytes of a part, counted (onStoredBytes) and hashed (hash) as they flow. A transform,
 * not a 'data' listener: that would switch the stream to flowing mode before anything is piped, and
 * the first chunks (the zstd magic) would be lost.
 */
export async function openPartStored(
  storage: RepositoryStorage,
  manifest: BackupManifest,
  part: BackupPart,
  onStoredBytes?: (n: number) => void,
  hash?: StreamHash,
): Promise<Readable> {
  const stream: Readable = await storage.get(partKey(manifest.stack, manifest.id, part.name))
  if (!onStoredBytes && !hash) return stream
  const {Transform} = await import('node:stream')
  const counter = new Transform({
    transform(chunk: Buffer, _enc, callback) {
      hash?.update(chunk)
      onStoredBytes?.(chunk.length)
      callback(null, chunk)
    },
    flush(callback) {
      hash?.end()
      callback()
    },
  })
  stream.on('error', (error) => counter.destroy(error))
  return stream.pipe(counter)
}

/** Decrypts a stored stream when the part is encrypted (the stream itself otherwise). */
function assertKey(manifest: BackupManifest, part: BackupPart, encryption?: EncryptionKey): void {
  if (part.encryption && !encryption) {
    throw new ConfigError(`part ${part.name} of backup ${manifest.id} is encrypted with key ${part.encryption.keyId}`, {
      code: 'KEY_REQUIRED',
      hint: 'Pass --encrypt KEYFILE (or set backup.encryption.keyFile) with the key used for the backup.',
    })
  }
}

async function decryptIfNeeded(
  stream: Readable,
  manifest: BackupManifest,
  part: BackupPart,
  encryption?: EncryptionKey,
): Promise<Readable> {
  if (!part.encryption || !encryption) return stream
  const {createDecryptStream} = await import('../backup/encryption.js')
  const decrypt = createDecryptStream(encryption, `part ${part.name}`)
  stream.on('error', (error) => decrypt.destroy(error))
  return stream.pipe(decrypt)
}

/** The stored bytes of a part turned back into plaintext (decrypt, decompress). */
export async function openPartPlaintext(
  storage: RepositoryStorage,
  manifest: BackupManifest,
  part: BackupPart,
  encryption?: EncryptionKey,
  onStoredBytes?: (n: number) => void,
  hash?: StreamHash,
): Promise<{stream: Readable; done: Promise<void>; source: Readable}> {
  assertKey(manifest, part, encryption)
  const stored = await openPartStored(storage, manifest, part, onStoredBytes, hash)
  const {decompressStream} = await import('../backup/compression.js')
  // `source`: the repository's stream, for a reader that stops early and must close it
  return {
    ...(await decompressStream(await decryptIfNeeded(stored, manifest, part, encryption), part.compression)),
    source: stored,
  }
}

function checksumError(manifest: BackupManifest, checks: PartCheck[]): ChecksFailedError {
  const bad = checks.filter((c) => !c.ok)
  return new ChecksFailedError(
    `backup ${manifest.id}: ${bad.map((c) => `part ${c.part} ${c.error ? `unreadable (${c.error})` : 'checksum mismatch'}`).join('; ')} — nothing was restored`,
    {
      code: 'CHECKSUM_MISMATCH',
      hint: 'The backup is damaged; restore another one (charge-ops backup list).',
      data: {parts: bad},
    },
  )
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

/**
 * Row counts per user table of a restored database: the tables counted over up to `parallel`
 * connections, the largest first (a big table's count(*) also uses parallel workers by itself).
 */
export async function countRowsParallel(
  target: ReturnType<typeof parseDatabaseUrl>,
  parallel = 2,
): Promise<Record<string, number>> {
  const {connect} = await import('../postgres/connection.js')
  const first = await connect(target, {applicationName: 'charge-ops restore db'})
  const clients = [first]
  try {
    const {rows: tables} = await first.query<{schema: string; name: string}>(
      `SELECT n.nspname AS schema, c.relname AS name FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE c.relkind = 'r' AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg_toast%' AND n.nspname NOT LIKE 'pg_temp%'
        ORDER BY c.relpages DESC, 1, 2`,
    )
    const quote = (x: string) => `"${x.replace(/"/g, '""')}"`
    const queue = [...tables]
    const counts: Record<string, number> = {}
    // small tables are counted in batches of one query (one round trip each batch)
    const worker = async (c: import('pg').Client) => {
      while (queue.length > 0) {
        const batch = queue.splice(0, queue.length > 8 ? 8 : 1)
        const sql = `SELECT ${batch.map((t, i) => `(SELECT count(*) FROM ${quote(t.schema)}.${quote(t.name)})::bigint AS c${i}`).join(', ')}`
        const {rows} = await c.query<Record<string, string>>(sql)
        batch.forEach((t, i) => (counts[`${t.schema}.${t.name}`] = Number(rows[0][`c${i}`])))
      }
    }
    const n = Math.max(1, Math.min(parallel, tables.length))
    for (let k = 1; k < n; k++) clients.push(await connect(target, {applicationName: 'charge-ops restore db'}))
    await Promise.all(clients.map(worker))
    return Object.fromEntries(Object.entries(counts).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)))
  } finally {
    await Promise.all(clients.map((c) => c.end().catch(() => {})))
  }
}

/** Waits for every promise; throws the first rejection in `order` (the most telling error first). */
async function settleAll(promises: Promise<unknown>[]): Promise<void> {
  const results = await Promise.allSettled(promises)
  for (const r of results) if (r.status === 'rejected') throw r.reason
}

/**
 * `--jobs` when not given: 2 (staging file + `pg_restore -j2`, measured 1.03× the baseline at
 * 1.1 GB against 1.20× for the stream) when there are ≥ 2 cores and the staging directory has room
 * for the uncompressed dump (+20 % and 256 MB to spare; 8× the stored size when the backup did not
 * record it); else 1 (streaming, no staging space).
 */
export async function defaultRestoreJobs(part: BackupPart, logger?: Logger): Promise<number> {
  const {cpus} = await import('node:os')
  if (cpus().length < 2) return 1
  // the uncompressed size when the backup recorded it; else a generous guess (zstd -1 compresses
  // random doubles 2.4×, text rarely more than 8×): too little space must not be mistaken for enough
  const content = part.contentBytes ?? (part.compression === 'none' ? part.bytes : part.bytes * 8)
  const base = process.env.CHARGE_OPS_STAGING_DIR ?? tmpdir()
  const {diskUsage} = await import('../core/fs/system.js')
  const free = await diskUsage(base).then(
    (d) => d.freeBytes,
    () => 0,
  )
  const need = content * 1.2 + 256 * 1024 * 1024
  if (free < need) {
    logger?.info(
      `streaming with one pg_restore job: ${base} has ${(free / 1e9).toFixed(1)} GB free, a staging file for --jobs 2 needs ${(need / 1e9).toFixed(1)} GB (set CHARGE_OPS_STAGING_DIR to a bigger disk)`,
    )
    return 1
  }
  return 2
}

/** How one restore feeds pg_restore: its tool, arguments and the stored part's hash on the way. */
interface DumpFeed {
  options: RestoreDumpOptions
  part: BackupPart
  pgRestore: string
  env: Record<string, string>
  jobs: number
  hash?: StreamHash
  onStored: (n: number) => void
  /** after the stream (failure: what went wrong, if anything): a damaged part is the error to report */
  verifyStreamed: (failure?: unknown) => Promise<void>
  /** pg_restore's arguments plus `-L list` when extensions must be left out (read from `readToc`) */
  withFilter: (readToc: () => Promise<string>) => Promise<string[]>
  /** `pg_restore -l` of an archive on disk */
  tocOf: (archive: string) => Promise<string>
  /** set by the feeds that stage the dump on disk; removed at the end */
  staging?: string
}

export async function restoreDatabaseDump(options: RestoreDumpOptions): Promise<RestoreDumpResult> {
  const {storage, manifest, logger} = options
  const started = Date.now()
  const part = findPart(manifest, 'db')
  if (!part || !manifest.db)
    throw new ConfigError(`backup ${manifest.id} (${manifest.kind}) holds no database dump`, {
      code: 'BACKUP_WRONG_KIND',
    })
  const progress = options.progress ?? (() => ({add() {}, bytes: 0, done() {}}))
  const mode = options.skipChecksums ? 'skip' : (options.checksums ?? 'before')

  if (mode === 'before') {
    const p = progress(`verify ${part.name}`, part.bytes)
    const check = await checkPart(storage, manifest, part, (n) => p.add(n))
    p.done(check.ok ? 'checksum ok' : 'checksum MISMATCH')
    if (!check.ok) throw checksumError(manifest, [check])
  }
  assertKey(manifest, part, options.encryption)

  // streaming mode: the stored bytes hashed on their way through
  const hash = mode === 'streaming' ? streamHash() : undefined
  const target = parseDatabaseUrl(options.targetUrl)
  const {pgTool} = await import('../backup/db.js')
  const {readTargetRole, extensionFilter} = await import('./extensions.js')
  const {major, role} = await withClient(target, async (c) => ({
    major: Math.floor(Number((await c.query<{v: string}>('SHOW server_version_num')).rows[0].v) / 10_000),
    role: await readTargetRole(c),
  }))
  const pgRestore = pgTool('pg_restore', major)
  const jobs = Math.max(1, options.jobs ?? 1)
  const args = ['--exit-on-error', '--no-password', `--dbname=${target.database}`]
  if (options.noOwner ?? true) args.push('--no-owner')
  if (options.noPrivileges ?? options.noOwner ?? true) args.push('--no-privileges')
  if (options.clean) args.push('--clean', '--if-exists')
  const {run} = await import('../core/proc/exec.js')
  const p = progress(`restore ${part.name}`, part.bytes)
  let listDir: string | undefined
  let skippedExtensions: string[] = []
  const feed: DumpFeed = {
    options,
    part,
    pgRestore,
    env: {...libpqEnv(target), PGAPPNAME: 'charge-ops pg_restore'},
    jobs,
    hash,
    onStored: (n: number) => p.add(n),
    verifyStreamed: (failure) => verifyStreamedPart(options, part, hash, failure),
    withFilter: async (readToc) => {
      const filter = await extensionFilter(role, async () => (listDir = await makeRestoreStaging(logger)), readToc)
      skippedExtensions = filter.skipped
      if (filter.skipped.length > 0)
        logger.warn(
          `left out extension(s) ${filter.skipped.join(', ')}: the restoring role may not create them (restore as a superuser, e.g. with CHARGE_OPS_ADMIN_URL, to include them)`,
        )
      return filter.listFile ? [...args, '-L', filter.listFile] : args
    },
    tocOf: async (archive) => (await run(pgRestore, ['-l', archive], {purpose: 'pg_restore -l'})).stdout,
  }

  try {
    if (manifest.db.format === 'directory') await restoreFromDirectory(feed)
    else if (jobs > 1) await restoreFromStagingFile(feed)
    else if (part.compression === 'zstd') await restoreThroughZstd(feed)
    else await restoreStreamed(feed)
  } finally {
    if (feed.staging) await rm(feed.staging, {recursive: true, force: true})
    if (listDir) await rm(listDir, {recursive: true, force: true})
  }
  p.done('restored')
  logger.debug(
    `pg_restore (${jobs} job(s)${feed.staging ? ', from a staging file' : ', streamed'}) took ${Date.now() - started} ms`,
  )

  const countStarted = Date.now()
  const rowCounts = await countRowsParallel(target)
  logger.debug(`row counts of ${Object.keys(rowCounts).length} tables in ${Date.now() - countStarted} ms`)
  const mismatches = compareRowCounts(manifest.db.rowCounts, rowCounts)
  if (mismatches.length > 0) logger.warn(`row counts differ from the manifest: ${mismatches.join('; ')}`)
  return {durationMs: Date.now() - started, rowCounts, mismatches, skippedExtensions}
}

/** After the stream (failure: what went wrong, if anything): a damaged part is the error to report. */
async function verifyStreamedPart(
  options: RestoreDumpOptions,
  part: BackupPart,
  hash: StreamHash | undefined,
  failure?: unknown,
): Promise<void> {
  const {storage, manifest, logger} = options
  if (hash) {
    const got = hash.result()
    if (!got) {
      // the stream stopped early (a child failed on the bytes): read the part once more to tell
      // a damaged backup from any other failure
      const check = await checkPart(storage, manifest, part)
      if (!check.ok) throw checksumError(manifest, [check])
    } else if (got.sha256 !== part.sha256 || got.bytes !== part.bytes) {
      throw checksumError(manifest, [
        {
          part: part.name,
          ok: false,
          expectedSha256: part.sha256,
          actualSha256: got.sha256,
          expectedBytes: part.bytes,
          actualBytes: got.bytes,
        },
      ])
    } else {
      logger.debug(`part ${part.name}: size and sha256 match the manifest (hashed while restoring)`)
    }
  }
  if (failure !== undefined) throw failure
}

/** A directory-format dump: untarred into a staging folder, then pg_restore --jobs on it. */
async function restoreFromDirectory(feed: DumpFeed): Promise<void> {
  const {options, part} = feed
  const {startFedChild} = await import('../backup/child.js')
  const {run} = await import('../core/proc/exec.js')
  const staging = (feed.staging = await makeRestoreStaging(options.logger))
  const plain = await openPartPlaintext(
    options.storage,
    options.manifest,
    part,
    options.encryption,
    feed.onStored,
    feed.hash,
  )
  // --ignore-zeros: GNU tar otherwise exits at the end-of-archive blocks without reading to
  // EOF, and the last bytes written into its closed pipe fail the stream ("Premature close").
  const tar = await startFedChild('tar', ['--extract', '--file=-', '--ignore-zeros', '-C', staging], plain.stream, {
    purpose: 'untar of the directory dump',
  })
  await settleAll([tar.fed, plain.done, tar.done]).then(
    () => feed.verifyStreamed(),
    (error) => feed.verifyStreamed(error),
  )
  const restoreArgs = await feed.withFilter(() => feed.tocOf(staging))
  await run(feed.pgRestore, [...restoreArgs, `--jobs=${feed.jobs}`, '--format=directory', staging], {
    env: feed.env,
    purpose: 'pg_restore',
  })
}

/**
 * pg_restore -j needs a seekable file. zstd writes it itself (-o: no copy of the plaintext
 * through this process); node only reads (and hashes) the compressed part.
 */
async function restoreFromStagingFile(feed: DumpFeed): Promise<void> {
  const {options, part} = feed
  const {manifest} = options
  const {startChild, startFedChild} = await import('../backup/child.js')
  feed.staging = await makeRestoreStaging(options.logger)
  const file = join(feed.staging, 'db.dump')
  const stored = await decryptIfNeeded(
    await openPartStored(options.storage, manifest, part, feed.onStored, feed.hash),
    manifest,
    part,
    options.encryption,
  )
  let wrote: Promise<unknown>[]
  if (part.compression === 'zstd') {
    const zstd = await startFedChild('zstd', ['-d', '-q', '-f', '-o', file], stored, {
      purpose: 'decompressing to the staging file',
    })
    wrote = [zstd.done, zstd.fed]
  } else {
    const {decompressStream} = await import('../backup/compression.js')
    const plain = await decompressStream(stored, part.compression)
    wrote = [pipeline(plain.stream, createWriteStream(file, {mode: 0o600})), plain.done]
  }
  await settleAll(wrote).then(
    () => feed.verifyStreamed(),
    (error) => feed.verifyStreamed(error),
  )
  const restoreArgs = await feed.withFilter(() => feed.tocOf(file))
  const restoring = await startChild(feed.pgRestore, [...restoreArgs, `--jobs=${feed.jobs}`, file], {
    stdin: 'ignore',
    stdout: 'ignore',
    stderr: 'pipe',
    env: feed.env,
    purpose: 'pg_restore',
  })
  try {
    await faultPoint('restore.db.pg-restore', () => ({children: [restoring.pid]}))
    await restoring.done
  } finally {
    restoring.kill('SIGKILL')
  }
}

/**
 * zstd's stdout is pg_restore's stdin (a kernel pipe between the two children): the plaintext
 * never passes through this process, which only reads and hashes the stored bytes.
 */
async function restoreThroughZstd(feed: DumpFeed): Promise<void> {
  const {options, part} = feed
  const {storage, manifest} = options
  const {startChild} = await import('../backup/child.js')
  const restoreArgs = await feed.withFilter(() =>
    tocOfStored(storage, manifest, part, options.encryption, feed.pgRestore),
  )
  const stored = await decryptIfNeeded(
    await openPartStored(storage, manifest, part, feed.onStored, feed.hash),
    manifest,
    part,
    options.encryption,
  )
  const zstd = await startChild('zstd', ['-d', '-q', '-c'], {
    stdin: 'pipe',
    stdout: 'pipe',
    stderr: 'pipe',
    purpose: 'decompressing',
  })
  const children = [zstd]
  try {
    const child = await startChild(feed.pgRestore, restoreArgs, {
      stdin: zstd.stdout!,
      stdout: 'ignore',
      stderr: 'pipe',
      env: feed.env,
      purpose: 'pg_restore',
    })
    children.push(child)
    await faultPoint('restore.db.pg-restore', () => ({children: [zstd.pid, child.pid]}))
    // Our copy of the pipe is closed before any byte flows (nothing was fed to zstd yet), so
    // this process never reads from it; pg_restore holds its own.
    zstd.stdout!.destroy()
    zstd.stdin!.on('error', () => {})
    // pg_restore failing first closes the pipe: zstd then dies of EPIPE; end it either way.
    child.done.catch(() => zstd.kill('SIGKILL'))
    const fed = pipeline(stored, zstd.stdin!)
    await settleAll([child.done, zstd.done, fed]).then(
      () => feed.verifyStreamed(),
      (error) => feed.verifyStreamed(error),
    )
  } finally {
    for (const c of children) c.kill('SIGKILL')
  }
}

/** A gzip or uncompressed custom-format part streamed into pg_restore's stdin. */
async function restoreStreamed(feed: DumpFeed): Promise<void> {
  const {options, part} = feed
  const {storage, manifest} = options
  const {startFedChild} = await import('../backup/child.js')
  const restoreArgs = await feed.withFilter(() =>
    tocOfStored(storage, manifest, part, options.encryption, feed.pgRestore),
  )
  const plain = await openPartPlaintext(storage, manifest, part, options.encryption, feed.onStored, feed.hash)
  const child = await startFedChild(feed.pgRestore, restoreArgs, plain.stream, {
    env: feed.env,
    purpose: 'pg_restore',
  })
  // pg_restore's own error explains more than the broken pipe it causes upstream; a damaged
  // part explains both (verifyStreamed).
  await settleAll([child.done, child.fed, plain.done]).then(
    () => feed.verifyStreamed(),
    (error) => feed.verifyStreamed(error),
  )
}

/**
 * `pg_restore -l` of a custom-format part read from the repository: the table of contents is at
 * the start of the archive, so pg_restore exits after reading it and the rest is never read.
 */
async function tocOfStored(
  storage: RepositoryStorage,
  manifest: BackupManifest,
  part: BackupPart,
  encryption: EncryptionKey | undefined,
  pgRestore: string,
): Promise<string> {
  const plain = await openPartPlaintext(storage, manifest, part, encryption)
  plain.done.catch(() => {})
  const {startChild} = await import('../backup/child.js')
  const lister = await startChild(pgRestore, ['-l'], {
    stdin: 'pipe',
    stdout: 'pipe',
    stderr: 'pipe',
    purpose: 'pg_restore -l',
  })
  lister.stdin!.on('error', () => {})
  plain.stream.on('error', () => {})
  plain.stream.pipe(lister.stdin!)
  let toc = ''
  lister.stdout!.setEncoding('utf8')
  lister.stdout!.on('data', (text: string) => {
    toc += text
  })
  try {
    await lister.done
  } finally {
    // stop reading the rest of the part: zstd dies of SIGPIPE, the repository stream is closed
    plain.stream.unpipe(lister.stdin!)
    plain.stream.destroy()
    plain.source.destroy()
  }
  return toc
}

export {checksumError}
