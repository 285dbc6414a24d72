/**
 * Backup manifests (DESIGN §4): the one record of what a backup holds.
 *
 * Layout: `<stack>/backups/<id>/manifest.json` beside the backup's parts (`db.dump.zst`,
 * `files.tar.zst`, `base.tar.zst` …). The manifest is written LAST and atomically, after every
 * part is stored: a backup directory without a manifest is incomplete (a killed run, a failed
 * upload) and is never listed as restorable; `backup prune` removes such leftovers.
 *
 * Who writes what:
 *  - `backup db | files | all` (src/backup/) fill `db`, `files`, `consistency`;
 *  - `backup base` (src/backup/physical*.ts) fills `base` (WAL start/stop LSN, timeline …);
 *  - `backup verify` updates `verification` with `recordVerification` (the only rewrite a
 *    manifest ever gets, still atomic).
 *
 * Usage for a new kind of backup:
 * ```ts
 * const id = newBackupId('base', new Date())                 // 20261128T021500Z-base-3f2a
 * const part = await storage.put(partKey(stack, id, 'base.tar.zst'), stream)
 * await writeManifest(storage, stack, {formatVersion: 1, id, kind: 'base', stack, startedAt, finishedAt,
 *   parts: [{name: 'base.tar.zst', bytes: part.bytes, sha256: part.sha256, compression: 'zstd'}], base: {...}})
 * const all = await listBackups(storage, stack)              // complete ones, newest first
 * const b = await resolveBackup(storage, stack, 'latest', {kind: 'base'})
 * ```
 * Objects are `looseObject`s: a section may carry fields this schema does not name yet; they
 * round-trip unchanged.
 */
import {randomBytes} from 'node:crypto'

import {z} from 'zod'

import {ChecksFailedError, UsageError} from '../errors.js'
import {ObjectExistsError, ObjectNotFoundError, RepositoryUnreadableError, type RepositoryStorage} from './storage.js'

export const MANIFEST_FILE = 'manifest.json'
export const MANIFEST_FORMAT_VERSION = 1

export const backupKindSchema = z.enum(['db', 'files', 'base', 'all'])
export type BackupKind = z.infer<typeof backupKindSchema>

export const compressionSchema = z.enum(['zstd', 'gzip', 'none'])
export type CompressionAlgorithm = z.infer<typeof compressionSchema>

/** Client-side encryption of a part (src/backup/encryption.ts): chunked AES-256-GCM. */
export const partEncryptionSchema = z.looseObject({
  algorithm: z.literal('aes-256-gcm-chunked'),
  /** first 16 hex chars of sha256(key): tells which key file decrypts it, reveals nothing */
  keyId: z.string(),
  chunkSize: z.number().int().positive(),
})

/** One file inside a files part (for restore files and the cross-store check). */
export const fileEntrySchema = z.object({
  path: z.string(),
  size: z.number().int().nonnegative(),
  sha256: z.string().optional(),
})
export type FileEntry = z.infer<typeof fileEntrySchema>

export const partSchema = z.looseObject({
  /** file name inside the backup directory, e.g. `db.dump.zst` */
  name: z.string().regex(/^[A-Za-z0-9._-]+$/),
  /** what the part holds: db | uploads | chroma | files | base | wal … */
  component: z.string().optional(),
  /** stored size and sha256 of the stored bytes (after compression and encryption) */
  bytes: z.number().int().nonnegative(),
  sha256: z.string().regex(/^[0-9a-f]{64}$/),
  compression: compressionSchema,
  /** e.g. 'pg_dump-custom', 'pg_dump-directory-tar', 'tar', 'sqlite-backup' */
  format: z.string().optional(),
  encryption: partEncryptionSchema.nullish(),
  /** files parts: number of regular files and their total size (before compression) */
  fileCount: z.number().int().nonnegative().optional(),
  contentBytes: z.number().int().nonnegative().optional(),
  /** key of a separate object holding the per-file list (path, size, sha256) */
  fileListPart: z.string().optional(),
  capturedAt: z.string().optional(),
})
export type BackupPart = z.infer<typeof partSchema>

export const dbSectionSchema = z.looseObject({
  database: z.string(),
  /** pg_dump format: 'custom' (one stream) or 'directory' (--jobs, stored as a tar) */
  format: z.enum(['custom', 'directory']),
  jobs: z.number().int().positive().optional(),
  /** the exported snapshot's time (server clock) and WAL position */
  snapshotAt: z.string(),
  lsn: z.string().optional(),
  timeline: z.number().int().optional(),
  /** rows per table (`schema.table`), counted in the very snapshot pg_dump used */
  rowCounts: z.record(z.string(), z.number().int().nonnegative()),
  databaseSizeBytes: z.number().int().nonnegative().optional(),
})

