/**
 * The WAL archive inside the repository:
 *
 * ```
 * <stack>/cluster.json                          system identifier + PostgreSQL major, written at first push
 * <stack>/wal/<timeline 8 hex>/<file>.zst       every archived file (segments, .partial, .backup, .history)
 * ```
 * Objects are never overwritten (`put(..., {ifNotExists})`); each carries the sha256 of the original
 * bytes (src/wal/codec.ts) so `wal fetch` detects corruption.
 */
import {open, readFile} from 'node:fs/promises'
import {dirname, isAbsolute, join} from 'node:path'

import {UsageError} from '../errors.js'
import {ObjectExistsError, ObjectNotFoundError, type RepositoryStorage} from '../repository/storage.js'
import {decodeWal, encodeWalFile, extensionOf, readEnvelope, type WalCompression} from './codec.js'
import {
  hex8,
  parseWalFileName,
  readSegmentHeader,
  segmentName,
  systemIdentifierFromPgControl,
  type WalFileName,
} from './names.js'
import {judgeTimelineSwitchSegment} from './timeline-switch.js'

export interface ClusterIdentity {
  systemIdentifier: string
  postgresMajor?: number
  firstPushAt?: string
  firstPushedFile?: string
}

export const clusterKey = (stack: string) => `${stack}/cluster.json`
export const walPrefix = (stack: string) => `${stack}/wal/`

export function walObjectKey(stack: string, file: WalFileName, compression: WalCompression = 'zstd'): string {
  return `${walPrefix(stack)}${hex8(file.timeline)}/${file.name}.${extensionOf(compression)}`
}

export function requireWalName(name: string): WalFileName {
  const parsed = parseWalFileName(name)
  if (!parsed) {
    throw new UsageError(`${JSON.stringify(name)} is not a WAL file name`, {
      code: 'WAL_BAD_NAME',
      hint: 'Expected a segment (000000010000000000000003), a .partial, a .backup or a TTTTTTTT.history file name, as PostgreSQL passes in %f.',
    })
  }
  return parsed
}

export class ClusterMismatchError extends UsageError {
  constructor(stored: ClusterIdentity, found: ClusterIdentity, what: string, location: string) {
    super(
      `${what} comes from another cluster: system identifier ${found.systemIdentifier}${found.postgresMajor ? ` (PostgreSQL ${found.postgresMajor})` : ''}, but the repository ${location} belongs to ${stored.systemIdentifier}${stored.postgresMajor ? ` (PostgreSQL ${stored.postgresMajor})` : ''}`,
      {
        code: 'WAL_CLUSTER_MISMATCH',
        hint: 'A restored copy (e.g. prod → test) or a re-initialised cluster must archive to its own repository or stack: change --stack / --repo in archive_command. Nothing was written.',
        data: {repository: stored, pushed: found},
      },
    )
  }
}

export async function readClusterIdentity(
  storage: RepositoryStorage,
  stack: string,
): Promise<ClusterIdentity | undefined> {
  try {
    return JSON.parse((await storage.getBytes(clusterKey(stack))).toString()) as ClusterIdentity
  } catch (error) {
    if (error instanceof ObjectNotFoundError) return undefined
    throw error
  }
}

/**
 * Records the cluster at first use and refuses another one afterwards. Two racing first pushes
 * cannot both win: the no-overwrite put decides, and the loser re-reads and compares.
 */
export async function ensureClusterIdentity(
  storage: RepositoryStorage,
  stack: string,
  found: ClusterIdentity,
  what: string,
): Promise<ClusterIdentity> {
  let stored = await readClusterIdentity(storage, stack)
  if (!stored) {
    const record: ClusterIdentity = {...found, firstPushAt: new Date().toISOString()}
    try {
      await storage.put(clusterKey(stack), JSON.stringify(record, null, 2) + '\n', {ifNotExists: true})
      return record
    } catch (error) {
      if (!(error instanceof ObjectExistsError)) throw error
      stored = (await readClusterIdentity(storage, stack))!
    }
  }
  if (
    stored.systemIdentifier !== found.systemIdentifier ||
    (stored.postgresMajor && found.postgresMajor && stored.postgresMajor !== found.postgresMajor)
  ) {
    throw new ClusterMismatchError(stored, found, what, storage.location)
  }
  return stored
}

