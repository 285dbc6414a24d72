/**
 * `backup all`: database + files under one backup id (the guide's nightly pair), captured
 * concurrently so the skew between the components is small, and checked across stores before the
 * manifest is written:
 *  - every upload the database references (uploads.path, read in the dump's own snapshot) is in
 *    the uploads part; missing ones and orphan files are listed;
 *  - Chroma's record count for `charging_knowledge` (counted in the backed-up chroma.sqlite3, or
 *    through CHROMA_URL) matches the knowledge passages in PostgreSQL (same snapshot).
 * Findings do not stop the backup (it is still the best copy there is) but are recorded in the
 * manifest's `consistency` section, printed as warnings, and make the command exit 1.
 */
import type {Client} from 'pg'

import {requireSetting} from '../config/settings.js'
import type {BackupManifest, BackupManifestInput} from '../repository/manifest.js'
import {parseDatabaseUrl} from '../postgres/connection.js'
import {runBackup, type BackupContext} from './context.js'
import {captureDatabase} from './db.js'
import {captureFiles, type FilesOptions} from './files.js'

export interface SnapshotFacts {
  uploadPaths: string[] | null
  knowledgePassages: number | null
}

/** Reads, in the dump's snapshot, what the cross-store check needs (tolerating absent tables). */
export async function snapshotFacts(client: Client, rowCounts: Record<string, number>): Promise<SnapshotFacts> {
  const uploadPaths =
    'public.uploads' in rowCounts
      ? (await client.query<{path: string}>('SELECT path FROM public.uploads ORDER BY path')).rows.map((r) => r.path)
      : null
  const knowledgePassages = rowCounts['public.knowledge_passages'] ?? null
  return {uploadPaths, knowledgePassages}
}

export type Consistency = NonNullable<BackupManifestInput['consistency']>

/** Pure: compares the referenced uploads with the files captured, and Chroma with PostgreSQL. */
export function crossStoreCheck(input: {
  referenced: string[] | null
  files: string[] | null
  chromaRecords: number | null | undefined
  knowledgePassages: number | null
  collection: string
}): Pick<Consistency, 'ok' | 'missingUploads' | 'orphanUploads' | 'chroma' | 'notes'> {
  const notes: string[] = []
  let missingUploads: string[] = []
  let orphanUploads: string[] = []
  const norm = (p: string) => p.replace(/^\.\//, '').replace(/^\/+/, '')
  if (input.referenced === null) notes.push('the database has no uploads table: upload references not checked')
  else if (input.files === null) notes.push('UPLOADS_DIR is not configured: upload references not checked')
  else {
    const files = new Set(input.files.map(norm))
    const referenced = new Set(input.referenced.map(norm))
    missingUploads = [...referenced].filter((p) => !files.has(p)).sort()
    orphanUploads = [...files].filter((p) => !referenced.has(p)).sort()
  }
  let chroma: Consistency['chroma']
  if (input.chromaRecords === undefined) notes.push('CHROMA_PERSIST_DIRECTORY is not configured: Chroma not checked')
  else {
    const ok =
      input.chromaRecords !== null &&
      input.knowledgePassages !== null &&
      input.chromaRecords === input.knowledgePassages
    chroma = {
      collection: input.collection,
      records: input.chromaRecords,
      expected: input.knowledgePassages,
      ok: input.knowledgePassages === null && (input.chromaRecords ?? 0) === 0 ? true : ok,
      ...(input.chromaRecords === null ? {note: 'the collection could not be counted in the Chroma copy'} : {}),
    }
  }
  const ok = missingUploads.length === 0 && (chroma?.ok ?? true)
  return {ok, missingUploads, orphanUploads, chroma, notes}
}

function skew(times: (string | undefined)[]): number {
  const ms = times.filter((t): t is string => Boolean(t)).map((t) => Date.parse(t))
  return ms.length < 2 ? 0 : Math.max(...ms) - Math.min(...ms)
}

export async function backupAll(ctx: BackupContext, options: FilesOptions & {jobs?: number}): Promise<BackupManifest> {
  const url = requireSetting(
    ctx.settings.databaseUrl,
    'DATABASE_URL',
    'Set DATABASE_URL in the backend .env (--env-file) or the environment.',
  )
  parseDatabaseUrl(url) // a malformed URL is exit 2 before a backup id is announced
  return runBackup(ctx, 'all', 'backup all', async (id) => {
    const [db, files] = await Promise.all([
      captureDatabase(ctx, id, url, {jobs: options.jobs, inSnapshot: snapshotFacts}),
      captureFiles(ctx, id, options),
    ])
    const {KNOWLEDGE_COLLECTION} = await import('../chroma/client.js')
    let chromaRecords = files.chromaCount
    if (files.section.chroma && chromaRecords === null && ctx.settings.chromaUrl) {
      const {collectionCount} = await import('../chroma/client.js')
      chromaRecords =
        (await collectionCount(ctx.settings.chromaUrl, KNOWLEDGE_COLLECTION).catch(() => undefined)) ?? null
    }
    const check = crossStoreCheck({
      referenced: db.snapshotExtra?.uploadPaths ?? null,
      files: files.uploadFiles ? files.uploadFiles.map((f) => f.path) : null,
      chromaRecords: files.section.chroma ? chromaRecords : undefined,
      knowledgePassages: db.snapshotExtra?.knowledgePassages ?? null,
      collection: KNOWLEDGE_COLLECTION,
    })
    const consistency: Consistency = {
      dbSnapshotAt: db.section.snapshotAt,
      dbLsn: db.section.lsn,
      uploadsCapturedAt: files.section.uploads?.capturedAt,
      chromaCapturedAt: files.section.chroma?.capturedAt,
      skewMs: skew([db.section.snapshotAt, files.section.uploads?.capturedAt, files.section.chroma?.capturedAt]),
      ...check,
    }
    if (!check.ok) ctx.logger.warn(`cross-store check found problems: ${describeConsistency(consistency)}`)
    return {
      parts: [db.part, ...files.parts],
      extra: {
        db: db.section,
        files: files.section,
        consistency,
        migrationHead: db.migrationHead,
        serviceVersion: db.serviceVersion,
        postgresVersion: db.postgresVersion,
        tools: {...db.tools, ...files.tools},
      },
    }
  })
}

export function describeConsistency(consistency: Consistency): string {
  const c = {
    ...consistency,
    missingUploads: consistency.missingUploads ?? [],
    orphanUploads: consistency.orphanUploads ?? [],
  }
  const parts: string[] = []
  if (c.missingUploads.length > 0)
    parts.push(
      `${c.missingUploads.length} upload(s) referenced by the database are missing from the files part (${c.missingUploads.slice(0, 5).join(', ')}${c.missingUploads.length > 5 ? ', …' : ''})`,
    )
  if (c.orphanUploads.length > 0)
    parts.push(
      `${c.orphanUploads.length} orphan file(s) not referenced by the database (${c.orphanUploads.slice(0, 5).join(', ')}${c.orphanUploads.length > 5 ? ', …' : ''})`,
    )
  if (c.chroma && !c.chroma.ok)
    parts.push(
      `Chroma collection ${c.chroma.collection} holds ${c.chroma.records ?? '?'} records but PostgreSQL has ${c.chroma.expected ?? '?'} knowledge passages`,
    )
  return parts.join('; ') || 'ok'
}
