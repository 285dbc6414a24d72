/**
 * `backup base --type full|diff|incr`: the file engine. PostgreSQL 15's pg_basebackup has no
 * incremental mode, so this copies the data directory itself, the way pgBackRest does:
 *
 *  1. `pg_backup_start(label, fast)` in one session that stays open until `pg_backup_stop` (a
 *     non-exclusive backup: if this process dies, the session ends and the server aborts it);
 *  2. every file is read in blocks (src/backup/base-blocks.ts) by `--jobs` workers; against the
 *     prior backup of the chain a file is skipped unread when size and mtime match and the mtime is
 *     clearly older than the prior copy's start, otherwise each block is hashed and stored only when
 *     its content differs from the prior's — unchanged blocks are referenced from the backup that
 *     holds them; `global/pg_control` is copied last;
 *  3. `pg_backup_stop(false)` returns the backup_label and tablespace map, stored as returned;
 *  4. every WAL segment from start to stop must be in the archive (bounded wait), the stored objects
 *     are flushed, and only then is the manifest written (atomically, last): before that the backup
 *     is incomplete and never listed as restorable.
 *
 * diff = against the newest full; incr = against the newest backup of the chain. A prior that is
 * missing, incomplete, from another cluster or failed verification is refused — never silently
 * replaced by a full.
 */
import {open, readdir, stat} from 'node:fs/promises'
import {join} from 'node:path'
import type {Client} from 'pg'

import {ChecksFailedError, ExternalCommandError, UsageError} from '../errors.js'
import {faultPoint} from '../core/faults.js'
import type {Logger} from '../output/logger.js'
import {
  backupPrefix,
  findPart,
  listBackups,
  newBackupId,
  partKey,
  writeManifest,
  type BackupManifest,
  type BackupPart,
} from '../repository/manifest.js'
import type {RepositoryStorage} from '../repository/storage.js'
import {ensureClusterIdentity, findWalObject} from '../wal/archive.js'
import {parseWalFileName} from '../wal/names.js'
import {
  BACKUP_LABEL_PART,
  BLOCK_SIZE,
  blockKeySuffix,
  encodeBlock,
  FILE_LIST_PART,
  fileListSchema,
  isExcluded,
  sha256,
  TABLESPACE_MAP_PART,
  unchangedByMetadata,
  type FileEntry,
  type FileList,
  type StoredBlock,
} from './base-blocks.js'
import type {EncryptionKey} from './encryption.js'
import {baseManifest, baseWalSegments, parseBackupHistory} from './physical.js'

export type BaseType = 'full' | 'diff' | 'incr'

export interface FileBackupOptions {
  storage: RepositoryStorage
  stack: string
  databaseUrl: string
  type: BaseType
  logger: Logger
  /** parallel block workers (default 2) */
  jobs?: number
  /** the data directory as this process sees it (default: the server's data_directory) */
  dataDir?: string
  encryption?: EncryptionKey
  compressionLevel?: number
  walTimeoutSec?: number
  /** mtime safety margin (ms, default 5000) */
  marginMs?: number
  progress?: (label: string, total?: number) => {add(n: number): void; done(note?: string): void}
  now?: () => Date
}

export const MTIME_MARGIN_MS = 5000

export const isFileBackup = (m: BackupManifest): boolean =>
  m.kind === 'base' && (m.base as {method?: string} | undefined)?.method === 'files'

interface BaseFilesSection {
  method: 'files'
  type: BaseType
  prior?: string
  references: string[]
}

const filesSection = (m: BackupManifest) => m.base as unknown as BaseFilesSection

