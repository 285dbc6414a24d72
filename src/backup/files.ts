/**
 * `backup files`: UPLOADS_DIR and CHROMA_PERSIST_DIRECTORY, each streamed as a tar → zstd →
 * repository (no temp copy of the folders: the guide's cp into /tmp doubles the disk and is
 * inconsistent). One part per folder (`uploads.tar.zst`, `chroma.tar.zst`) so that each has its
 * own file count, bytes and checksum and can be restored alone, plus a file list per part
 * (`*.files.json`: path and size of every file) for `restore files` and the cross-store check.
 *
 * Chroma: chroma.sqlite3 is a live SQLite database; reading the file while the server writes can
 * capture a torn page. It is copied with SQLite's online backup API (better-sqlite3
 * `db.backup()`) into a staging directory — only this one file is copied — and the tar takes that
 * copy instead of the live file. The HNSW segment files beside it are read while the service is in
 * maintenance mode (writes answer 503, so no new embeddings are added meanwhile); maintenance is
 * switched off again right after, and left alone if it was already on.
 */
import {createHash} from 'node:crypto'
import {createReadStream, existsSync} from 'node:fs'
import {chmod, lstat, mkdtemp, readdir, rm} from 'node:fs/promises'
import {tmpdir} from 'node:os'
import {join, relative, sep} from 'node:path'
import {Readable} from 'node:stream'

import {faultPoint} from '../core/faults.js'
import {ConfigError} from '../errors.js'
import type {BackupManifest, BackupManifestInput, BackupPart, FileEntry} from '../repository/manifest.js'
import {PART_SUFFIX} from './compression.js'
import {runBackup, storePart, type BackupContext} from './context.js'
import {streamProducerToPart} from './pipeline.js'

export const CHROMA_SQLITE = 'chroma.sqlite3'
const SQLITE_SIDECARS = [CHROMA_SQLITE, `${CHROMA_SQLITE}-wal`, `${CHROMA_SQLITE}-shm`, `${CHROMA_SQLITE}-journal`]

/** sha256 of a file's content. */
export async function sha256File(path: string): Promise<string> {
  const hash = createHash('sha256')
  for await (const chunk of createReadStream(path)) hash.update(chunk as Buffer)
  return hash.digest('hex')
}

/**
 * Every regular file under dir (relative paths with `/`, sorted), symlinks not followed; with
 * `hash` also each file's sha256 (what `restore files` checks the extracted copy against).
 */
export async function listFiles(
  dir: string,
  skip: (rel: string) => boolean = () => false,
  options: {hash?: boolean} = {},
): Promise<FileEntry[]> {
  const out: FileEntry[] = []
  const walk = async (d: string) => {
    for (const entry of await readdir(d, {withFileTypes: true})) {
      const full = join(d, entry.name)
      const rel = relative(dir, full).split(sep).join('/')
      if (skip(rel)) continue
      if (entry.isDirectory()) await walk(full)
      else if (entry.isFile()) {
        const s = await lstat(full).catch(() => undefined)
        if (!s) continue
        if (!options.hash) out.push({path: rel, size: s.size})
        else {
          const sha256 = await sha256File(full).catch(() => undefined)
          if (sha256) out.push({path: rel, size: s.size, sha256})
        }
      }
    }
  }
  await walk(dir)
  return out.sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0))
}

export interface FilesCapture {
  parts: BackupPart[]
  section: NonNullable<BackupManifestInput['files']>
  uploadFiles?: FileEntry[]
  chromaCount?: number | null
  tools: Record<string, string>
}

export interface FilesOptions {
  uploadsDir?: string
  chromaDir?: string
  /** switch the service to maintenance mode while the Chroma folder is read (default true) */
  maintenance?: boolean
}

async function tarVersion(): Promise<string> {
  const {run} = await import('../core/proc/exec.js')
  return /(\d+\.\d+(?:\.\d+)?)/.exec((await run('tar', ['--version'])).stdout)?.[1] ?? 'unknown'
}

const tarArgs = ['--create', '--file=-', '--sort=name', '--numeric-owner', '--warning=no-file-changed']

async function storeFileList(ctx: BackupContext, id: string, name: string, files: FileEntry[]): Promise<BackupPart> {
  const lines = files.map((f) => JSON.stringify(f)).join('\n') + '\n'
  return storePart(ctx, id, name, Readable.from([Buffer.from(lines)]), {
    component: 'file-list',
    format: 'jsonl',
    compression: 'none',
    fileCount: files.length,
  })
}

