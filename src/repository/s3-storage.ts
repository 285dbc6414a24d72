/**
 * A repository under an S3 prefix (AWS, MinIO, OSS, Ceph…). Endpoint, region and credentials come
 * from the standard AWS chain (AWS_ENDPOINT_URL_S3 / AWS_ENDPOINT_URL, AWS_REGION, AWS_ACCESS_KEY_ID
 * …); streaming multipart uploads through @aws-sdk/lib-storage keep memory flat whatever the size.
 */
import type {S3Client} from '@aws-sdk/client-s3'
import {Readable} from 'node:stream'

import {holdReadable} from '../core/stream.js'
import {UnreachableError, UsageError} from '../errors.js'
import {
  assertSafeKey,
  hashingPassThrough,
  ObjectExistsError,
  ObjectNotFoundError,
  type PutOptions,
  type PutResult,
  type RepositoryStorage,
  type StoredObject,
  type TemporaryObject,
} from './storage.js'

export interface S3Location {
  bucket: string
  prefix: string
}

export function parseS3Location(url: string): S3Location {
  const match = /^s3:\/\/([^/]+)\/?(.*)$/.exec(url)
  if (!match || !match[1]) throw new UsageError(`not an S3 repository URL: ${url}`, {hint: 'Use s3://BUCKET/PREFIX'})
  const prefix = match[2].replace(/\/+$/, '')
  return {bucket: match[1], prefix: prefix ? `${prefix}/` : ''}
}

export interface S3StorageOptions {
  endpoint?: string
  region?: string
  forcePathStyle?: boolean
  serverSideEncryption?: 'AES256' | 'aws:kms'
  kmsKeyId?: string
}

export async function createS3ClientFromEnv(options: S3StorageOptions = {}): Promise<S3Client> {
  process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true'
  const {S3Client} = await import('@aws-sdk/client-s3')
  const endpoint = options.endpoint ?? process.env.AWS_ENDPOINT_URL_S3 ?? process.env.AWS_ENDPOINT_URL
  return new S3Client({
    region: options.region ?? process.env.AWS_REGION ?? process.env.AWS_DEFAULT_REGION ?? 'us-east-1',
    endpoint,
    forcePathStyle: options.forcePathStyle ?? Boolean(endpoint),
    maxAttempts: 3,
    // The SDK's default (since 2025) wraps streamed bodies in aws-chunked framing with trailing
    // CRC32 checksums; S3-compatible servers that don't speak it (s3rver, older MinIO/Ceph/OSS)
    // then store the framing bytes as data. We checksum every part ourselves (sha256 in the
    // manifest), so only send checksums when an operation requires them.
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
  })
}

/** A store that does not offer the operation (s3rver: 501 NotImplemented, or 405). */
function isNotImplemented(error: unknown): boolean {
  const e = error as {name?: string; $metadata?: {httpStatusCode?: number}}
  return (
    e?.name === 'NotImplemented' ||
    e?.name === 'MethodNotAllowed' ||
    e?.$metadata?.httpStatusCode === 501 ||
    e?.$metadata?.httpStatusCode === 405
  )
}

function isNotFound(error: unknown): boolean {
  const e = error as {name?: string; $metadata?: {httpStatusCode?: number}}
  return e?.name === 'NoSuchKey' || e?.name === 'NotFound' || e?.$metadata?.httpStatusCode === 404
}

/** Network-level failures become exit 5 with the likely cause. */
export function describeS3Error(error: unknown, what: string): Error {
  const e = error as {name?: string; code?: string; message?: string; $metadata?: {httpStatusCode?: number}}
  const code = e?.code ?? e?.name
  if (
    code === 'ECONNREFUSED' ||
    code === 'ECONNRESET' ||
    code === 'ENOTFOUND' ||
    code === 'EPIPE' ||
    code === 'ETIMEDOUT' ||
    code === 'TimeoutError'
  ) {
    return new UnreachableError(`S3 ${what} failed: ${code} (${e.message ?? ''})`, {
      code: 'S3_UNREACHABLE',
      hint: 'Check AWS_ENDPOINT_URL_S3 / network access to the bucket.',
      cause: error,
    })
  }
  if (
    e?.$metadata?.httpStatusCode === 403 ||
    code === 'AccessDenied' ||
    code === 'InvalidAccessKeyId' ||
    code === 'SignatureDoesNotMatch'
  ) {
    return new UnreachableError(`S3 ${what} was denied (${code})`, {
      code: 'S3_AUTH',
      hint: 'Check AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY and the bucket policy.',
      cause: error,
    })
  }
  if (code === 'NoSuchBucket') {
    return new UnreachableError(`S3 bucket does not exist (${what})`, {
      code: 'S3_NO_BUCKET',
      hint: 'Create the bucket or fix the repository URL.',
      cause: error,
    })
  }
  return error instanceof Error ? error : new Error(String(error))
}

