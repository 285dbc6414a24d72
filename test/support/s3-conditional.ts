/**
 * A thin HTTP proxy in front of an S3 server (s3rver) that answers conditional puts the way AWS
 * S3 documents them, for the tests of charge-ops' atomic-create path. s3rver ignores
 * `If-None-Match` on PUT, and no S3 server on npm that runs on Node 20 honours it (checked:
 * s3rver 3.7.1, @20minutes/s3rver 4.x/5.x, fauxqs 1.x/2.x honour it on GET only).
 *
 *  mode 'honour'           PutObject with `If-None-Match: *` → 412 PreconditionFailed when the key
 *                          exists, else forwarded; check + forward run under a per-key lock, so two
 *                          conditional puts of one key cannot both succeed (AWS's guarantee).
 *  mode 'not-implemented'  PutObject with `If-None-Match` → 501 NotImplemented (a store without
 *                          conditional writes that says so).
 * With `multipartListing`, it also answers what s3rver lacks for unfinished multipart uploads —
 * ListMultipartUploads, ListParts, AbortMultipartUpload — from s3rver's own storage of them
 * (`<dir>/<bucket>/._S3rver_uploads/<uploadId>/{key,1,2…}`), with AWS's XML shapes.
 * Everything else is forwarded byte for byte, Host header included, so s3rver's SigV4 check sees
 * the request the SDK signed. `seen` counts what the proxy answered, so a test can assert that the
 * path it means to test really ran.
 */
import fs from 'node:fs'
import http from 'node:http'
import type {AddressInfo} from 'node:net'
import path from 'node:path'

import {HeadObjectCommand, S3Client} from '@aws-sdk/client-s3'

import type {S3Server} from './s3.js'

export type ConditionalMode = 'honour' | 'not-implemented'

export interface ConditionalProxy {
  endpoint: string
  /** s3.env with the endpoint replaced by the proxy's */
  env: Record<string, string>
  mode: ConditionalMode
  /** counters: conditional puts seen, answered 412 / 501, forwarded; unconditional puts forwarded */
  seen: {
    conditional: number
    precondition412: number
    notImplemented501: number
    forwardedConditional: number
    unconditional: number
    uploadsListed: number
    uploadsAborted: number
  }
  /**
   * Runs when a conditional put arrives, before the proxy looks for the object: a test creates
   * the object here to stand for another writer winning the race between charge-ops' own
   * existence check and its put.
   */
  beforeConditionalPut?: (bucket: string, key: string) => Promise<void>
  /** Runs before any request is handled: a test holds one here (a slow store) until a condition holds. */
  beforeRequest?: (method: string, key: string) => Promise<void>
  stop(): Promise<void>
}

const xmlError = (code: string, message: string, extra: string) =>
  `<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>${code}</Code><Message>${message}</Message>${extra}<RequestId>proxy-${Date.now().toString(16)}</RequestId><HostId>charge-ops-test</HostId></Error>`

const xmlText = (v: string) => v.replaceAll('&', '&amp;').replaceAll('<', '&lt;').replaceAll('>', '&gt;')
const NS = 'xmlns="http://s3.amazonaws.com/doc/2006-03-01/"'

/** ListMultipartUploads / ListParts / AbortMultipartUpload from s3rver's storage; false when the request is none of them */
function multipartRequest(
  upstream: S3Server,
  req: http.IncomingMessage,
  res: http.ServerResponse,
  bucket: string,
  key: string,
  url: URL,
  seen: ConditionalProxy['seen'],
): boolean {
  const root = path.join(upstream.dir, bucket, '._S3rver_uploads')
  const uploads = () =>
    (fs.existsSync(root) ? fs.readdirSync(root) : []).map((id) => ({
      id,
      key: fs.readFileSync(path.join(root, id, 'key'), 'utf8'),
      initiated: fs.statSync(path.join(root, id, 'key')).mtime,
    }))
  const send = (status: number, body?: string) => {
    req.resume()
    res.writeHead(status, body ? {'content-type': 'application/xml', 'content-length': Buffer.byteLength(body)} : {})
    res.end(body)
  }
  if (req.method === 'GET' && key === '' && url.searchParams.has('uploads')) {
    seen.uploadsListed++
    const prefix = url.searchParams.get('prefix') ?? ''
    const items = uploads()
      .filter((u) => u.key.startsWith(prefix))
      .sort((a, b) => (a.key < b.key ? -1 : 1))
    send(
      200,
      `<?xml version="1.0" encoding="UTF-8"?>\n<ListMultipartUploadsResult ${NS}><Bucket>${bucket}</Bucket><KeyMarker></KeyMarker><UploadIdMarker></UploadIdMarker><Prefix>${xmlText(prefix)}</Prefix><MaxUploads>1000</MaxUploads><IsTruncated>false</IsTruncated>${items.map((u) => `<Upload><Key>${xmlText(u.key)}</Key><UploadId>${u.id}</UploadId><Initiated>${u.initiated.toISOString()}</Initiated><StorageClass>STANDARD</StorageClass></Upload>`).join('')}</ListMultipartUploadsResult>`,
    )
    return true
  }
  const uploadId = url.searchParams.get('uploadId')
  if (!uploadId || key === '' || url.searchParams.has('partNumber') || !['GET', 'DELETE'].includes(req.method ?? ''))
    return false
  const dir = path.join(root, uploadId)
  if (!fs.existsSync(dir)) {
    send(
      404,
      xmlError(
        'NoSuchUpload',
        'The specified upload does not exist. The upload ID may be invalid, or the upload may have been aborted or completed.',
        `<UploadId>${uploadId}</UploadId>`,
      ),
    )
    return true
  }
  if (req.method === 'DELETE') {
    seen.uploadsAborted++
    fs.rmSync(dir, {recursive: true, force: true})
    send(204)
    return true
  }
  const parts = fs
    .readdirSync(dir)
    .filter((n) => /^\d+$/.test(n))
    .map(Number)
    .sort((a, b) => a - b)
  send(
    200,
    `<?xml version="1.0" encoding="UTF-8"?>\n<ListPartsResult ${NS}><Bucket>${bucket}</Bucket><Key>${xmlText(key)}</Key><UploadId>${uploadId}</UploadId><MaxParts>1000</MaxParts><IsTruncated>false</IsTruncated>${parts.map((n) => `<Part><PartNumber>${n}</PartNumber><LastModified>${fs.statSync(path.join(dir, String(n))).mtime.toISOString()}</LastModified><ETag>"p${n}"</ETag><Size>${fs.statSync(path.join(dir, String(n))).size}</Size></Part>`).join('')}</ListPartsResult>`,
  )
  return true
}

