/** init --connect: is the backup bucket reachable with the credentials in the environment? */
import {UnreachableError} from '../errors.js'
import type {Answers} from './answers.js'

export async function checkRepositoryReachable(backup: Answers['backup'], timeoutMs = 10_000): Promise<void> {
  const {createS3ClientFromEnv, describeS3Error, parseS3Location} = await import('../repository/s3-storage.js')
  const {HeadBucketCommand} = await import('@aws-sdk/client-s3')
  const {bucket} = parseS3Location(backup.repository)
  const client = await createS3ClientFromEnv({endpoint: backup.endpoint, region: backup.region})
  try {
    await client.send(new HeadBucketCommand({Bucket: bucket}), {abortSignal: AbortSignal.timeout(timeoutMs)})
  } catch (error) {
    const described = describeS3Error(error, `HeadBucket ${bucket}`)
    if (described instanceof UnreachableError) throw described
    const e = error as {name?: string; $metadata?: {httpStatusCode?: number}}
    throw new UnreachableError(
      `S3 bucket ${bucket} is not reachable (${e.name ?? 'error'}${e.$metadata?.httpStatusCode ? ` HTTP ${e.$metadata.httpStatusCode}` : ''})`,
      {
        code: 'S3_UNREACHABLE',
        hint: 'Check --repo, --s3-endpoint, the network and AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY. Nothing was written.',
        cause: error,
      },
    )
  } finally {
    client.destroy()
  }
}