export class S3Storage implements RepositoryStorage {
  readonly kind = 's3' as const

  constructor(
    private readonly client: S3Client,
    private readonly where: S3Location,
    private readonly options: S3StorageOptions = {},
  ) {}

  static async fromUrl(url: string, options: S3StorageOptions = {}): Promise<S3Storage> {
    return new S3Storage(await createS3ClientFromEnv(options), parseS3Location(url), options)
  }

  get location(): string {
    return `s3://${this.where.bucket}/${this.where.prefix}`
  }

  private objectKey(key: string): string {
    assertSafeKey(key)
    return this.where.prefix + key
  }

  async put(key: string, given: Readable | Buffer | string, options: PutOptions = {}): Promise<PutResult> {
    // held before the first await: a producer that exits meanwhile must not lose its output (core/stream.ts)
    const source = typeof given === 'string' || Buffer.isBuffer(given) ? given : holdReadable(given)
    // The check catches an existing object on any S3-compatible store. For what fits in memory
    // (the lock, WAL segments, manifests: where two writers can race) the put also carries
    // `If-None-Match: *`, atomic on stores that honour it (AWS S3 since 2024, MinIO, R2); a store
    // that rejects the header as not implemented gets the put again without it (the bytes are at
    // hand) and is not asked again through this storage. Streamed parts have unique keys.
    if (options.ifNotExists && (await this.exists(key))) throw new ObjectExistsError(key)
    const inMemory = typeof source === 'string' || Buffer.isBuffer(source)
    const conditional = Boolean(options.ifNotExists) && inMemory && !this.conditionalUnsupported
    const uploadError = (error: unknown) =>
      error instanceof ObjectExistsError ? error : describeS3Error(error, `upload of ${key}`)
    try {
      return await this.upload(key, source, options, conditional)
    } catch (error) {
      const status = (error as {$metadata?: {httpStatusCode?: number}}).$metadata?.httpStatusCode
      if (!conditional || (status !== 501 && (error as {name?: string}).name !== 'NotImplemented'))
        throw uploadError(error)
      this.conditionalUnsupported = true
    }
    return this.upload(key, source, options, false).catch((error: unknown) => {
      throw uploadError(error)
    })
  }

  /** set once the store answered 501 to a conditional put: check-then-put only from then on */
  private conditionalUnsupported = false

  private async upload(
    key: string,
    source: Readable | Buffer | string,
    options: PutOptions,
    conditional: boolean,
  ): Promise<PutResult> {
    const {Upload} = await import('@aws-sdk/lib-storage')
    const hasher = await hashingPassThrough(options.onProgress)
    const input = typeof source === 'string' || Buffer.isBuffer(source) ? Readable.from([Buffer.from(source)]) : source
    input.on('error', (error) => hasher.stream.destroy(error))
    const partSize = 8 * 1024 * 1024
    const fault =
      typeof source !== 'string' && !Buffer.isBuffer(source) ? await multipartFault(this.objectKey(key)) : undefined
    if (fault) {
      input.pipe(fault.gate).pipe(hasher.stream)
      fault.gate.on('error', (error) => hasher.stream.destroy(error))
    } else input.pipe(hasher.stream)
    const upload = new Upload({
      client: this.client,
      params: {
        Bucket: this.where.bucket,
        Key: this.objectKey(key),
        Body: hasher.stream,
        ServerSideEncryption: this.options.serverSideEncryption,
        SSEKMSKeyId: this.options.kmsKeyId,
        IfNoneMatch: conditional ? '*' : undefined,
      },
      queueSize: 2,
      partSize,
      leavePartsOnError: false,
    })
    if (fault) upload.on('httpUploadProgress', () => fault.progress(upload))
    try {
      await upload.done()
    } catch (error) {
      // 412: the object appeared after the check; 409: another conditional write of it is under way
      const status = (error as {$metadata?: {httpStatusCode?: number}}).$metadata?.httpStatusCode
      if (options.ifNotExists && (status === 412 || status === 409)) throw new ObjectExistsError(key)
      throw error
    }
    return hasher.result()
  }

