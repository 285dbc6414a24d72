/**
 * Opening a repository: the local or S3 driver for a location, or the configured one. Apart from
 * storage.ts (the interface both drivers implement), so that the drivers do not import their factory.
 */
import type {Settings} from '../config/settings.js'
import type {RepositoryStorage} from './storage.js'

export const REPOSITORY_HINT =
  'Pass --repo DIR or --repo s3://BUCKET/PREFIX, set CHARGE_OPS_REPO, or set backup.repository in charge-ops.yaml.'

/** Opens the repository named by a path or `s3://bucket/prefix`. */
export async function openRepository(
  location: string,
  s3Options?: import('./s3-storage.js').S3StorageOptions,
): Promise<RepositoryStorage> {
  if (location.startsWith('s3://')) {
    const {S3Storage} = await import('./s3-storage.js')
    return S3Storage.fromUrl(location, s3Options ?? {})
  }
  // A path that exists but is not a directory (a file, a typo'd key path) would fail every
  // operation later with ENOTDIR — a bug-looking error; say what is wrong instead.
  const {stat} = await import('node:fs/promises')
  const s = await stat(location).catch(() => undefined)
  if (s && !s.isDirectory()) {
    const {UsageError} = await import('../errors.js')
    throw new UsageError(`the backup repository ${location} is not a directory`, {
      code: 'REPOSITORY_NOT_DIRECTORY',
      hint: 'Point --repo (or CHARGE_OPS_REPO / backup.repository) at a directory, or at s3://BUCKET/PREFIX.',
    })
  }
  const {LocalStorage} = await import('./local-storage.js')
  return new LocalStorage(location)
}

/** Opens the configured repository (S3 options from charge-ops.yaml's backup.s3). */
export async function openConfiguredRepository(settings: Settings): Promise<RepositoryStorage> {
  // imported here, not at the top: `wal push` / `wal fetch` open a repository on every WAL segment,
  // and a static import made them load the whole config stack (zod, yaml: ~100 ms) for nothing
  const {requireSetting} = await import('../config/settings.js')
  const location = requireSetting(settings.repository, 'the backup repository', REPOSITORY_HINT)
  return openRepository(location, settings.yaml.backup.s3)
}