/** Reads a backup's file list and checks it against the manifest's sha256. */
export async function readFileList(storage: RepositoryStorage, manifest: BackupManifest): Promise<FileList> {
  const part = findPart(manifest, FILE_LIST_PART)
  if (!part) throw new ChecksFailedError(`backup ${manifest.id} has no ${FILE_LIST_PART}`, {code: 'MANIFEST_INVALID'})
  const bytes = await storage.getBytes(partKey(manifest.stack, manifest.id, part.name))
  if (sha256(bytes) !== part.sha256)
    throw new ChecksFailedError(`backup ${manifest.id}: ${part.name} does not match its manifest checksum`, {
      code: 'VERIFY_FAILED',
    })
  return fileListSchema.parse(JSON.parse(bytes.toString()))
}

/**
 * The prior backup of a diff / incr, with every backup it references checked present and not
 * failed. Throws instead of returning nothing: the caller must never fall back to a full.
 */
export async function choosePrior(
  storage: RepositoryStorage,
  stack: string,
  type: 'diff' | 'incr',
  systemIdentifier: string,
): Promise<BackupManifest> {
  const {complete, invalid} = await listBackups(storage, stack, {kind: 'base'})
  const chain = complete.filter(isFileBackup)
  const prior = type === 'incr' ? chain[0] : chain.find((m) => filesSection(m).type === 'full')
  // a newer manifest that cannot be read is not "no backup": building past it would hide it
  const unreadable = invalid.find((i) => !prior || i.id > prior.id)
  if (unreadable) {
    throw new ChecksFailedError(
      `base backup ${unreadable.id} has an unreadable manifest (${unreadable.error}); refusing to build a ${type} past it`,
      {
        code: 'BASE_PRIOR_MISSING',
        hint: 'Check the repository (ownership: run every backup command as the same OS user), or take a `--type full`.',
      },
    )
  }
  if (!prior) {
    throw new UsageError(
      `no ${type === 'incr' ? 'file-engine base backup' : 'full file-engine base backup'} to build a ${type} on in ${storage.location}`,
      {
        code: 'BASE_NO_PRIOR',
        hint: 'Take one with `charge-ops backup base --type full` first; a diff / incr never turns into a full on its own.',
      },
    )
  }
  const byId = new Map(complete.map((m) => [m.id, m]))
  for (const id of [prior.id, ...filesSection(prior).references]) {
    const m = byId.get(id)
    if (!m) {
      throw new ChecksFailedError(
        `the ${type} would build on ${prior.id}, which references backup ${id}: that backup is missing or incomplete`,
        {
          code: 'BASE_PRIOR_MISSING',
          hint: 'The chain is broken: take a new `--type full`.',
        },
      )
    }
    if (m.verification && !m.verification.ok) {
      throw new ChecksFailedError(
        `the ${type} would build on ${prior.id}, but backup ${id} of its chain failed verification (${m.verification.verifiedAt})`,
        {
          code: 'BASE_PRIOR_FAILED',
          hint: 'Do not build on a damaged chain: take a new `--type full`.',
        },
      )
    }
  }
  if (prior.base?.systemIdentifier && prior.base.systemIdentifier !== systemIdentifier) {
    throw new UsageError(
      `backup ${prior.id} belongs to cluster ${prior.base.systemIdentifier}, this server is ${systemIdentifier}`,
      {code: 'WAL_CLUSTER_MISMATCH', hint: 'Take a `--type full`.'},
    )
  }
  return prior
}

interface WalkResult {
  directories: {path: string; mode: number}[]
  files: {path: string; size: number; mtimeNs: bigint; mode: number}[]
}