/** The identity of the data directory PostgreSQL runs archive_command in (its cwd). */
export async function dataDirIdentity(dataDir: string): Promise<ClusterIdentity | undefined> {
  try {
    const control = await readFile(join(dataDir, 'global', 'pg_control'))
    const version = await readFile(join(dataDir, 'PG_VERSION'), 'utf8').catch(() => '')
    return {
      systemIdentifier: systemIdentifierFromPgControl(control),
      postgresMajor: Number(version.trim()) || undefined,
    }
  } catch {
    return undefined
  }
}

export interface PushResult {
  file: string
  key: string
  timeline: number
  bytes: number
  storedBytes: number
  sha256: string
  /** true when the same content was already archived (PostgreSQL retried) */
  alreadyArchived: boolean
  compression: WalCompression
}

export interface PushOptions {
  storage: RepositoryStorage
  stack: string
  /** the path PostgreSQL passes as %p (relative to its data directory = our cwd) */
  path: string
  /** the data directory, for the identity of non-segment files (default: cwd) */
  dataDir?: string
  compression?: WalCompression
}

/** Permission problems between root and the postgres user are the usual archive_command failure: say so. */
export function explainFsError(error: unknown, location: string): unknown {
  const code = (error as NodeJS.ErrnoException)?.code
  if (code === 'EACCES' || code === 'EPERM' || code === 'EROFS') {
    return new UsageError(`permission denied in the repository ${location}: ${(error as Error).message}`, {
      code: 'WAL_REPO_PERMISSION',
      hint: `The repository must be writable by the OS user PostgreSQL runs as: chown -R postgres: ${location} — and run \`backup base\` / \`wal\` commands as that user (sudo -u postgres charge-ops …).`,
      cause: error,
    })
  }
  return error
}

/**
 * `wal push`: read, checksum, compress, store under the timeline without ever overwriting.
 * The storage's put is atomic and fsynced (local: temp + fsync + link + dir fsync; S3: one
 * completed PUT), so success is only reported once the segment is durable.
 */
export async function pushWal(options: PushOptions): Promise<PushResult> {
  try {
    return await pushWalUnchecked(options)
  } catch (error) {
    throw explainFsError(error, options.storage.location)
  }
}

async function pushWalUnchecked(options: PushOptions): Promise<PushResult> {
  const {storage, stack} = options
  const name = options.path.split('/').pop() ?? options.path
  const file = requireWalName(name)
  const fullPath = isAbsolute(options.path) ? options.path : join(process.cwd(), options.path)
  // only the first page is needed to identify the cluster; the whole file is hashed while zstd runs
  let firstPage: Buffer
  try {
    const handle = await open(fullPath, 'r')
    try {
      firstPage = Buffer.alloc(8192)
      const {bytesRead} = await handle.read(firstPage, 0, 8192, 0)
      firstPage = firstPage.subarray(0, bytesRead)
    } finally {
      await handle.close()
    }
  } catch (error) {
    throw new UsageError(
      `cannot read ${fullPath}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`,
      {code: 'WAL_UNREADABLE', hint: 'archive_command gets %p relative to the data directory; run it from there.'},
    )
  }

  let identity: ClusterIdentity | undefined
  if (file.kind === 'segment' || file.kind === 'partial') {
    const header = readSegmentHeader(firstPage)
    if (!header)
      throw new UsageError(`${name} does not start with a WAL segment header: not a WAL segment`, {
        code: 'WAL_NOT_A_SEGMENT',
      })
    if (header.timeline !== file.timeline && file.kind === 'segment')
      await assertTimelineSwitchSegment(storage, stack, fullPath, file)
    identity = {systemIdentifier: header.systemIdentifier, postgresMajor: header.postgresMajor}
  } else {
    identity = await dataDirIdentity(options.dataDir ?? process.cwd())
  }
  const [encoded] = await Promise.all([
    encodeWalFile(fullPath, name, options.compression ?? 'zstd'),
    identity
      ? ensureClusterIdentity(storage, stack, {...identity, firstPushedFile: name}, `WAL file ${name}`)
      : undefined,
  ])
  const key = walObjectKey(stack, file, encoded.compression)
  const result: PushResult = {
    file: name,
    key,
    timeline: file.timeline,
    bytes: encoded.envelope.size,
    storedBytes: encoded.body.length,
    sha256: encoded.envelope.sha256,
    alreadyArchived: false,
    compression: encoded.compression,
  }
  // The same file may already be there under the other compression's extension.
  const other = walObjectKey(stack, file, encoded.compression === 'zstd' ? 'gzip' : 'zstd')
  const existingOther = await storage.exists(other)
  if (!existingOther) {
    try {
      await storage.put(key, encoded.body, {ifNotExists: true, sizeHint: encoded.body.length})
      return result
    } catch (error) {
      if (!(error instanceof ObjectExistsError)) throw error
    }
  }
  const existingKey = existingOther ? other : key
  const existing = readEnvelope(await storage.getBytes(existingKey))
  if (existing && existing.sha256 === encoded.envelope.sha256 && existing.size === encoded.envelope.size) {
    return {...result, key: existingKey, alreadyArchived: true}
  }
  throw new UsageError(
    `${name} is already archived with different content (stored sha256 ${existing?.sha256.slice(0, 12) ?? 'unreadable'}…, this one ${encoded.envelope.sha256.slice(0, 12)}…); refusing to overwrite`,
    {
      code: 'WAL_CONFLICT',
      hint: 'Two clusters archive into the same stack, or the archive was restored from elsewhere. Point this cluster at its own --stack; never delete archived WAL to make this go away.',
      data: {key: existingKey},
    },
  )
}

