/**
 * Where the WAL commands find the repository. archive_command and restore_command run as the
 * postgres OS user, in the data directory, without the operator's environment, so everything
 * they need is on their command line: `--repo`, `--stack`, and for S3 `--aws-env-file` (a 0600
 * file holding AWS_* variables: credentials never appear in argv or in postgresql.conf).
 * `--config` works too when the postgres user can read charge-ops.yaml.
 */
import {readFileSync, statSync} from 'node:fs'

import {ConfigError, UsageError} from '../errors.js'
import {registerSecret, isSecretKey} from '../output/redact.js'
import type {RepositoryStorage} from '../repository/storage.js'

export interface WalLocationFlags {
  repo?: string
  stack?: string
  'aws-env-file'?: string
}

/** Loads AWS_* / WALG_* variables from a root- or postgres-owned 0600 file into process.env. */
export async function loadAwsEnvFile(path: string): Promise<string[]> {
  let text: string
  let mode: number
  try {
    mode = statSync(path).mode & 0o777
    text = readFileSync(path, 'utf8')
  } catch (error) {
    throw new ConfigError(
      `cannot read the S3 credentials file ${path}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`,
      {
        code: 'AWS_ENV_FILE_UNREADABLE',
        hint: 'Create it with AWS_ACCESS_KEY_ID=… lines, owned by the postgres user, mode 0600.',
      },
    )
  }
  if ((mode & 0o077) !== 0) {
    throw new ConfigError(`${path} is readable by others (mode ${mode.toString(8)}): it holds S3 credentials`, {
      code: 'AWS_ENV_FILE_MODE',
      hint: `chmod 600 ${path}`,
    })
  }
  const {parseEnvText} = await import('../config/env-file.js')
  const parsed = parseEnvText(text, path)
  const errors = parsed.findings.filter((f) => f.severity === 'error')
  if (errors.length > 0)
    throw new ConfigError(`${path}:${errors[0].line}: ${errors[0].message}`, {code: 'AWS_ENV_FILE_INVALID'})
  const keys: string[] = []
  for (const entry of parsed.entries.values()) {
    if (!/^(AWS_|WALG_|PG)/.test(entry.key)) continue
    if (isSecretKey(entry.key)) registerSecret(entry.value)
    process.env[entry.key] = entry.value
    keys.push(entry.key)
  }
  return keys
}

export interface ResolvedLocation {
  repository: string
  stack: string
}

/**
 * Flags win; the config (`settings`) is only consulted when a flag is missing, so the archive
 * path never reads charge-ops.yaml when the command line is complete.
 */
export function resolveLocation(
  flags: WalLocationFlags,
  settings?: () => {repository?: string; stack: string},
): ResolvedLocation {
  let repository = flags.repo ?? process.env.CHARGE_OPS_REPO
  let stack = flags.stack
  if (!repository || !stack) {
    const s = settings?.()
    repository ??= s?.repository
    stack ??= s?.stack
  }
  if (!repository) {
    throw new ConfigError(
      'no backup repository: pass --repo (a directory or s3://bucket/prefix) or set backup.repository',
      {
        code: 'CONFIG_MISSING',
        hint: 'archive_command must be self-contained: charge-ops wal push %p --repo /var/backups/charge-ops --stack charge-analysis',
      },
    )
  }
  if (!stack || !/^[a-z0-9][a-z0-9-]*$/.test(stack))
    throw new UsageError(`invalid --stack ${JSON.stringify(stack)}`, {hint: 'lower-case letters, digits and dashes'})
  return {repository, stack}
}

export async function openWalRepository(
  flags: WalLocationFlags,
  settings?: () => {repository?: string; stack: string},
): Promise<{storage: RepositoryStorage} & ResolvedLocation> {
  if (flags['aws-env-file']) await loadAwsEnvFile(flags['aws-env-file'])
  const location = resolveLocation(flags, settings)
  const {openRepository} = await import('../repository/open.js')
  return {storage: await openRepository(location.repository), ...location}
}