async function walkDataDir(root: string): Promise<WalkResult> {
  const out: WalkResult = {directories: [], files: []}
  const walk = async (rel: string): Promise<void> => {
    const entries = await readdir(rel ? join(root, rel) : root, {withFileTypes: true}).catch(
      (error: NodeJS.ErrnoException) => {
        if (error.code === 'ENOENT' && rel) return [] // dropped while we walked
        throw error
      },
    )
    for (const entry of entries) {
      const path = rel ? `${rel}/${entry.name}` : entry.name
      if (entry.isDirectory()) {
        if (isExcluded(path, true)) continue
        const s = await stat(join(root, path)).catch(() => undefined)
        if (!s) continue
        out.directories.push({path, mode: s.mode & 0o7777})
        await walk(path)
      } else if (entry.isFile()) {
        if (isExcluded(path, false)) continue
        const s = await stat(join(root, path), {bigint: true}).catch(() => undefined)
        if (s) out.files.push({path, size: Number(s.size), mtimeNs: s.mtimeNs, mode: Number(s.mode) & 0o7777})
      }
      // symlinks: pg_tblspc entries (refused up front) or operator-made links: not copied
    }
  }
  await walk('')
  return out
}

/** A tiny pool: `jobs` workers drain the task list; the first failure stops the rest. */
async function runPool<T>(tasks: T[], jobs: number, work: (task: T) => Promise<void>): Promise<void> {
  let next = 0
  let failed: unknown
  const worker = async () => {
    while (failed === undefined && next < tasks.length) {
      const task = tasks[next++]
      try {
        await work(task)
      } catch (error) {
        failed ??= error
      }
    }
  }
  await Promise.all(Array.from({length: Math.max(1, jobs)}, worker))
  if (failed !== undefined) throw failed
}

export async function backupBaseFiles(options: FileBackupOptions): Promise<BackupManifest> {
  const {storage, stack, logger, type} = options
  const now = options.now ?? (() => new Date())
  const jobs = options.jobs ?? 2
  const {connect, parseDatabaseUrl} = await import('../postgres/connection.js')
  const {detectZstd} = await import('./compression.js')
  const zstd = Boolean(await detectZstd())
  const level = options.compressionLevel ?? 1
  const client = await connect(parseDatabaseUrl(options.databaseUrl), {applicationName: 'charge-ops backup base'})
  let backupStarted = false
  try {
    const {server, major, dataDir} = await checkServer(client, options)
    await ensureClusterIdentity(
      storage,
      stack,
      {systemIdentifier: server.sysid, postgresMajor: major},
      'this server (backup base)',
    )

    const {acquireLock} = await import('../repository/lock.js')
    const release = await acquireLock(storage, stack, {command: `backup base --type ${type}`})
    const startedAt = now()
    const id = newBackupId('base', startedAt)
    try {
      const prior = type === 'full' ? undefined : await choosePrior(storage, stack, type, server.sysid)
      const priorList = prior ? await readFileList(storage, prior) : undefined
      logger.info(
        `backup ${id} (${type}${prior ? ` on ${prior.id}` : ''}): ${dataDir} → ${storage.location}, ${jobs} job(s)`,
      )

      const label = `charge-ops ${id}`
      await client.query('SELECT pg_backup_start($1, true)', [label])
      backupStarted = true
      await faultPoint('backup.base-files.after-start')
      const copyStartedAtMs = Date.now()
      const walked = await walkDataDir(dataDir)
      const plan = planCopy(walked, dataDir, priorList, options.marginMs ?? MTIME_MARGIN_MS)
      const progress = options.progress?.(`backup ${id}`, plan.readTotal)
      const {storedBytes, storedBlocks, referencedBytes} = await copyBlocks(options, {
        id,
        dataDir,
        plan,
        zstd,
        level,
        jobs,
        progress,
      })

      const stop = await client.query<{lsn: string; labelfile: string; spcmapfile: string}>(
        'SELECT lsn::text, labelfile, spcmapfile FROM pg_backup_stop(false)',
      )
      backupStarted = false
      const {labelfile, spcmapfile} = stop.rows[0]
      const positions = parseBackupHistory(`${labelfile}\nSTOP WAL LOCATION: ${stop.rows[0].lsn}`)
      if (!positions)
        throw new ExternalCommandError(
          'pg_backup_stop',
          `unexpected backup_label from the server: ${labelfile.slice(0, 200)}`,
        )
      progress?.done(`${storedBlocks} block(s), ${storedBytes} bytes stored; ${referencedBytes} bytes referenced`)

      const fileList: FileList = {
        formatVersion: 1,
        blockSize: BLOCK_SIZE,
        copyStartedAtMs,
        directories: walked.directories,
        files: [...plan.entries.values()].sort((a, b) => (a.path < b.path ? -1 : 1)),
      }
      const parts = await storeListAndLabel(storage, stack, id, fileList, {labelfile, spcmapfile})

      // restorable only with its WAL: every segment start → stop in the archive (bounded wait)
      const segments = baseWalSegments(positions.timeline, positions.startLsn, positions.stopLsn)
      await awaitSegments(storage, stack, segments, options.walTimeoutSec ?? 120, id)
      await storage.flush?.(backupPrefix(stack, id))
      await faultPoint('backup.base-files.before-manifest')

      const references = [...new Set(fileList.files.flatMap((f) => f.blocks.map((b) => b.ref)))]
        .filter((r) => r !== id)
        .sort()
      const finishedAt = now()
      const {version} = await import('./versions.js')
      const manifest = await writeManifest(
        storage,
        stack,
        baseManifest(
          {id, stack, startedAt, finishedAt, server, postgresMajor: major, positions, segments},
          {
            tools: {'charge-ops': version()},
            compression: {algorithm: zstd ? 'zstd' : 'gzip', level},
            encryption: options.encryption ? {algorithm: 'aes-256-gcm-chunked', keyId: options.encryption.keyId} : null,
            parts,
            base: {
              method: 'files',
              type,
              prior: prior?.id,
              references,
              fileCount: fileList.files.length,
              storedBytes,
              storedBlocks,
              referencedBytes,
              jobs,
            },
          },
        ),
      )
      return manifest
    } catch (error) {
      // a failed run removes what it stored (a killed one leaves it for `backup prune`)
      const objects = await storage.list(backupPrefix(stack, id)).catch(() => [])
      await storage.delete(objects.map((o) => o.key)).catch(() => {})
      throw error
    } finally {
      await release()
    }
  } finally {
    if (backupStarted) await client.query('SELECT pg_backup_stop(false)').catch(() => {})
    await client.end().catch(() => {})
  }
}

