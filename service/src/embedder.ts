/**
 * Text embeddings. The default is a local, deterministic embedder (hashed bag of words and
 * character 3-grams, 384 dimensions, L2-normalised): no model, no network, stable across runs, good
 * enough to retrieve passages that share vocabulary with the query. Production points
 * EMBEDDINGS_URL at an OpenAI-compatible /embeddings endpoint serving BAAI/bge-base-zh-v1.5.
 */
export interface Embedder {
  readonly model: string
  readonly dimension: number
  embed(texts: string[]): Promise<number[][]>
}

export const LOCAL_DIMENSION = 384
export const LOCAL_MODEL = 'charge-ops-hash-ngram-384'

function fnv1a(text: string): number {
  let h = 0x811c9dc5
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i)
    h = Math.imul(h, 0x01000193)
  }
  return h >>> 0
}

function add(vector: Float64Array, feature: string, weight: number): void {
  const h = fnv1a(feature)
  vector[h % LOCAL_DIMENSION]! += (h & 0x80000000 ? -1 : 1) * weight
}

export function embedLocal(text: string): number[] {
  const vector = new Float64Array(LOCAL_DIMENSION)
  const normalised = text.toLowerCase().normalize('NFKC')
  const words = normalised.split(/[^\p{L}\p{N}]+/u).filter((w) => w.length > 1)
  for (const word of words) {
    add(vector, `w:${word}`, 2)
    // a crude stem so that "derating" meets "derate" and "temperatures" meets "temperature"
    if (word.length > 5) add(vector, `s:${word.slice(0, 5)}`, 1)
  }
  const compact = normalised.replace(/\s+/g, ' ')
  for (let i = 0; i + 3 <= compact.length; i++) add(vector, `c:${compact.slice(i, i + 3)}`, 0.5)
  let norm = 0
  for (const v of vector) norm += v * v
  norm = Math.sqrt(norm) || 1
  return Array.from(vector, (v) => v / norm)
}

export class LocalEmbedder implements Embedder {
  readonly model = LOCAL_MODEL
  readonly dimension = LOCAL_DIMENSION
  async embed(texts: string[]): Promise<number[][]> {
    return texts.map(embedLocal)
  }
}

/** An OpenAI-compatible embeddings endpoint (e.g. text-embeddings-inference serving BGE). */
export class RemoteEmbedder implements Embedder {
  dimension = 0
  constructor(
    readonly url: string,
    readonly model: string,
    private readonly apiKey?: string,
  ) {}

  async embed(texts: string[]): Promise<number[][]> {
    const response = await fetch(`${this.url.replace(/\/$/, '')}/embeddings`, {
      method: 'POST',
      headers: {'content-type': 'application/json', ...(this.apiKey ? {authorization: `Bearer ${this.apiKey}`} : {})},
      body: JSON.stringify({model: this.model, input: texts}),
      signal: AbortSignal.timeout(30_000),
    })
    if (!response.ok) throw new Error(`embeddings endpoint answered ${response.status} ${response.statusText}`)
    const body = (await response.json()) as {data: Array<{embedding: number[]; index: number}>}
    const vectors = [...body.data].sort((a, b) => a.index - b.index).map((d) => d.embedding)
    this.dimension = vectors[0]?.length ?? 0
    return vectors
  }
}

export function createEmbedder(config: {
  embeddingsUrl?: string
  embeddingsModel: string
  embeddingsApiKey?: string
}): Embedder {
  return config.embeddingsUrl
    ? new RemoteEmbedder(config.embeddingsUrl, config.embeddingsModel, config.embeddingsApiKey)
    : new LocalEmbedder()
}
