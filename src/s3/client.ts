/**
 * S3 adapter (@aws-sdk/client-s3, loaded lazily). The whole API:
 *
 *   createS3Client({endpoint?, region?, forcePathStyle?, timeoutMs?})
 *       → an S3Client from the standard AWS environment: AWS_ENDPOINT_URL_S3 / AWS_ENDPOINT_URL,
 *         AWS_REGION / AWS_DEFAULT_REGION (default us-east-1), credentials from the AWS chain;
 *         path-style addressing when a custom endpoint is set (MinIO, Ceph, OSS, s3rver)
 *   parseS3Url('s3://bucket/prefix')  → {bucket, prefix}  (prefix '' or ending in '/')
 *   checkBucket(client, bucket)       → resolves when the bucket is reachable with these
 *                                       credentials; else UnreachableError naming the cause
 *   diagnoseS3Error(error, {bucket, endpoint}) → UnreachableError (S3_REFUSED | S3_DNS | S3_TIMEOUT
 *                                       | S3_AUTH | S3_NO_BUCKET | S3_REGION | S3_TLS | S3_UNREACHABLE)
 */
import type {S3Client} from '@aws-sdk/client-s3'

import {UnreachableError, UsageError, type ErrorCode} from '../errors.js'

export interface S3ClientOptions {
  endpoint?: string
  region?: string
  forcePathStyle?: boolean
  /** per-request timeout (connection + response), default 10 s */
  timeoutMs?: number
  /** attempts including the first (default 3) */
  maxAttempts?: number
}

export function s3Endpoint(
  options: Pick<S3ClientOptions, 'endpoint'> = {},
  env: NodeJS.ProcessEnv = process.env,
): string | undefined {
  return options.endpoint ?? env.AWS_ENDPOINT_URL_S3 ?? env.AWS_ENDPOINT_URL ?? undefined
}

export async function createS3Client(options: S3ClientOptions = {}): Promise<S3Client> {
  // The SDK warns about Node 20 on stderr when it loads; users' output must stay clean.
  process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true'
  const {S3Client} = await import('@aws-sdk/client-s3')
  const endpoint = s3Endpoint(options)
  const timeoutMs = options.timeoutMs ?? 10_000
  return new S3Client({
    region: options.region ?? process.env.AWS_REGION ?? process.env.AWS_DEFAULT_REGION ?? 'us-east-1',
    endpoint,
    forcePathStyle: options.forcePathStyle ?? Boolean(endpoint),
    maxAttempts: options.maxAttempts ?? 3,
    requestHandler: {connectionTimeout: timeoutMs, requestTimeout: timeoutMs},
  })
}

export function parseS3Url(url: string): {bucket: string; prefix: string} {
  const match = /^s3:\/\/([^/]+)\/?(.*)$/.exec(url)
  if (!match || !match[1] || !/^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/.test(match[1])) {
    throw new UsageError('not an S3 URL (s3://BUCKET/PREFIX)', {
      hint: 'Use s3://BUCKET/PREFIX; bucket names are 3–63 lower-case letters, digits, dots and dashes.',
    })
  }
  const prefix = match[2].replace(/\/+$/, '')
  return {bucket: match[1], prefix: prefix ? `${prefix}/` : ''}
}

export async function checkBucket(client: S3Client, bucket: string): Promise<void> {
  const {HeadBucketCommand} = await import('@aws-sdk/client-s3')
  try {
    await client.send(new HeadBucketCommand({Bucket: bucket}))
  } catch (error) {
    const endpoint = await client.config
      .endpoint?.()
      .then((e) => `${e.protocol}//${e.hostname}${e.port ? `:${e.port}` : ''}`)
      .catch(() => undefined)
    throw diagnoseS3Error(error, {bucket, endpoint})
  }
}

export function diagnoseS3Error(error: unknown, where: {bucket?: string; endpoint?: string}): UnreachableError {
  if (error instanceof UnreachableError) return error
  const e = error as {
    name?: string
    code?: string
    message?: string
    $metadata?: {httpStatusCode?: number}
    cause?: {code?: string}
  }
  const code = e?.code ?? e?.cause?.code ?? e?.name ?? ''
  const status = e?.$metadata?.httpStatusCode
  const target = where.endpoint ?? 'AWS S3'
  const bucket = where.bucket ? `bucket "${where.bucket}"` : 'S3'
  const make = (c: ErrorCode, message: string, hint: string) =>
    new UnreachableError(message, {code: c, hint, cause: error, data: {bucket: where.bucket, endpoint: where.endpoint}})
  if (code === 'ECONNREFUSED')
    return make(
      'S3_REFUSED',
      `S3 endpoint ${target} refused the connection`,
      'Check AWS_ENDPOINT_URL_S3 and that the object store is running.',
    )
  if (code === 'ENOTFOUND' || code === 'EAI_AGAIN')
    return make('S3_DNS', `S3 endpoint ${target} does not resolve (DNS)`, 'Check AWS_ENDPOINT_URL_S3 / the region.')
  if (/^ERR_TLS|^ERR_SSL|CERT|EPROTO/.test(code) || /SSL|TLS|certificate|wrong version number/i.test(e?.message ?? ''))
    return make(
      'S3_TLS',
      `TLS with S3 endpoint ${target} failed`,
      'Use http:// for a plain-HTTP endpoint, or trust its certificate (NODE_EXTRA_CA_CERTS).',
    )
  if (
    code === 'ETIMEDOUT' ||
    code === 'TimeoutError' ||
    code === 'RequestTimeout' ||
    /timed? ?out/i.test(e?.message ?? '')
  )
    return make(
      'S3_TIMEOUT',
      `S3 endpoint ${target} did not answer in time`,
      'Check the network path (proxy, firewall) to the endpoint.',
    )
  if (code === 'NoSuchBucket' || status === 404 || code === 'NotFound')
    return make('S3_NO_BUCKET', `${bucket} does not exist at ${target}`, 'Create the bucket or fix the repository URL.')
  if (code === 'PermanentRedirect' || code === 'AuthorizationHeaderMalformed' || status === 301)
    return make('S3_REGION', `${bucket} is in another region`, "Set AWS_REGION to the bucket's region.")
  if (
    code === 'InvalidAccessKeyId' ||
    code === 'SignatureDoesNotMatch' ||
    code === 'CredentialsProviderError' ||
    /credential/i.test(e?.message ?? '')
  )
    return make(
      'S3_AUTH',
      `S3 credentials were rejected or missing (${code})`,
      'Check AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY (or the instance role).',
    )
  if (status === 403 || code === 'AccessDenied' || code === 'Forbidden')
    return make(
      'S3_AUTH',
      `access to ${bucket} was denied (${code || 403})`,
      'Check the credentials and the bucket policy (s3:ListBucket is needed).',
    )
  return make(
    'S3_UNREACHABLE',
    `cannot reach ${bucket} at ${target}: ${e?.message ?? code}`,
    'Check the endpoint, region and credentials.',
  )
}