interface ServerFacts {
  sysid: string
  version: string
  mode: string
  command: string
  datadir: string
  recovery: boolean
  spaces: string
}

/** The server's identity and settings; refuses what the file engine cannot back up (no archiving, a standby, tablespaces, an unreadable data directory). */
async function checkServer(
  client: Client,
  options: FileBackupOptions,
): Promise<{server: ServerFacts; major: number; dataDir: string}> {
  const {rows} = await client.query<ServerFacts>(
    `SELECT (SELECT system_identifier::text FROM pg_control_system()) AS sysid, current_setting('server_version') AS version,
            current_setting('archive_mode') AS mode, current_setting('archive_command') AS command,
            current_setting('data_directory') AS datadir, pg_is_in_recovery() AS recovery,
            (SELECT count(*) FROM pg_tablespace WHERE spcname NOT IN ('pg_default', 'pg_global'))::text AS spaces`,
  )
  const server = rows[0]
  if (server.mode === 'off' || !server.command || server.command === '(disabled)') {
    throw new UsageError(
      'archive_mode / archive_command are not set: a base backup without archived WAL cannot be restored',
      {code: 'WAL_ARCHIVE_OFF', hint: 'Configure archiving first (`charge-ops wal archive-command`).'},
    )
  }
  if (server.recovery)
    throw new UsageError('the file engine backs up a primary only (this server is in recovery)', {
      code: 'BASE_STANDBY',
      hint: 'Run it against the primary, or use `backup base` without --type (pg_basebackup).',
    })
  if (Number(server.spaces) > 0) {
    throw new UsageError(
      `the server has ${server.spaces} user tablespace(s): the file engine does not back up tablespaces yet`,
      {code: 'BASE_TABLESPACES', hint: 'Use `backup base` without --type (pg_basebackup) for this cluster.'},
    )
  }
  const major = Number(server.version.split('.')[0])
  const dataDir = options.dataDir ?? server.datadir
  await stat(join(dataDir, 'PG_VERSION')).catch((error: NodeJS.ErrnoException) => {
    throw new UsageError(
      `cannot read the data directory ${dataDir} (${error.code}): the file engine reads it directly`,
      {
        code: 'BASE_DATADIR',
        hint: 'Run on the database host as the postgres user (sudo -u postgres charge-ops backup base --type …), or pass --data-dir with the path this host sees.',
      },
    )
  })
  return {server, major, dataDir}
}

