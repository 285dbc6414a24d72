/**
 * Chroma adapter (chromadb v3 client, loaded lazily). The whole API:
 *
 *   chromaClient(url, {timeoutMs?})       → a ChromaClient for http(s)://host:port
 *   chromaHeartbeat(url, {timeoutMs?})    → {nanoseconds} or an UnreachableError naming the cause
 *                                           (refused, DNS, timeout, TLS, not a Chroma server)
 *   collectionCounts(url, {timeoutMs?})   → [{name, id, count}] for every collection
 *   collectionCount(url, name)            → item count of one collection, undefined when absent
 *   collectionIds(url, name)              → every record id of one collection (paged) and the
 *                                           dimension of its vectors; undefined when absent
 *   diagnoseChromaError(error, url)       → UnreachableError (CHROMA_REFUSED | CHROMA_DNS |
 *                                           CHROMA_TIMEOUT | CHROMA_TLS | CHROMA_UNREACHABLE)
 *
 * The knowledge base collection of the service is `charging_knowledge`.
 */
import type {ChromaClient} from 'chromadb'

import {ConfigError, UnreachableError, type ErrorCode} from '../errors.js'

export const KNOWLEDGE_COLLECTION = 'charging_knowledge'

export interface ChromaTarget {
  host: string
  port: number
  ssl: boolean
}

export function parseChromaUrl(url: string): ChromaTarget {
  let parsed: URL
  try {
    parsed = new URL(url)
  } catch {
    throw new ConfigError('CHROMA_URL is not a valid URL', {hint: 'Use http://HOST:8000'})
  }
  if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:')
    throw new ConfigError(`CHROMA_URL must be http:// or https://, not ${parsed.protocol}//`, {
      hint: 'Use http://HOST:8000',
    })
  const ssl = parsed.protocol === 'https:'
  return {host: parsed.hostname.replace(/^\[|\]$/g, ''), port: parsed.port ? Number(parsed.port) : ssl ? 443 : 80, ssl}
}

export async function chromaClient(url: string, options: {timeoutMs?: number} = {}): Promise<ChromaClient> {
  const target = parseChromaUrl(url)
  const {ChromaClient} = await import('chromadb')
  return new ChromaClient({
    host: target.host,
    port: target.port,
    ssl: target.ssl,
    ...(options.timeoutMs ? {fetchOptions: {signal: AbortSignal.timeout(options.timeoutMs)}} : {}),
  })
}

export async function chromaHeartbeat(url: string, options: {timeoutMs?: number} = {}): Promise<{nanoseconds: number}> {
  const target = parseChromaUrl(url)
  // A plain fetch (not the chromadb client): it keeps the socket error (ECONNREFUSED, ENOTFOUND …)
  // that the client replaces with a generic message, and needs no heavy import.
  const base = `${target.ssl ? 'https' : 'http'}://${target.host.includes(':') ? `[${target.host}]` : target.host}:${target.port}`
  let response: Response
  try {
    response = await fetch(`${base}/api/v2/heartbeat`, {signal: AbortSignal.timeout(options.timeoutMs ?? 5000)})
  } catch (error) {
    throw diagnoseChromaError(error, target)
  }
  if (response.status === 401 || response.status === 403)
    throw diagnoseChromaError(new Error(`HTTP ${response.status} unauthorized`), target)
  const body = (await response.json().catch(() => ({}))) as Record<string, unknown>
  const nanoseconds = body['nanosecond heartbeat']
  if (!response.ok || typeof nanoseconds !== 'number') {
    throw new UnreachableError(`${base} answered HTTP ${response.status} but is not a Chroma server (API v2)`, {
      code: 'CHROMA_UNREACHABLE',
      hint: 'Point CHROMA_URL at the Chroma server (chroma run, port 8000 by default).',
      data: {host: target.host, port: target.port},
    })
  }
  return {nanoseconds}
}

export interface CollectionCount {
  name: string
  id: string
  count: number
}

export async function collectionCounts(url: string, options: {timeoutMs?: number} = {}): Promise<CollectionCount[]> {
  const target = parseChromaUrl(url)
  try {
    const client = await chromaClient(url, {timeoutMs: options.timeoutMs ?? 30_000})
    const out: CollectionCount[] = []
    for (let offset = 0; ; offset += 100) {
      const page = await client.listCollections({limit: 100, offset})
      for (const collection of page)
        out.push({name: collection.name, id: collection.id, count: await collection.count()})
      if (page.length < 100) break
    }
    return out
  } catch (error) {
    // the client hides the socket error: probe with a heartbeat to name the cause
    await chromaHeartbeat(url, {timeoutMs: 5000})
    throw diagnoseChromaError(error, target)
  }
}