export async function startConditionalProxy(
  upstream: S3Server,
  mode: ConditionalMode,
  options: {multipartListing?: boolean} = {},
): Promise<ConditionalProxy> {
  const target = new URL(upstream.endpoint)
  const client = new S3Client(upstream.clientConfig())
  const locks = new Map<string, Promise<void>>()
  const proxy: ConditionalProxy = {
    endpoint: '',
    env: {},
    mode,
    seen: {
      conditional: 0,
      precondition412: 0,
      notImplemented501: 0,
      forwardedConditional: 0,
      unconditional: 0,
      uploadsListed: 0,
      uploadsAborted: 0,
    },
    stop: async () => {},
  }

  const forward = (req: http.IncomingMessage, res: http.ServerResponse) =>
    new Promise<void>((resolve) => {
      const out = http.request(
        {host: target.hostname, port: target.port, method: req.method, path: req.url, headers: req.headers},
        (answer) => {
          res.writeHead(answer.statusCode ?? 502, answer.headers)
          answer.pipe(res)
          answer.on('end', resolve)
          answer.on('error', () => resolve())
        },
      )
      out.on('error', (error) => {
        res.destroy(error)
        resolve()
      })
      req.pipe(out)
    })

  const answer = (req: http.IncomingMessage, res: http.ServerResponse, status: number, body: string) => {
    req.resume() // the body is not wanted; read it so the client's write completes
    req.on('end', () => {
      res.writeHead(status, {'content-type': 'application/xml', 'content-length': Buffer.byteLength(body)})
      res.end(body)
    })
  }

  const server = http.createServer(async (req, res) => {
    const url = new URL(req.url ?? '/', 'http://proxy')
    const [, bucket, ...rest] = url.pathname.split('/')
    const key = decodeURIComponent(rest.join('/'))
    if (proxy.beforeRequest) {
      req.pause()
      await proxy.beforeRequest(req.method ?? '', key)
    }
    if (options.multipartListing && multipartRequest(upstream, req, res, bucket, key, url, proxy.seen)) return
    // PutObject: PUT /bucket/key without a sub-resource (UploadPart has ?partNumber&uploadId; the
    // SDK adds ?x-id=PutObject, which names no sub-resource)
    const subResources = [...url.searchParams.keys()].filter((k) => k !== 'x-id')
    const isPutObject =
      req.method === 'PUT' && key !== '' && subResources.length === 0 && !('x-amz-copy-source' in req.headers)
    if (!isPutObject) return void forward(req, res)
    if (req.headers['if-none-match'] === undefined) {
      proxy.seen.unconditional++
      return void forward(req, res)
    }
    proxy.seen.conditional++
    if (mode === 'not-implemented') {
      proxy.seen.notImplemented501++
      return answer(
        req,
        res,
        501,
        xmlError(
          'NotImplemented',
          'A header you provided implies functionality that is not implemented',
          '<Header>If-None-Match</Header>',
        ),
      )
    }
    const lockKey = `${bucket}/${key}`
    const previous = locks.get(lockKey) ?? Promise.resolve()
    const turn = previous.then(async () => {
      await proxy.beforeConditionalPut?.(bucket, key)
      const exists = await client.send(new HeadObjectCommand({Bucket: bucket, Key: key})).then(
        () => true,
        (error: {$metadata?: {httpStatusCode?: number}}) => {
          if (error.$metadata?.httpStatusCode === 404) return false
          throw error
        },
      )
      if (exists) {
        proxy.seen.precondition412++
        await new Promise<void>((resolve) => {
          answer(
            req,
            res,
            412,
            xmlError(
              'PreconditionFailed',
              'At least one of the pre-conditions you specified did not hold',
              '<Condition>If-None-Match</Condition>',
            ),
          )
          res.on('finish', resolve)
          res.on('close', resolve)
        })
        return
      }
      proxy.seen.forwardedConditional++
      await forward(req, res)
    })
    const settled = turn.catch((error: Error) => {
      if (!res.headersSent) res.writeHead(500)
      res.end(String(error))
    })
    locks.set(lockKey, settled)
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const {port} = server.address() as AddressInfo
  proxy.endpoint = `http://127.0.0.1:${port}`
  proxy.env = {...upstream.env, AWS_ENDPOINT_URL_S3: proxy.endpoint}
  proxy.stop = async () => {
    client.destroy()
    server.closeAllConnections()
    await new Promise<void>((resolve) => server.close(() => resolve()))
  }
  return proxy
}