export const filesSectionSchema = z.looseObject({
  uploadsDir: z.string().optional(),
  chromaDir: z.string().optional(),
  uploads: z.looseObject({fileCount: z.number().int(), bytes: z.number().int(), capturedAt: z.string()}).optional(),
  chroma: z
    .looseObject({
      fileCount: z.number().int(),
      bytes: z.number().int(),
      capturedAt: z.string(),
      sqliteOnlineBackup: z.boolean().optional(),
      quiesced: z.string().optional(),
    })
    .optional(),
})

/** Physical base backup (PITR engineer, src/backup/physical*.ts). */
export const baseSectionSchema = z.looseObject({
  startLsn: z.string(),
  stopLsn: z.string(),
  timeline: z.number().int(),
  startWalFile: z.string().optional(),
  stopWalFile: z.string().optional(),
  systemIdentifier: z.string().optional(),
  engine: z.enum(['native', 'wal-g']).optional(),
})

/** `backup all`: when each component was captured and whether the stores agree. */
export const consistencySectionSchema = z.looseObject({
  dbSnapshotAt: z.string().optional(),
  dbLsn: z.string().optional(),
  uploadsCapturedAt: z.string().optional(),
  chromaCapturedAt: z.string().optional(),
  /** max - min of the capture times, in ms */
  skewMs: z.number().optional(),
  ok: z.boolean(),
  missingUploads: z.array(z.string()).default([]),
  orphanUploads: z.array(z.string()).default([]),
  chroma: z
    .looseObject({
      collection: z.string(),
      records: z.number().int().nullable(),
      expected: z.number().int().nullable(),
      ok: z.boolean(),
      note: z.string().optional(),
    })
    .optional(),
  notes: z.array(z.string()).default([]),
})

export const verificationSchema = z.looseObject({
  verifiedAt: z.string(),
  ok: z.boolean(),
  checksumsOk: z.boolean(),
  /** with --restore-drill: the measured recovery time */
  restoreDrill: z
    .looseObject({
      at: z.string(),
      durationMs: z.number().nonnegative(),
      rowCountsMatch: z.boolean(),
      mismatches: z.array(z.string()).default([]),
    })
    .optional(),
})
export type Verification = z.infer<typeof verificationSchema>

export const manifestSchema = z.looseObject({
  formatVersion: z.literal(MANIFEST_FORMAT_VERSION),
  id: z.string().regex(/^\d{8}T\d{6}Z-[a-z]+-[0-9a-f]{4,}$/),
  kind: backupKindSchema,
  stack: z.string(),
  startedAt: z.string(),
  finishedAt: z.string(),
  durationMs: z.number().nonnegative().optional(),
  serviceVersion: z.string().nullish(),
  migrationHead: z.string().nullish(),
  postgresVersion: z.string().nullish(),
  /** versions of the tools that produced it: charge-ops, pg_dump, zstd, tar … */
  tools: z.record(z.string(), z.string()).default({}),
  compression: z
    .looseObject({
      algorithm: compressionSchema,
      level: z.number().int().optional(),
      threads: z.number().int().optional(),
    })
    .optional(),
  encryption: z.looseObject({algorithm: z.literal('aes-256-gcm-chunked'), keyId: z.string()}).nullish(),
  parts: z.array(partSchema),
  db: dbSectionSchema.optional(),
  files: filesSectionSchema.optional(),
  base: baseSectionSchema.optional(),
  consistency: consistencySectionSchema.optional(),
  verification: verificationSchema.optional(),
})
export type BackupManifest = z.infer<typeof manifestSchema>
/** What a writer passes in (defaults not yet applied). */
export type BackupManifestInput = z.input<typeof manifestSchema>

// ---------------------------------------------------------------- keys

export const backupsPrefix = (stack: string) => `${stack}/backups/`
export const backupPrefix = (stack: string, id: string) => `${stack}/backups/${assertBackupId(id)}/`
export const partKey = (stack: string, id: string, name: string) => `${backupPrefix(stack, id)}${name}`
export const manifestKey = (stack: string, id: string) => partKey(stack, id, MANIFEST_FILE)

const ID_PATTERN = /^\d{8}T\d{6}Z-[a-z]+-[0-9a-f]{4,}$/

export function isBackupId(value: string): boolean {
  return ID_PATTERN.test(value)
}

function assertBackupId(id: string): string {
  if (!isBackupId(id))
    throw new UsageError(`not a backup id: ${JSON.stringify(id)}`, {
      code: 'BAD_BACKUP_ID',
      hint: 'Ids look like 20261128T021500Z-db-3f2a; run `charge-ops backup list`.',
    })
  return id
}