export async function collectionCount(
  url: string,
  name: string,
  options: {timeoutMs?: number} = {},
): Promise<number | undefined> {
  return (await collectionCounts(url, options)).find((c) => c.name === name)?.count
}

export interface CollectionIds {
  id: string
  ids: Set<string>
  /** length of the stored vectors (from one record), null when the collection is empty */
  dimension: number | null
}

export async function collectionIds(
  url: string,
  name: string,
  options: {timeoutMs?: number; pageSize?: number} = {},
): Promise<CollectionIds | undefined> {
  const target = parseChromaUrl(url)
  const pageSize = options.pageSize ?? 1000
  try {
    const client = await chromaClient(url, {timeoutMs: options.timeoutMs ?? 60_000})
    let collection
    try {
      collection = await client.getCollection({name})
    } catch (error) {
      if (
        (error as {name?: string}).name === 'ChromaNotFoundError' ||
        /does not exist|not found/i.test((error as Error).message)
      )
        return undefined
      throw error
    }
    const ids = new Set<string>()
    for (let offset = 0; ; offset += pageSize) {
      const page = await collection.get({limit: pageSize, offset, include: []})
      for (const id of page.ids) ids.add(id)
      if (page.ids.length < pageSize) break
    }
    let dimension: number | null = null
    if (ids.size > 0) {
      const one = await collection.get({limit: 1, include: ['embeddings']})
      dimension = one.embeddings?.[0]?.length ?? null
    }
    return {id: collection.id, ids, dimension}
  } catch (error) {
    await chromaHeartbeat(url, {timeoutMs: 5000})
    throw diagnoseChromaError(error, target)
  }
}

function causeChain(error: unknown): Array<{code?: string; message?: string; name?: string}> {
  const chain: Array<{code?: string; message?: string; name?: string}> = []
  let current = error as {cause?: unknown} | undefined
  for (let i = 0; current && i < 6; i++) {
    chain.push(current as {code?: string; message?: string})
    current = (current as {cause?: unknown}).cause as typeof current
  }
  return chain
}

export function diagnoseChromaError(error: unknown, target: ChromaTarget): UnreachableError {
  if (error instanceof UnreachableError) return error
  const chain = causeChain(error)
  const codes = chain.map((e) => e.code ?? '')
  const text = chain.map((e) => `${e.name ?? ''} ${e.message ?? ''}`).join(' | ')
  const where = `${target.ssl ? 'https' : 'http'}://${target.host}:${target.port}`
  const make = (code: ErrorCode, message: string, hint: string) =>
    new UnreachableError(message, {code, hint, cause: error, data: {host: target.host, port: target.port}})
  if (codes.includes('ECONNREFUSED'))
    return make(
      'CHROMA_REFUSED',
      `Chroma at ${where} refused the connection`,
      'Is the Chroma server running on that host and port?',
    )
  if (codes.includes('ENOTFOUND') || codes.includes('EAI_AGAIN'))
    return make(
      'CHROMA_DNS',
      `Chroma host "${target.host}" does not resolve (DNS)`,
      'Check the host name in CHROMA_URL.',
    )
  if (
    codes.some((c) => /^ERR_TLS|^ERR_SSL|CERT|EPROTO/.test(c)) ||
    /SSL|TLS|certificate|wrong version number/i.test(text)
  ) {
    return make(
      'CHROMA_TLS',
      `TLS with Chroma at ${where} failed`,
      target.ssl
        ? 'The server may not serve https on this port: try http://, or fix the certificate.'
        : 'The server expects https://',
    )
  }
  if (
    codes.includes('ETIMEDOUT') ||
    codes.includes('UND_ERR_CONNECT_TIMEOUT') ||
    /TimeoutError|aborted|timed? ?out/i.test(text)
  )
    return make(
      'CHROMA_TIMEOUT',
      `Chroma at ${where} did not answer in time`,
      'Check the network path and that the server is up.',
    )
  if (/401|403|unauthori[sz]ed|forbidden/i.test(text))
    return make(
      'CHROMA_AUTH',
      `Chroma at ${where} refused the request (authentication)`,
      'Configure the Chroma token the server expects.',
    )
  return make(
    'CHROMA_UNREACHABLE',
    `cannot use Chroma at ${where}: ${chain[0]?.message ?? String(error)}`,
    'Check CHROMA_URL and that a Chroma server (API v2) listens there.',
  )
}