  async get(key: string): Promise<Readable> {
    const {GetObjectCommand} = await import('@aws-sdk/client-s3')
    try {
      const out = await this.client.send(new GetObjectCommand({Bucket: this.where.bucket, Key: this.objectKey(key)}))
      return out.Body as Readable
    } catch (error) {
      if (isNotFound(error)) throw new ObjectNotFoundError(key)
      throw describeS3Error(error, `download of ${key}`)
    }
  }

  async getBytes(key: string): Promise<Buffer> {
    const stream = await this.get(key)
    const chunks: Buffer[] = []
    for await (const chunk of stream) chunks.push(Buffer.from(chunk as Buffer))
    return Buffer.concat(chunks)
  }

  async stat(key: string): Promise<StoredObject | undefined> {
    const {HeadObjectCommand} = await import('@aws-sdk/client-s3')
    try {
      const out = await this.client.send(new HeadObjectCommand({Bucket: this.where.bucket, Key: this.objectKey(key)}))
      return {key, size: out.ContentLength ?? 0, mtime: out.LastModified ?? new Date(0)}
    } catch (error) {
      if (isNotFound(error)) return undefined
      throw describeS3Error(error, `stat of ${key}`)
    }
  }

  async exists(key: string): Promise<boolean> {
    return (await this.stat(key)) !== undefined
  }