/**
 * A new sortable backup id: UTC time to the second, the kind, 4 random hex chars
 * (`20261128T021500Z-db-3f2a`). Lexical order = chronological order.
 */
export function newBackupId(kind: BackupKind, now: Date = new Date()): string {
  const stamp = now
    .toISOString()
    .replace(/\.\d{3}Z$/, 'Z')
    .replace(/[-:]/g, '')
  return `${stamp}-${kind}-${randomBytes(2).toString('hex')}`
}

/** The start time encoded in an id. */
export function backupIdTime(id: string): Date | undefined {
  const m = /^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z/.exec(id)
  return m ? new Date(Date.UTC(+m[1], +m[2] - 1, +m[3], +m[4], +m[5], +m[6])) : undefined
}

// ---------------------------------------------------------------- read / write

/**
 * Writes the manifest of a finished backup: validated, then stored atomically and never over an
 * existing one (ObjectExistsError → a usage error: ids are unique). Call it after every part is
 * stored — its presence is what marks the backup complete.
 */
export async function writeManifest(
  storage: RepositoryStorage,
  stack: string,
  manifest: BackupManifestInput,
): Promise<BackupManifest> {
  const parsed = manifestSchema.parse(manifest)
  if (parsed.stack !== stack) throw new Error(`manifest stack ${parsed.stack} does not match ${stack}`)
  try {
    await storage.put(manifestKey(stack, parsed.id), JSON.stringify(parsed, null, 2) + '\n', {ifNotExists: true})
  } catch (error) {
    if (error instanceof ObjectExistsError)
      throw new UsageError(`backup ${parsed.id} already has a manifest`, {code: 'BACKUP_EXISTS'})
    throw error
  }
  return parsed
}

/** Reads and validates one manifest. Missing → UsageError (exit 2); unreadable → ChecksFailedError (exit 1). */
export async function readManifest(storage: RepositoryStorage, stack: string, id: string): Promise<BackupManifest> {
  let bytes: Buffer
  try {
    bytes = await storage.getBytes(manifestKey(stack, id))
  } catch (error) {
    if (error instanceof ObjectNotFoundError) {
      throw new UsageError(`backup ${id} does not exist or is incomplete in ${storage.location}`, {
        code: 'BACKUP_NOT_FOUND',
        hint: 'Run `charge-ops backup list` to see the complete backups.',
      })
    }
    throw error
  }
  return parseManifest(bytes, `${storage.location}/${manifestKey(stack, id)}`)
}

export function parseManifest(bytes: Buffer | string, where: string): BackupManifest {
  let json: unknown
  try {
    json = JSON.parse(bytes.toString())
  } catch (error) {
    throw new ChecksFailedError(`manifest ${where} is not valid JSON: ${(error as Error).message}`, {
      code: 'MANIFEST_INVALID',
      // a manifest is written whole and atomically: an unreadable one was damaged afterwards
      hint: 'The manifest was damaged after it was written (cut short by a copy, a full disk or the storage): do not trust this backup. Restore another one (`charge-ops backup list`), and take a new backup.',
    })
  }
  const result = manifestSchema.safeParse(json)
  if (!result.success) {
    const issue = result.error.issues[0]
    throw new ChecksFailedError(`manifest ${where} is invalid: ${issue.path.join('.')} ${issue.message}`, {
      code: 'MANIFEST_INVALID',
      hint: 'The manifest was edited or damaged, or written by a newer charge-ops: restore another backup (`charge-ops backup list`) or upgrade charge-ops.',
    })
  }
  return result.data
}

/**
 * Rewrites the manifest with a new `verification` record (atomic replace). The only mutation a
 * complete backup ever sees; parts are never touched.
 */
export async function recordVerification(
  storage: RepositoryStorage,
  stack: string,
  id: string,
  verification: Verification,
): Promise<BackupManifest> {
  const current = await readManifest(storage, stack, id)
  const next = manifestSchema.parse({...current, verification})
  await storage.put(manifestKey(stack, id), JSON.stringify(next, null, 2) + '\n')
  return next
}

// ---------------------------------------------------------------- listing

export interface IncompleteBackup {
  id: string
  /** objects present (parts, temp files excluded) */
  objects: string[]
  bytes: number
  /** newest object time: how long ago something was written there */
  lastModified: Date
}

export interface BackupListing {
  /** complete backups, newest first */
  complete: BackupManifest[]
  /** directories without a manifest (killed or failed runs), newest first; only with includeIncomplete */
  incomplete: IncompleteBackup[]
  /** manifests that exist but do not parse, or that this user may not read (`unreadable`): listed so that nobody trusts them */
  invalid: {id: string; error: string; unreadable?: boolean}[]
}

