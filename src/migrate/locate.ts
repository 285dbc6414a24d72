/**
 * Where the migrations and the database are: --dir, else <baseDir>/service/migrations when it
 * exists, else the service/migrations bundled with the charge-ops package. The database URL:
 * --database-url / MIGRATION_DATABASE_URL (a migration-role URL), else the settings' DATABASE_URL.
 */
import {existsSync, readFileSync} from 'node:fs'
import {dirname, join, resolve} from 'node:path'
import {fileURLToPath} from 'node:url'

import type {Settings} from '../config/settings.js'
import {requireSetting} from '../config/settings.js'
import {registerSecret} from '../output/redact.js'
import {passwordOf} from '../config/settings.js'

/** The charge-ops package root (works from src/ under tsx and from dist/src/ when built). */
export function packageRoot(from = fileURLToPath(import.meta.url)): string {
  let dir = dirname(from)
  for (;;) {
    const manifest = join(dir, 'package.json')
    if (existsSync(manifest)) {
      try {
        if ((JSON.parse(readFileSync(manifest, 'utf8')) as {name?: string}).name === 'charge-ops') return dir
      } catch {
        // keep walking
      }
    }
    const parent = dirname(dir)
    if (parent === dir) throw new Error('cannot find the charge-ops package root')
    dir = parent
  }
}

export function bundledMigrationsDir(): string {
  return join(packageRoot(), 'service', 'migrations')
}

export function resolveMigrationsDir(
  flag: string | undefined,
  settings: Pick<Settings, 'baseDir'> | undefined,
  cwd = process.cwd(),
): string {
  if (flag) return resolve(cwd, flag)
  if (settings) {
    const local = join(settings.baseDir, 'service', 'migrations')
    if (existsSync(local)) return local
  }
  return bundledMigrationsDir()
}

export function resolveDatabaseUrl(
  flag: string | undefined,
  settings: Pick<Settings, 'databaseUrl'> | undefined,
): string {
  const url = flag ?? settings?.databaseUrl
  registerSecret(passwordOf(url))
  return requireSetting(
    url,
    'the database URL',
    'Pass --database-url (or set MIGRATION_DATABASE_URL for the migration role), or set DATABASE_URL in the environment or the .env file.',
  )
}