  async list(prefix: string): Promise<StoredObject[]> {
    const {ListObjectsV2Command} = await import('@aws-sdk/client-s3')
    const out: StoredObject[] = []
    let token: string | undefined
    try {
      do {
        const page = await this.client.send(
          new ListObjectsV2Command({
            Bucket: this.where.bucket,
            Prefix: this.where.prefix + prefix,
            ContinuationToken: token,
          }),
        )
        for (const item of page.Contents ?? []) {
          if (!item.Key) continue
          out.push({
            key: item.Key.slice(this.where.prefix.length),
            size: item.Size ?? 0,
            mtime: item.LastModified ?? new Date(0),
          })
        }
        token = page.IsTruncated ? page.NextContinuationToken : undefined
      } while (token)
    } catch (error) {
      throw describeS3Error(error, `listing of ${prefix}`)
    }
    return out.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0))
  }

  /**
   * The unfinished multipart uploads under prefix: what a killed part upload leaves (never an
   * object, so never listed as a backup, but its parts are stored and billed until aborted). The
   * writer cannot be seen from the store: every one counts as a dead run's, and only callers that
   * hold the stack's lock sweep them (a backup right after taking it, `backup prune`). A store
   * without ListMultipartUploads (s3rver) shows none.
   */
  async listTemporary(prefix = ''): Promise<TemporaryObject[]> {
    const {ListMultipartUploadsCommand} = await import('@aws-sdk/client-s3')
    const out: TemporaryObject[] = []
    let keyMarker: string | undefined
    let uploadIdMarker: string | undefined
    try {
      do {
        const page = await this.client.send(
          new ListMultipartUploadsCommand({
            Bucket: this.where.bucket,
            Prefix: this.where.prefix + prefix,
            KeyMarker: keyMarker,
            UploadIdMarker: uploadIdMarker,
          }),
        )
        for (const upload of page.Uploads ?? []) {
          if (!upload.Key || !upload.UploadId) continue
          const size = await this.uploadedBytes(upload.Key, upload.UploadId)
          out.push({
            key: upload.Key.slice(this.where.prefix.length),
            size,
            mtime: upload.Initiated ?? new Date(0),
            writerAlive: false,
            uploadId: upload.UploadId,
          })
        }
        keyMarker = page.IsTruncated ? page.NextKeyMarker : undefined
        uploadIdMarker = page.IsTruncated ? page.NextUploadIdMarker : undefined
      } while (keyMarker)
    } catch (error) {
      if (isNotImplemented(error)) return []
      throw describeS3Error(error, `listing of unfinished uploads under ${prefix}`)
    }
    return out.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0))
  }

  /** Bytes of the parts an unfinished upload holds (0 where the store cannot list them). */
  private async uploadedBytes(objectKey: string, uploadId: string): Promise<number> {
    const {ListPartsCommand} = await import('@aws-sdk/client-s3')
    let total = 0
    let marker: string | undefined
    try {
      do {
        const page = await this.client.send(
          new ListPartsCommand({
            Bucket: this.where.bucket,
            Key: objectKey,
            UploadId: uploadId,
            PartNumberMarker: marker,
          }),
        )
        for (const part of page.Parts ?? []) total += part.Size ?? 0
        marker = page.IsTruncated ? page.NextPartNumberMarker : undefined
      } while (marker)
    } catch (error) {
      if (isNotImplemented(error)) return 0
      throw describeS3Error(error, `listing of the parts of an unfinished upload of ${objectKey}`)
    }
    return total
  }

  /** Aborts the unfinished uploads under prefix at least olderThanMs old; returns them. */
  async sweepTemporary(prefix = '', olderThanMs = 60 * 60 * 1000): Promise<TemporaryObject[]> {
    const {AbortMultipartUploadCommand} = await import('@aws-sdk/client-s3')
    const now = Date.now()
    const removed: TemporaryObject[] = []
    for (const t of await this.listTemporary(prefix)) {
      if (now - t.mtime.getTime() < olderThanMs) continue
      try {
        await this.client.send(
          new AbortMultipartUploadCommand({
            Bucket: this.where.bucket,
            Key: this.objectKey(t.key),
            UploadId: t.uploadId,
          }),
        )
      } catch (error) {
        // already completed or aborted by someone else: nothing left to remove
        if ((error as {name?: string}).name === 'NoSuchUpload') continue
        throw describeS3Error(error, `abort of the unfinished upload of ${t.key}`)
      }
      removed.push(t)
    }
    return removed
  }

  async delete(keys: string | string[]): Promise<void> {
    const list = Array.isArray(keys) ? keys : [keys]
    if (list.length === 0) return
    const {DeleteObjectsCommand} = await import('@aws-sdk/client-s3')
    for (let i = 0; i < list.length; i += 1000) {
      const batch = list.slice(i, i + 1000)
      try {
        await this.client.send(
          new DeleteObjectsCommand({
            Bucket: this.where.bucket,
            Delete: {Objects: batch.map((k) => ({Key: this.objectKey(k)}))},
          }),
        )
      } catch (error) {
        throw describeS3Error(error, 'delete')
      }
    }
  }
}

/**
 * The kill point `repository.s3.multipart-started` (docs/conventions.md): reached when the store has
 * confirmed the first part of a multipart upload — the upload exists on the server, holds a part,
 * and is not completed. A kill there leaves an unfinished multipart upload and no object; a pause
 * holds the rest of the stream (so the upload cannot complete) until the test resumes it. Only set
 * up when a test names a fault point (no cost otherwise).
 */
async function multipartFault(
  key: string,
): Promise<{gate: import('node:stream').Transform; progress(upload: unknown): void} | undefined> {
  if (!process.env.CHARGE_OPS_KILL_AT && !process.env.CHARGE_OPS_PAUSE_AT) return undefined
  const [{Transform}, {faultPoint}] = await Promise.all([import('node:stream'), import('../core/faults.js')])
  let hold: Promise<void> | undefined
  return {
    gate: new Transform({
      transform(chunk: Buffer, _encoding, callback) {
        if (!hold) return callback(null, chunk)
        hold.then(() => callback(null, chunk), callback)
      },
    }),
    progress(upload) {
      // lib-storage's Upload keeps the multipart upload's id once CreateMultipartUpload answered
      const uploadId = (upload as {uploadId?: string}).uploadId
      if (hold || !uploadId) return
      hold = Promise.resolve(faultPoint('repository.s3.multipart-started', () => ({key, uploadId})))
    },
  }
}
