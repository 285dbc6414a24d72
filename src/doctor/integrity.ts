/**
 * Cross-store integrity: uploads referenced by PostgreSQL vs files in UPLOADS_DIR, knowledge
 * passages in PostgreSQL vs vectors in Chroma (both directions), embedding dimensions.
 * Tables from service/migrations (uploads, knowledge_passages); when they are absent the check is
 * skipped with the reason.
 */
import {measure, unknown} from '../capacity/check-kit.js'
import {walkFiles} from '../core/fs/system.js'
import type {CheckContext, CheckResult} from '../capacity/types.js'

/** Files younger than this may be an upload whose row is not committed yet. */
const IN_FLIGHT_MS = 10 * 60_000
const SAMPLE = 5

/** Files under the uploads root (dot-names are temp files of uploads in progress), and which of them are too young to judge. */
export async function listFiles(
  root: string,
  now: Date,
): Promise<{files: Set<string>; young: Set<string>; inFlight: number}> {
  const files = new Set<string>()
  const young = new Set<string>()
  await walkFiles(
    root,
    (f) => {
      files.add(f.rel)
      if (now.getTime() - f.mtimeMs < IN_FLIGHT_MS) young.add(f.rel)
    },
    {skipName: (name) => name.startsWith('.')},
  )
  return {files, young, inFlight: young.size}
}

async function tableExists(ctx: CheckContext, table: string): Promise<boolean> {
  const {rows} = await ctx.pg!.query<{t: string | null}>('SELECT to_regclass($1)::text AS t', [table])
  return rows[0].t !== null
}

const sample = (items: string[]) =>
  items.slice(0, SAMPLE).join(', ') + (items.length > SAMPLE ? ` … (${items.length - SAMPLE} more)` : '')

export async function uploadsIntegrity(ctx: CheckContext): Promise<CheckResult[]> {
  const C = 'integrity'
  if (!ctx.pg) return [unknown(C, 'integrity.uploads', 'Uploads vs database', 'skipped: PostgreSQL is not reachable')]
  if (!ctx.settings.uploadsDir)
    return [
      unknown(
        C,
        'integrity.uploads',
        'Uploads vs database',
        'skipped: UPLOADS_DIR is not set',
        'Set UPLOADS_DIR in the backend .env.',
      ),
    ]
  if (!(await tableExists(ctx, 'public.uploads')))
    return [
      unknown(
        C,
        'integrity.uploads',
        'Uploads vs database',
        'skipped: table uploads does not exist yet',
        'Run `charge-ops migrate up`.',
      ),
    ]
  const {rows} = await ctx.pg.query<{path: string; uploaded_at: Date}>('SELECT path, uploaded_at FROM uploads')
  let disk: Awaited<ReturnType<typeof listFiles>>
  try {
    disk = await listFiles(ctx.settings.uploadsDir, ctx.now)
  } catch (error) {
    return [
      measure(ctx, {
        id: 'integrity.uploads_missing',
        component: C,
        title: 'Uploads referenced by the database but missing on disk',
        value: rows.length,
        unit: 'count',
        status: rows.length > 0 ? 'critical' : 'warning',
        message: `cannot read UPLOADS_DIR ${ctx.settings.uploadsDir}: ${(error as Error).message}`,
        remedy: 'Mount the uploads volume / fix UPLOADS_DIR; restore it with `charge-ops restore files` if it is lost.',
      }),
    ]
  }
  const referenced = new Set(rows.map((r) => r.path.replace(/^\/+/, '')))
  // a row or file younger than IN_FLIGHT_MS may belong to an upload in progress: not judged
  const young = new Set(
    rows
      .filter((r) => ctx.now.getTime() - new Date(r.uploaded_at).getTime() < IN_FLIGHT_MS)
      .map((r) => r.path.replace(/^\/+/, '')),
  )
  const missing = [...referenced].filter((p) => !disk.files.has(p) && !young.has(p)).sort()
  const orphans = [...disk.files].filter((f) => !referenced.has(f) && !disk.young.has(f)).sort()
  return [
    measure(ctx, {
      id: 'integrity.uploads_missing',
      component: C,
      title: 'Uploads referenced by the database but missing on disk',
      value: missing.length,
      unit: 'count',
      status: missing.length > 0 ? 'critical' : 'ok',
      message:
        missing.length === 0
          ? `all ${referenced.size} uploads referenced by the database are on disk`
          : `${missing.length} of ${referenced.size} uploads are missing from ${ctx.settings.uploadsDir}: ${sample(missing)}`,
      remedy:
        'Restore them from the newest files backup (`charge-ops restore files --only uploads`), or delete the rows of uploads that are truly gone.',
      details: {missing},
    }),
    measure(ctx, {
      id: 'integrity.uploads_orphan',
      component: C,
      title: 'Upload files no row references',
      value: orphans.length,
      unit: 'count',
      status: orphans.length > 0 ? 'warning' : 'ok',
      message:
        orphans.length === 0
          ? `no orphan files (${disk.files.size} files${disk.inFlight ? `, ${disk.inFlight} younger than 10 min not judged` : ''})`
          : `${orphans.length} files in ${ctx.settings.uploadsDir} are not referenced by the uploads table: ${sample(orphans)}`,
      remedy:
        'Usually left by a failed upload or a restore of the files without the database: check them, then move them out of UPLOADS_DIR.',
      details: {orphans},
    }),
  ]
}

