/** wal-g from the WAL commands' flags (--repo / --stack / --aws-env-file), for archive_command / restore_command. */
import type {WalLocationFlags} from '../wal/context.js'
import {runWalg, walgEnv, walgPlans} from './walg.js'

export async function walgFromFlags(
  flags: WalLocationFlags,
  settings: () => {
    repository?: string
    stack: string
    yaml?: {backup: {compression: {algorithm: 'zstd' | 'gzip'}; s3?: Parameters<typeof walgEnv>[0]['s3']}}
  },
) {
  const {loadAwsEnvFile, resolveLocation} = await import('../wal/context.js')
  if (flags['aws-env-file']) await loadAwsEnvFile(flags['aws-env-file'])
  const location = resolveLocation(flags, settings)
  const yaml = flags.repo && flags.stack ? undefined : settings().yaml
  const env = walgEnv({
    repository: location.repository,
    stack: location.stack,
    compression: yaml?.backup.compression.algorithm,
    s3: yaml?.backup.s3,
    aws: process.env,
  })
  return {env, runWalg, walgPlans}
}
