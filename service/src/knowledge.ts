/**
 * The knowledge base: documents are chunked into passages, recorded in PostgreSQL
 * (knowledge_documents / knowledge_passages) and embedded into the Chroma collection
 * `charging_knowledge` with explicit embeddings. Chroma ids are derived from the document's
 * sha256, so re-posting a document (or retrying after a crash) upserts the same ids.
 */
import {createHash} from 'node:crypto'

import type {ChromaClient, Collection} from 'chromadb'

import {inTransaction, type Pool} from './db.js'
import type {Embedder} from './embedder.js'

export const COLLECTION_NAME = 'charging_knowledge'
export const MAX_PASSAGE_CHARS = 700

export interface KnowledgeStore {
  client: ChromaClient
  collection(): Promise<Collection>
}

export async function createKnowledgeStore(chromaUrl: string, name = COLLECTION_NAME): Promise<KnowledgeStore> {
  const {ChromaClient} = await import('chromadb')
  const url = new URL(chromaUrl)
  const client = new ChromaClient({
    host: url.hostname,
    port: Number(url.port || (url.protocol === 'https:' ? 443 : 8000)),
    ssl: url.protocol === 'https:',
  })
  let cached: Collection | undefined
  return {
    client,
    async collection() {
      cached ??= await client.getOrCreateCollection({
        name,
        metadata: {description: '充电业务知识库'},
        embeddingFunction: null,
        configuration: {hnsw: {space: 'cosine'}},
      })
      return cached
    },
  }
}

/** Splits on blank lines, packs paragraphs up to MAX_PASSAGE_CHARS, splits longer ones at sentence ends. */
export function chunkText(text: string, max = MAX_PASSAGE_CHARS): string[] {
  const paragraphs = text
    .replace(/\r\n/g, '\n')
    .split(/\n\s*\n/)
    .map((p) => p.trim())
    .filter(Boolean)
  const pieces: string[] = []
  for (const p of paragraphs) {
    if (p.length <= max) {
      pieces.push(p)
      continue
    }
    let current = ''
    for (const sentence of p.split(/(?<=[.!?。！？])\s*/)) {
      if (current && current.length + sentence.length + 1 > max) {
        pieces.push(current)
        current = ''
      }
      current = current ? `${current} ${sentence}` : sentence
      while (current.length > max) {
        pieces.push(current.slice(0, max))
        current = current.slice(max)
      }
    }
    if (current) pieces.push(current)
  }
  const out: string[] = []
  let acc = ''
  for (const piece of pieces) {
    if (acc && acc.length + piece.length + 2 > max) {
      out.push(acc)
      acc = ''
    }
    acc = acc ? `${acc}\n\n${piece}` : piece
  }
  if (acc) out.push(acc)
  return out
}

export interface DocumentInput {
  title: string
  text: string
  source?: string
}

export interface AddedDocument {
  documentId: string
  title: string
  passages: number
  created: boolean
}

export async function addDocument(
  pool: Pool,
  store: KnowledgeStore,
  embedder: Embedder,
  doc: DocumentInput,
): Promise<AddedDocument> {
  const sha256 = createHash('sha256').update(doc.title).update('\0').update(doc.text).digest('hex')
  const chunks = chunkText(doc.text)
  if (chunks.length === 0) throw new Error('the document has no text')
  const vectors = await embedder.embed(chunks.map((c) => `${doc.title}\n${c}`))
  const collection = await store.collection()
  return inTransaction(pool, async (client) => {
    const inserted = await client.query<{id: string}>(
      `INSERT INTO knowledge_documents (title, source, sha256) VALUES ($1, $2, $3) ON CONFLICT (sha256) DO NOTHING RETURNING id::text`,
      [doc.title, doc.source ?? null, sha256],
    )
    let documentId = inserted.rows[0]?.id
    const created = documentId !== undefined
    if (!documentId) {
      documentId = (
        await client.query<{id: string}>(`SELECT id::text FROM knowledge_documents WHERE sha256 = $1`, [sha256])
      ).rows[0]!.id
    }
    const ids = chunks.map((_, i) => `${sha256.slice(0, 24)}-${i}`)
    await client.query(
      `INSERT INTO knowledge_passages (document_id, ordinal, content, embedding_model, embedding_dim, chroma_id)
       SELECT $1, o, c, $4, $5, cid FROM unnest($2::text[], $3::text[]) WITH ORDINALITY AS t(c, cid, o)
       ON CONFLICT (chroma_id) DO NOTHING`,
      [documentId, chunks, ids, embedder.model, vectors[0]!.length],
    )
    // Inside the transaction: if Chroma refuses, PostgreSQL rolls back and the two stay equal.
    await collection.upsert({
      ids,
      embeddings: vectors,
      documents: chunks,
      metadatas: chunks.map((_, i) => ({document_id: documentId!, title: doc.title, ordinal: i + 1})),
    })
    return {documentId, title: doc.title, passages: chunks.length, created}
  })
}

export interface PassageHit {
  passageId: string
  documentId: string
  title: string
  content: string
  distance: number
}

export async function searchKnowledge(
  pool: Pool,
  store: KnowledgeStore,
  embedder: Embedder,
  query: string,
  limit = 5,
): Promise<PassageHit[]> {
  const [vector] = await embedder.embed([query])
  const collection = await store.collection()
  const result = await collection.query({queryEmbeddings: [vector!], nResults: limit, include: ['distances'] as never})
  const ids = result.ids[0] ?? []
  const distances = result.distances?.[0] ?? []
  if (ids.length === 0) return []
  const {rows} = await pool.query<{chroma_id: string; id: string; document_id: string; title: string; content: string}>(
    `SELECT p.chroma_id, p.id::text, p.document_id::text, d.title, p.content
       FROM knowledge_passages p JOIN knowledge_documents d ON d.id = p.document_id
      WHERE p.chroma_id = ANY($1)`,
    [ids],
  )
  const byId = new Map(rows.map((r) => [r.chroma_id, r]))
  const hits: PassageHit[] = []
  ids.forEach((id, i) => {
    const row = byId.get(id)
    if (row)
      hits.push({
        passageId: row.id,
        documentId: row.document_id,
        title: row.title,
        content: row.content,
        distance: Number(distances[i] ?? 0),
      })
  })
  return hits
}