/** Counts the records of a Chroma collection in a chroma.sqlite3 copy (schema of Chroma 0.5 – 1.x). */
export async function countChromaSqlite(file: string, collection: string): Promise<number | null> {
  try {
    const {sqliteGet} = await import('./sqlite.js')
    const row = await sqliteGet<{n: number}>(
      file,
      `SELECT count(*) AS n FROM embeddings WHERE segment_id IN (SELECT s.id FROM segments s JOIN collections c ON c.id = s.collection WHERE c.name = ?)`,
      [collection],
    )
    return row ? Number(row.n) : null
  } catch {
    return null
  }
}

/** Records per collection in a chroma.sqlite3 (schema of Chroma 0.5 – 1.x), undefined when unreadable. */
export async function chromaCollectionCounts(file: string): Promise<Record<string, number> | undefined> {
  try {
    const {default: Database} = await import('better-sqlite3')
    const db = new Database(file, {readonly: true, fileMustExist: true})
    try {
      const rows = db
        .prepare(
          `SELECT c.name AS name, (SELECT count(*) FROM embeddings e WHERE e.segment_id IN (SELECT s.id FROM segments s WHERE s.collection = c.id)) AS n FROM collections c ORDER BY c.name`,
        )
        .all() as {name: string; n: number}[]
      return Object.fromEntries(rows.map((r) => [r.name, Number(r.n)]))
    } finally {
      db.close()
    }
  } catch {
    return undefined
  }
}

const CHROMA_STAGING_PREFIX = 'charge-ops-chroma-'

/** Removes `charge-ops-chroma-<pid>-*` copies whose run is dead (a kill -9 mid-copy). */
async function sweepDeadStaging(root: string, logger: BackupContext['logger']): Promise<void> {
  const {pidAlive} = await import('../core/proc/pid.js')
  for (const name of await readdir(root).catch(() => [] as string[])) {
    const m = new RegExp(`^${CHROMA_STAGING_PREFIX}(\\d+)-`).exec(name)
    if (!m || pidAlive(Number(m[1]))) continue
    await rm(join(root, name), {recursive: true, force: true})
    logger.info(`removed ${join(root, name)}, left by a killed backup (pid ${m[1]})`)
  }
}

