/**
 * The production options of the service: an OpenAI-compatible embeddings endpoint (what serves
 * BAAI/bge-base-zh-v1.5 in production) and an OpenAI-compatible chat endpoint for the summary.
 * A small local HTTP server stands in for them here (they are not among the stores the tests must
 * run for real); PostgreSQL, Redis and Chroma are real.
 */
import {createServer, type Server} from 'node:http'
import path from 'node:path'

import {afterAll, beforeAll, describe, expect, it} from 'vitest'

import {startServiceUnderTest, type ServiceUnderTest} from './service-harness.js'

const DIM = 16
const requests: Array<{path: string; body: any; auth?: string}> = []
let server: Server
let sut: ServiceUnderTest

/** bag-of-letters embedding: texts sharing letters are near, enough for a nearest-neighbour check */
function embed(text: string): number[] {
  const v = new Array(DIM).fill(0)
  for (const ch of text.toLowerCase()) if (ch >= 'a' && ch <= 'z') v[(ch.charCodeAt(0) - 97) % DIM] += 1
  const n = Math.hypot(...v) || 1
  return v.map((x) => x / n)
}

beforeAll(async () => {
  server = createServer((req, res) => {
    let raw = ''
    req.on('data', (d) => (raw += d))
    req.on('end', () => {
      const body = JSON.parse(raw || '{}')
      requests.push({path: req.url ?? '', body, auth: req.headers.authorization})
      res.setHeader('content-type', 'application/json')
      if (req.url === '/v1/embeddings') {
        res.end(
          JSON.stringify({
            data: (body.input as string[]).map((t, index) => ({index, embedding: embed(t)})),
            model: body.model,
          }),
        )
      } else if (req.url === '/v1/chat/completions') {
        res.end(
          JSON.stringify({
            choices: [{message: {content: 'LLM summary: the pack overheated and the charger derated.'}}],
          }),
        )
      } else {
        res.statusCode = 404
        res.end('{}')
      }
    })
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const port = (server.address() as {port: number}).port
  sut = await startServiceUnderTest({
    name: 'embeddings',
    env: {
      EMBEDDINGS_URL: `http://127.0.0.1:${port}/v1`,
      EMBEDDINGS_MODEL: 'BAAI/bge-base-zh-v1.5',
      EMBEDDINGS_API_KEY: 'sk-test-embeddings-key',
      LLM_URL: `http://127.0.0.1:${port}/v1`,
      LLM_MODEL: 'test-chat',
    },
  })
  await sut.startApi()
  await sut.startWorker()
}, 120_000)

afterAll(async () => {
  await sut?.stopAll()
  server?.close()
})

describe('service with OpenAI-compatible endpoints', () => {
  it('embeds knowledge through EMBEDDINGS_URL and records the model and dimension', async () => {
    const created = await sut.request('POST', '/api/v1/knowledge', {
      documents: [
        {title: 'Cooling', text: 'coolant pump failure raises the battery temperature'},
        {title: 'Grid', text: 'xyz qvw'},
      ],
    })
    expect(created.status).toBe(201)
    const rows = await sut.query<{embedding_model: string; embedding_dim: number}>(
      'SELECT DISTINCT embedding_model, embedding_dim FROM knowledge_passages',
    )
    expect(rows).toEqual([{embedding_model: 'BAAI/bge-base-zh-v1.5', embedding_dim: DIM}])
    const call = requests.find((r) => r.path === '/v1/embeddings')!
    expect(call.body.model).toBe('BAAI/bge-base-zh-v1.5')
    expect(call.auth).toBe('Bearer sk-test-embeddings-key')
    const search = await sut.request(
      'GET',
      `/api/v1/knowledge/search?q=${encodeURIComponent('battery coolant temperature')}`,
    )
    expect(search.body.results[0].title).toBe('Cooling')
  })

  it('writes the LLM summary when LLM_URL is set, and never logs the API key', async () => {
    const up = await sut.uploadFile(path.join(import.meta.dirname, '../../service/sample/session-02-overheat.csv'))
    const analysis = await sut.waitForAnalysis(up.body.analysisId)
    expect(analysis.status).toBe('done')
    expect(analysis.summary).toBe('LLM summary: the pack overheated and the charger derated.')
    const chat = requests.find((r) => r.path === '/v1/chat/completions')!
    expect(chat.body.model).toBe('test-chat')
    expect(JSON.parse(chat.body.messages[1].content).metrics.samples).toBe(612)
    const fs = await import('node:fs')
    expect(fs.readFileSync(path.join(sut.env.LOG_DIR!, 'app.log'), 'utf8')).not.toContain('sk-test-embeddings-key')
  })
})