type WalkedFile = WalkResult['files'][number]
interface BlockTask {
  file: WalkedFile
  index: number
  prior?: FileEntry
}

/** Which blocks to read: every file's entry, and a task per block of the files that may have changed since the prior. */
interface CopyPlan {
  entries: Map<string, FileEntry>
  tasks: BlockTask[]
  control: WalkedFile
  /** bytes of the files skipped unread (referenced from the prior) */
  referencedBytes: number
  readTotal: number
}

function planCopy(walked: WalkResult, dataDir: string, priorList: FileList | undefined, marginMs: number): CopyPlan {
  const priorFiles = new Map(priorList?.files.map((f) => [f.path, f]))
  const entries = new Map<string, FileEntry>()
  const tasks: BlockTask[] = []
  let referencedBytes = 0
  let readTotal = 0
  const control = walked.files.find((f) => f.path === 'global/pg_control')
  if (!control)
    throw new UsageError(`${dataDir} has no global/pg_control: not a data directory`, {code: 'BASE_DATADIR'})
  for (const file of walked.files) {
    const p = priorFiles.get(file.path)
    const entry: FileEntry = {
      path: file.path,
      size: file.size,
      mtimeNs: file.mtimeNs.toString(),
      mode: file.mode,
      blocks: [],
    }
    entries.set(file.path, entry)
    if (
      file !== control &&
      priorList &&
      unchangedByMetadata(p, file.size, file.mtimeNs, priorList.copyStartedAtMs, marginMs)
    ) {
      entry.blocks = p!.blocks
      referencedBytes += file.size
      continue
    }
    const count = Math.ceil(file.size / BLOCK_SIZE)
    for (let index = 0; index < count; index++) tasks.push({file, index, prior: p})
    readTotal += file.size
  }
  return {entries, tasks, control, referencedBytes, readTotal}
}

/**
 * Reads, hashes and stores the planned blocks with `jobs` workers (pg_control last, as
 * pg_basebackup sends it); a block equal to the prior's is referenced, not stored.
 */
