/**
 * The wal-g engine (`backup.engine: wal-g`): the same charge-ops commands drive wal-g.
 * Plans are built by pure functions — `{command, args, env}` — so they are tested exactly; the
 * runner executes them through src/core/proc/exec.ts (missing wal-g → exit 5 with the install hint).
 * Secrets (PGPASSWORD, AWS keys) travel in the environment only, never in args.
 */
import type {Settings} from '../config/settings.js'
import type {Logger} from '../output/logger.js'

export interface WalgPlan {
  command: 'wal-g'
  args: string[]
  env: Record<string, string>
}

export interface WalgEnvInput {
  repository: string
  stack: string
  compression?: 'zstd' | 'gzip'
  s3?: {endpoint?: string; region?: string; forcePathStyle?: boolean; serverSideEncryption?: string; kmsKeyId?: string}
  /** libpq variables (PGHOST, PGPORT, PGUSER, PGPASSWORD, PGDATABASE) */
  libpq?: Record<string, string>
  dataDir?: string
  /** AWS_* credentials from the process environment / --aws-env-file */
  aws?: Record<string, string | undefined>
}

/** WALG_* / AWS_* / PG* environment for one stack. wal-g keeps its own layout under `<stack>/wal-g`. */
export function walgEnv(input: WalgEnvInput): Record<string, string> {
  const env: Record<string, string> = {}
  if (input.repository.startsWith('s3://')) {
    env.WALG_S3_PREFIX = `${input.repository.replace(/\/+$/, '')}/${input.stack}/wal-g`
    if (input.s3?.endpoint) env.AWS_ENDPOINT = input.s3.endpoint
    if (input.s3?.region) env.AWS_REGION = input.s3.region
    if (input.s3?.forcePathStyle ?? Boolean(input.s3?.endpoint)) env.AWS_S3_FORCE_PATH_STYLE = 'true'
    if (input.s3?.serverSideEncryption) env.WALG_S3_SSE = input.s3.serverSideEncryption
    if (input.s3?.kmsKeyId) env.WALG_S3_SSE_KMS_ID = input.s3.kmsKeyId
    for (const key of [
      'AWS_ACCESS_KEY_ID',
      'AWS_SECRET_ACCESS_KEY',
      'AWS_SESSION_TOKEN',
      'AWS_REGION',
      'AWS_ENDPOINT',
    ]) {
      const value = input.aws?.[key]
      if (value && env[key] === undefined) env[key] = value
    }
    if (!env.AWS_ENDPOINT && input.aws?.AWS_ENDPOINT_URL_S3) env.AWS_ENDPOINT = input.aws.AWS_ENDPOINT_URL_S3
  } else {
    env.WALG_FILE_PREFIX = `${input.repository.replace(/\/+$/, '')}/${input.stack}/wal-g`
  }
  env.WALG_COMPRESSION_METHOD = input.compression === 'gzip' ? 'brotli' : 'zstd'
  if (input.dataDir) env.PGDATA = input.dataDir
  Object.assign(env, input.libpq ?? {})
  return env
}

const plan = (args: string[], env: Record<string, string>): WalgPlan => ({command: 'wal-g', args, env})

export const walgPlans = {
  backupPush: (env: Record<string, string>, dataDir: string) => plan(['backup-push', dataDir], env),
  backupFetch: (env: Record<string, string>, dataDir: string, name = 'LATEST') =>
    plan(['backup-fetch', dataDir, name], env),
  walPush: (env: Record<string, string>, path: string) => plan(['wal-push', path], env),
  walFetch: (env: Record<string, string>, name: string, destination: string) =>
    plan(['wal-fetch', name, destination], env),
  backupList: (env: Record<string, string>) => plan(['backup-list', '--json', '--detail'], env),
  deleteRetain: (env: Record<string, string>, keepFull: number) =>
    plan(['delete', 'retain', 'FULL', String(keepFull), '--confirm'], env),
}

/** Builds the environment from charge-ops settings and a DATABASE_URL. */
export async function walgEnvFromSettings(
  settings: Pick<Settings, 'repository' | 'stack' | 'yaml'>,
  options: {databaseUrl?: string; dataDir?: string} = {},
): Promise<Record<string, string>> {
  const {requireSetting} = await import('../config/settings.js')
  const repository = requireSetting(
    settings.repository,
    'backup.repository',
    'Set backup.repository in charge-ops.yaml or pass --repo.',
  )
  let libpq: Record<string, string> | undefined
  if (options.databaseUrl) {
    const {libpqEnv, parseDatabaseUrl} = await import('../postgres/connection.js')
    libpq = libpqEnv(parseDatabaseUrl(options.databaseUrl))
  }
  return walgEnv({
    repository,
    stack: settings.stack,
    compression: settings.yaml.backup.compression.algorithm,
    s3: settings.yaml.backup.s3,
    libpq,
    dataDir: options.dataDir,
    aws: process.env,
  })
}

export async function runWalg(
  p: WalgPlan,
  options: {logger?: Logger; cwd?: string} = {},
): Promise<{stdout: string; stderr: string}> {
  const {run} = await import('../core/proc/exec.js')
  options.logger?.debug(`wal-g ${p.args.join(' ')}`)
  const result = await run(p.command, p.args, {env: p.env, cwd: options.cwd, purpose: `wal-g ${p.args[0]}`})
  return {stdout: result.stdout, stderr: result.stderr}
}

export async function walgBackupPush(options: {
  settings: Settings
  databaseUrl: string
  dataDir: string
  logger: Logger
}): Promise<{engine: 'wal-g'; command: string; stderr: string}> {
  const env = await walgEnvFromSettings(options.settings, {databaseUrl: options.databaseUrl, dataDir: options.dataDir})
  const p = walgPlans.backupPush(env, options.dataDir)
  const out = await runWalg(p, {logger: options.logger})
  return {engine: 'wal-g', command: `wal-g ${p.args.join(' ')}`, stderr: out.stderr.slice(-2000)}
}

export interface WalgBackup {
  backup_name: string
  time?: string
  wal_file_name?: string
  start_lsn?: number
  finish_lsn?: number
}

export async function walgBackupList(settings: Settings): Promise<WalgBackup[]> {
  const out = await runWalg(walgPlans.backupList(await walgEnvFromSettings(settings)))
  const text = out.stdout.trim()
  return text ? (JSON.parse(text) as WalgBackup[]) : []
}