/**
 * A segment whose first page carries another timeline than its name is accepted only as the
 * first segment of a new timeline that began in the middle of it (src/wal/timeline-switch.ts),
 * judged with the timeline's history file: from pg_wal beside the segment (PostgreSQL writes it
 * at promotion, before the segment), else from the archive.
 */
async function assertTimelineSwitchSegment(
  storage: RepositoryStorage,
  stack: string,
  fullPath: string,
  file: WalFileName,
): Promise<void> {
  const historyName = `${hex8(file.timeline)}.history`
  const historyText =
    (await readFile(join(dirname(fullPath), historyName), 'utf8').catch(() => undefined)) ??
    (await readWal(storage, stack, historyName))?.data.toString()
  const refuse = (reason: string) =>
    new UsageError(
      `${file.name} holds pages of another timeline than its name says (${file.timeline}), and is not the first segment of that timeline: ${reason}`,
      {
        code: 'WAL_NAME_MISMATCH',
        hint: "Only the segment in which a timeline began may start with its parent timeline's pages. Nothing was written.",
      },
    )
  if (historyText === undefined) throw refuse(`${historyName} is neither in pg_wal nor in the archive`)
  const verdict = judgeTimelineSwitchSegment(
    await readFile(fullPath),
    {timeline: file.timeline, segno: file.segno!},
    historyText,
  )
  if (!verdict.ok) throw refuse(verdict.reason!)
}

/** Where `wal fetch` found the file, or why it could not. */
export type FetchOutcome =
  {status: 'restored'; file: string; key: string; bytes: number} | {status: 'missing'; file: string}

export async function findWalObject(
  storage: RepositoryStorage,
  stack: string,
  file: WalFileName,
): Promise<string | undefined> {
  for (const compression of ['zstd', 'gzip'] as const) {
    const key = walObjectKey(stack, file, compression)
    if (await storage.exists(key)) return key
  }
  return undefined
}

/** Reads, decompresses and verifies one archived file (throws WalIntegrityError on damage). */
export async function readWal(
  storage: RepositoryStorage,
  stack: string,
  name: string,
): Promise<{data: Buffer; key: string} | undefined> {
  const file = requireWalName(name)
  const key = await findWalObject(storage, stack, file)
  if (!key) return undefined
  let body: Buffer
  try {
    body = await storage.getBytes(key)
  } catch (error) {
    if (error instanceof ObjectNotFoundError) return undefined
    throw error
  }
  return {data: await decodeWal(body, name), key}
}

// ------------------------------------------------------------------ listing / continuity

export interface ArchivedFile extends WalFileName {
  key: string
  size: number
  mtime: Date
}

/** Every archived file of the stack, parsed; unknown objects are ignored. */
export async function listArchive(storage: RepositoryStorage, stack: string): Promise<ArchivedFile[]> {
  const out: ArchivedFile[] = []
  for (const object of await storage.list(walPrefix(stack))) {
    const base = object.key
      .split('/')
      .pop()!
      .replace(/\.(zst|gz)$/, '')
    const parsed = parseWalFileName(base)
    if (parsed) out.push({...parsed, key: object.key, size: object.size, mtime: object.mtime})
  }
  return out
}

export {segmentName}