async function copyBlocks(
  options: FileBackupOptions,
  run: {
    id: string
    dataDir: string
    plan: CopyPlan
    zstd: boolean
    level: number
    jobs: number
    progress?: {add(n: number): void}
  },
): Promise<{storedBytes: number; storedBlocks: number; referencedBytes: number}> {
  const {storage, stack} = options
  const {id, dataDir, plan, zstd, level, progress} = run
  const {entries, tasks, control} = plan
  let {referencedBytes} = plan
  let storedBytes = 0
  let storedBlocks = 0
  const vanished = new Set<string>()
  const copyBlock = async (task: BlockTask): Promise<void> => {
    const {file, index} = task
    let data: Buffer
    try {
      const handle = await open(join(dataDir, file.path), 'r')
      try {
        const want = Math.min(BLOCK_SIZE, file.size - index * BLOCK_SIZE)
        const buffer = Buffer.allocUnsafe(want)
        const {bytesRead} = await handle.read(buffer, 0, want, index * BLOCK_SIZE)
        data = buffer.subarray(0, bytesRead)
      } finally {
        await handle.close()
      }
    } catch (error) {
      // a relation dropped during the backup: WAL replay drops it again, nothing to copy
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return void vanished.add(file.path)
      throw error
    }
    progress?.add(data.length)
    const digest = sha256(data)
    const before = task.prior?.blocks[index]
    let block: StoredBlock
    if (before && before.sha256 === digest && before.size === data.length) {
      block = before
      referencedBytes += data.length
    } else {
      const encoded = await encodeBlock(data, {level, zstd, encryption: options.encryption})
      const put = await storage.put(partKey(stack, id, blockKeySuffix(file.path, index, encoded.c)), encoded.body, {
        ifNotExists: true,
        deferSync: true,
      })
      block = {
        sha256: digest,
        size: data.length,
        ref: id,
        stored: put.bytes,
        storedSha256: put.sha256,
        c: encoded.c,
        ...(encoded.enc ? {enc: true} : {}),
      }
      storedBytes += put.bytes
      storedBlocks++
      await faultPoint('backup.base-files.block-stored')
    }
    entries.get(file.path)!.blocks[index] = block
  }
  const isControl = (t: BlockTask) => t.file === control
  await runPool(
    tasks.filter((t) => !isControl(t)),
    run.jobs,
    copyBlock,
  )
  // pg_control last, as pg_basebackup sends it
  for (const t of tasks.filter(isControl)) await copyBlock(t)
  for (const path of vanished) entries.delete(path)
  for (const entry of entries.values()) entry.size = entry.blocks.reduce((sum, b) => sum + b.size, 0)
  return {storedBytes, storedBlocks, referencedBytes}
}

/** The file list, backup_label and tablespace map stored as parts (the last two as pg_backup_stop returned them). */
async function storeListAndLabel(
  storage: RepositoryStorage,
  stack: string,
  id: string,
  fileList: FileList,
  stop: {labelfile: string; spcmapfile: string},
): Promise<BackupPart[]> {
  const listBytes = Buffer.from(JSON.stringify(fileList))
  const parts: BackupPart[] = []
  const listPut = await storage.put(partKey(stack, id, FILE_LIST_PART), listBytes, {ifNotExists: true, deferSync: true})
  parts.push({
    name: FILE_LIST_PART,
    component: 'base-files',
    bytes: listPut.bytes,
    sha256: listPut.sha256,
    compression: 'none' as const,
    format: 'charge-ops-file-list',
    fileCount: fileList.files.length,
    contentBytes: fileList.files.reduce((s, f) => s + f.size, 0),
  })
  for (const [name, text] of [
    [BACKUP_LABEL_PART, stop.labelfile],
    [TABLESPACE_MAP_PART, stop.spcmapfile],
  ] as const) {
    if (!text) continue
    const put = await storage.put(partKey(stack, id, name), text, {ifNotExists: true, deferSync: true})
    parts.push({
      name,
      component: 'base-label',
      bytes: put.bytes,
      sha256: put.sha256,
      compression: 'none' as const,
      format: 'pg_backup_stop',
    })
  }
  return parts
}

async function awaitSegments(
  storage: RepositoryStorage,
  stack: string,
  segments: string[],
  timeoutSec: number,
  id: string,
): Promise<void> {
  const deadline = Date.now() + timeoutSec * 1000
  const pending = [...segments]
  while (pending.length > 0) {
    if (await findWalObject(storage, stack, parseWalFileName(pending[0])!)) {
      pending.shift()
      continue
    }
    if (Date.now() > deadline) {
      throw new ExternalCommandError(
        'archive_command',
        `WAL segment ${pending[0]} of backup ${id} was not archived within ${timeoutSec}s; the backup is left incomplete (no manifest)`,
        {
          hint: 'Check archive_command in the server log and run `charge-ops wal check`.',
        },
      )
    }
    await new Promise((resolve) => setTimeout(resolve, 50))
  }
}