export async function knowledgeIntegrity(
  ctx: CheckContext,
  collectionName = 'charging_knowledge',
): Promise<CheckResult[]> {
  const C = 'integrity'
  const id = 'integrity.passages_without_vectors'
  const title = 'Knowledge passages in PostgreSQL vs vectors in Chroma'
  if (!ctx.pg) return [unknown(C, id, title, 'skipped: PostgreSQL is not reachable')]
  if (!ctx.settings.chromaUrl)
    return [unknown(C, id, title, 'skipped: CHROMA_URL is not set', 'Set CHROMA_URL in the backend .env.')]
  if (!(await tableExists(ctx, 'public.knowledge_passages')))
    return [
      unknown(C, id, title, 'skipped: table knowledge_passages does not exist yet', 'Run `charge-ops migrate up`.'),
    ]
  const {rows} = await ctx.pg.query<{chroma_id: string; embedding_dim: number; embedding_model: string}>(
    'SELECT chroma_id, embedding_dim, embedding_model FROM knowledge_passages',
  )
  const {collectionIds} = await import('../chroma/client.js')
  let chroma: Awaited<ReturnType<typeof collectionIds>>
  try {
    chroma = await collectionIds(ctx.settings.chromaUrl, collectionName)
  } catch (error) {
    return [
      unknown(
        C,
        id,
        title,
        `skipped: Chroma is not usable: ${(error as Error).message}`,
        (error as {hint?: string}).hint,
      ),
    ]
  }
  const inPg = new Set(rows.map((r) => r.chroma_id))
  if (!chroma) {
    return [
      measure(ctx, {
        id,
        component: C,
        title,
        value: inPg.size,
        unit: 'count',
        status: inPg.size > 0 ? 'critical' : 'ok',
        message:
          inPg.size > 0
            ? `Chroma has no collection ${collectionName} but PostgreSQL has ${inPg.size} passages`
            : `no passages and no ${collectionName} collection yet`,
        remedy:
          'Restore the Chroma persist directory from the newest files backup (`charge-ops restore files --only chroma`), or re-embed the knowledge base.',
      }),
    ]
  }
  const withoutVectors = [...inPg].filter((x) => !chroma.ids.has(x)).sort()
  const withoutPassages = [...chroma.ids].filter((x) => !inPg.has(x)).sort()
  const dims = [...new Set(rows.map((r) => r.embedding_dim))].sort((a, b) => a - b)
  const dimMismatch = (chroma.dimension !== null && dims.some((d) => d !== chroma.dimension)) || dims.length > 1
  return [
    measure(ctx, {
      id,
      component: C,
      title: 'Knowledge passages without vectors in Chroma',
      value: withoutVectors.length,
      unit: 'count',
      status: withoutVectors.length > 0 ? 'critical' : 'ok',
      message:
        withoutVectors.length === 0
          ? `all ${inPg.size} passages have vectors in ${collectionName}`
          : `${withoutVectors.length} of ${inPg.size} passages have no vector in ${collectionName}: ${sample(withoutVectors)}`,
      remedy:
        'Restore Chroma and PostgreSQL from the same `backup all`, or re-embed those passages (the service re-ingests a document when it is uploaded again).',
      details: {ids: withoutVectors},
    }),
    measure(ctx, {
      id: 'integrity.vectors_without_passages',
      component: C,
      title: 'Vectors in Chroma without a passage in PostgreSQL',
      value: withoutPassages.length,
      unit: 'count',
      status: withoutPassages.length > 0 ? 'warning' : 'ok',
      message:
        withoutPassages.length === 0
          ? `every vector of ${collectionName} (${chroma.ids.size}) has its passage`
          : `${withoutPassages.length} vectors in ${collectionName} have no passage row: ${sample(withoutPassages)}`,
      remedy:
        'Left by a document deleted from PostgreSQL only, or by restoring one store without the other: delete those ids from the collection, or restore both from one `backup all`.',
      details: {ids: withoutPassages},
    }),
    measure(ctx, {
      id: 'integrity.embedding_dimension',
      component: C,
      title: 'Embedding dimension mismatches',
      value: dimMismatch ? 1 : 0,
      unit: 'bool',
      status: dimMismatch ? 'critical' : 'ok',
      message: dimMismatch
        ? `passages record dimension ${dims.join(' / ')} (${[...new Set(rows.map((r) => r.embedding_model))].join(', ')}) but ${collectionName} holds ${chroma.dimension ?? '?'}-dimensional vectors`
        : `dimension ${chroma.dimension ?? dims[0] ?? 'n/a'} everywhere`,
      remedy:
        'The embedding model changed (BGE_MODEL_NAME): re-embed the whole knowledge base into a new collection with the new model; queries against mixed dimensions fail.',
    }),
  ]
}