/**
 * Every backup of a stack. Complete = has a valid manifest. Sorted newest first by id (ids sort
 * chronologically). `includeIncomplete` also reports partial directories (for prune / list --all).
 */
export async function listBackups(
  storage: RepositoryStorage,
  stack: string,
  options: {includeIncomplete?: boolean; kind?: BackupKind} = {},
): Promise<BackupListing> {
  const objects = await storage.list(backupsPrefix(stack))
  const byId = new Map<string, {keys: string[]; bytes: number; lastModified: Date; hasManifest: boolean}>()
  const prefixLength = backupsPrefix(stack).length
  for (const object of objects) {
    const rest = object.key.slice(prefixLength)
    const slash = rest.indexOf('/')
    if (slash <= 0) continue
    const id = rest.slice(0, slash)
    if (!isBackupId(id)) continue
    const entry = byId.get(id) ?? {keys: [], bytes: 0, lastModified: new Date(0), hasManifest: false}
    entry.keys.push(object.key)
    entry.bytes += object.size
    if (object.mtime > entry.lastModified) entry.lastModified = object.mtime
    if (rest.slice(slash + 1) === MANIFEST_FILE) entry.hasManifest = true
    byId.set(id, entry)
  }
  const ids = [...byId.keys()].sort().reverse()
  const listing: BackupListing = {complete: [], incomplete: [], invalid: []}
  for (const id of ids) {
    const entry = byId.get(id)!
    if (entry.hasManifest) {
      try {
        const manifest = parseManifest(
          await storage.getBytes(manifestKey(stack, id)),
          `${storage.location}/${manifestKey(stack, id)}`,
        )
        if (!options.kind || manifest.kind === options.kind) listing.complete.push(manifest)
      } catch (error) {
        listing.invalid.push({
          id,
          error: (error as Error).message,
          ...(error instanceof RepositoryUnreadableError ? {unreadable: true} : {}),
        })
      }
    } else if (options.includeIncomplete) {
      listing.incomplete.push({id, objects: entry.keys, bytes: entry.bytes, lastModified: entry.lastModified})
    }
  }
  return listing
}

/**
 * Resolves `latest` (the newest complete backup, optionally of a kind — `all` backups count as
 * db and files backups too) or an explicit id to its manifest.
 */
export async function resolveBackup(
  storage: RepositoryStorage,
  stack: string,
  ref: string,
  options: {kind?: BackupKind | BackupKind[]} = {},
): Promise<BackupManifest> {
  const kinds = options.kind === undefined ? undefined : Array.isArray(options.kind) ? options.kind : [options.kind]
  if (ref === 'latest') {
    const {complete} = await listBackups(storage, stack)
    const found = complete.find((m) => !kinds || kinds.includes(m.kind))
    if (!found) {
      throw new UsageError(
        `no complete ${kinds ? kinds.join(' / ') + ' ' : ''}backup of stack ${stack} in ${storage.location}`,
        {
          code: 'BACKUP_NOT_FOUND',
          hint: 'Take one with `charge-ops backup db` (or check --repo / CHARGE_OPS_REPO).',
        },
      )
    }
    return found
  }
  const manifest = await readManifest(storage, stack, ref)
  if (kinds && !kinds.includes(manifest.kind)) {
    throw new UsageError(`backup ${ref} is a ${manifest.kind} backup, not ${kinds.join(' / ')}`, {
      code: 'BACKUP_WRONG_KIND',
    })
  }
  return manifest
}

/** Total stored bytes of a backup's parts. */
export function manifestBytes(manifest: BackupManifest): number {
  return manifest.parts.reduce((sum, part) => sum + part.bytes, 0)
}

/** The part of a given name or component. */
export function findPart(manifest: BackupManifest, nameOrComponent: string): BackupPart | undefined {
  return (
    manifest.parts.find((p) => p.name === nameOrComponent) ??
    manifest.parts.find((p) => p.component === nameOrComponent)
  )
}

/**
 * A part that cannot be empty: compressed or encrypted bytes always carry a header, and a part that
 * holds files holds their tar headers. Such a part recorded with 0 bytes lost its content when it
 * was taken (charge-ops before 0.1.1 could store a short producer's part empty on S3, or with
 * encryption or gzip, with a checksum that matched the empty object), so its checksum proves nothing.
 */
export function impossiblyEmpty(
  part: Pick<BackupPart, 'bytes' | 'compression' | 'encryption'> & {fileCount?: number},
): boolean {
  return part.bytes === 0 && (part.compression !== 'none' || Boolean(part.encryption) || (part.fileCount ?? 0) > 0)
}