export async function captureFiles(ctx: BackupContext, id: string, options: FilesOptions): Promise<FilesCapture> {
  const parts: BackupPart[] = []
  const section: NonNullable<BackupManifestInput['files']> = {}
  const suffix = PART_SUFFIX[ctx.compression.algorithm]
  const tools: Record<string, string> = {tar: await tarVersion()}
  let uploadFiles: FileEntry[] | undefined
  let chromaCount: number | null | undefined

  if (options.chromaDir) {
    const dir = options.chromaDir
    if (!existsSync(dir))
      throw new ConfigError(`CHROMA_PERSIST_DIRECTORY ${dir} does not exist`, {
        code: 'CHROMA_DIR_MISSING',
        hint: 'Fix CHROMA_PERSIST_DIRECTORY in the backend .env.',
      })
    const {takeMaintenance} = await import('../service/maintenance.js')
    const useMaintenance = options.maintenance ?? true
    // the pid in the name: a killed run's copy is recognised (its pid is dead) and swept by the next
    const stagingRoot = process.env.CHARGE_OPS_STAGING_DIR ?? tmpdir()
    await sweepDeadStaging(stagingRoot, ctx.logger)
    const staging = await mkdtemp(join(stagingRoot, `${CHROMA_STAGING_PREFIX}${process.pid}-`))
    let hold: import('../service/maintenance.js').MaintenanceHold | undefined
    try {
      if (useMaintenance) {
        // owned by `backup files` also within `backup all`: a rerun of either recognises a dead one's flag
        hold = await takeMaintenance(
          ctx.settings,
          'backup files',
          `backup ${id}: reading the Chroma folder`,
          ctx.logger,
        )
        if (hold.owned) ctx.logger.info('maintenance mode on while the Chroma folder is read')
      }
      const capturedAt = ctx.now().toISOString()
      let collections: Record<string, number> | undefined
      const liveDb = join(dir, CHROMA_SQLITE)
      const hasDb = existsSync(liveDb)
      if (hasDb) {
        const {sqliteOnlineBackup} = await import('./sqlite.js')
        tools.sqlite = await sqliteOnlineBackup(liveDb, join(staging, CHROMA_SQLITE))
        await chmod(join(staging, CHROMA_SQLITE), 0o600) // the knowledge base: not for other users
        await faultPoint('backup.files.chroma-copy')
        const {KNOWLEDGE_COLLECTION} = await import('../chroma/client.js')
        chromaCount = await countChromaSqlite(join(staging, CHROMA_SQLITE), KNOWLEDGE_COLLECTION)
        collections = await chromaCollectionCounts(join(staging, CHROMA_SQLITE))
      }
      const files = await listFiles(dir, (rel) => SQLITE_SIDECARS.includes(rel), {hash: true})
      if (hasDb) files.push(...(await listFiles(staging, undefined, {hash: true})))
      files.sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0))
      const args = [
        ...tarArgs,
        '-C',
        dir,
        '--anchored',
        ...SQLITE_SIDECARS.map((f) => `--exclude=./${f}`),
        '.',
        ...(hasDb ? ['-C', staging, CHROMA_SQLITE] : []),
      ]
      const bytes = files.reduce((s, f) => s + f.size, 0)
      const streamed = await streamProducerToPart(
        ctx,
        id,
        `chroma.tar${suffix}`,
        {file: 'tar', args, purpose: 'tar of the Chroma folder', allowExitCodes: [1]},
        {component: 'chroma', format: 'tar', fileCount: files.length, contentBytes: bytes, capturedAt},
        {label: 'backup chroma', totalBytes: bytes},
      )
      parts.push(streamed.part, await storeFileList(ctx, id, 'chroma.files.json', files))
      section.chromaDir = dir
      section.chroma = {
        fileCount: files.length,
        bytes,
        capturedAt,
        sqliteOnlineBackup: hasDb,
        quiesced: useMaintenance ? 'maintenance mode' : 'none',
        ...(collections ? {collections} : {}),
      }
    } finally {
      await hold
        ?.release()
        .catch((error) =>
          ctx.logger.warn(
            `could not switch maintenance mode off: ${(error as Error).message}; run charge-ops service maintenance off`,
          ),
        )
      await rm(staging, {recursive: true, force: true})
    }
  }

  if (options.uploadsDir) {
    const dir = options.uploadsDir
    if (!existsSync(dir))
      throw new ConfigError(`UPLOADS_DIR ${dir} does not exist`, {
        code: 'UPLOADS_DIR_MISSING',
        hint: 'Fix UPLOADS_DIR in the backend .env.',
      })
    const capturedAt = ctx.now().toISOString()
    uploadFiles = await listFiles(dir, undefined, {hash: true})
    const bytes = uploadFiles.reduce((s, f) => s + f.size, 0)
    const streamed = await streamProducerToPart(
      ctx,
      id,
      `uploads.tar${suffix}`,
      {file: 'tar', args: [...tarArgs, '-C', dir, '.'], purpose: 'tar of the uploads folder', allowExitCodes: [1]},
      {component: 'uploads', format: 'tar', fileCount: uploadFiles.length, contentBytes: bytes, capturedAt},
      {label: 'backup uploads', totalBytes: bytes},
    )
    parts.push(streamed.part, await storeFileList(ctx, id, 'uploads.files.json', uploadFiles))
    section.uploadsDir = dir
    section.uploads = {fileCount: uploadFiles.length, bytes, capturedAt}
  }
  return {parts, section, uploadFiles, chromaCount, tools}
}

export function filesOptionsFrom(ctx: BackupContext, flags: {maintenance?: boolean} = {}): FilesOptions {
  const {uploadsDir, chromaDir} = ctx.settings
  if (!uploadsDir && !chromaDir) {
    throw new ConfigError('neither UPLOADS_DIR nor CHROMA_PERSIST_DIRECTORY is configured: nothing to back up', {
      code: 'CONFIG_MISSING',
      hint: 'Set them in the backend .env (--env-file).',
    })
  }
  return {uploadsDir, chromaDir, maintenance: flags.maintenance}
}

export async function backupFiles(ctx: BackupContext, options: FilesOptions): Promise<BackupManifest> {
  return runBackup(ctx, 'files', 'backup files', async (id) => {
    const files = await captureFiles(ctx, id, options)
    return {parts: files.parts, extra: {files: files.section, tools: files.tools}}
  })
}
