import {execFileSync} from 'node:child_process'
import fs from 'node:fs'
import path from 'node:path'

/**
 * Error thrown when a binary the tests need is missing. The message carries the exact
 * command that installs it: tests fail loudly, they never skip.
 */
export class MissingBinaryError extends Error {
  constructor(
    readonly binary: string,
    readonly installHint: string,
    searched: string[],
  ) {
    super(`required binary '${binary}' not found (searched: ${searched.join(', ')}). Install it with: ${installHint}`)
    this.name = 'MissingBinaryError'
  }
}

function isExecutable(file: string): boolean {
  try {
    fs.accessSync(file, fs.constants.X_OK)
    return fs.statSync(file).isFile()
  } catch {
    return false
  }
}

/** The absolute path of `name`, searched in `dirs` first, then in PATH; undefined when missing. */
export function findBinary(name: string, dirs: string[] = []): string | undefined {
  if (name.includes('/')) return isExecutable(name) ? path.resolve(name) : undefined
  const pathDirs = (process.env.PATH ?? '').split(path.delimiter).filter(Boolean)
  for (const dir of [...dirs, ...pathDirs, '/usr/sbin', '/sbin']) {
    const candidate = path.join(dir, name)
    if (isExecutable(candidate)) return candidate
  }
  return undefined
}

/**
 * The absolute path of `name`, or a MissingBinaryError whose message holds `installHint`
 * (the exact install command, e.g. `apt-get install -y redis-server`).
 */
export function requireBinary(name: string, installHint: string, opts: {dirs?: string[]} = {}): string {
  const found = findBinary(name, opts.dirs)
  if (found) return found
  const searched = [...(opts.dirs ?? []), 'PATH']
  throw new MissingBinaryError(name, installHint, searched)
}

export const PG_INSTALL_HINT = 'apt-get install -y postgresql-15 postgresql-client-15'
export const REDIS_INSTALL_HINT = 'apt-get install -y redis-server'

let pgBinDirCache: string | undefined

/**
 * The PostgreSQL server binaries' directory: `pg_config --bindir` when it holds the
 * server binaries (initdb, pg_ctl, postgres), else /usr/lib/postgresql/15/bin.
 * Throws MissingBinaryError (with the apt-get command) when neither has them.
 */
export function pgBinDir(): string {
  if (pgBinDirCache) return pgBinDirCache
  const candidates: string[] = []
  if (process.env.PG_BINDIR) candidates.push(process.env.PG_BINDIR)
  const pgConfig = findBinary('pg_config')
  if (pgConfig) {
    try {
      candidates.push(execFileSync(pgConfig, ['--bindir'], {encoding: 'utf8'}).trim())
    } catch {
      // fall through to the default
    }
  }
  candidates.push('/usr/lib/postgresql/15/bin')
  for (const dir of candidates) {
    if (['initdb', 'pg_ctl', 'postgres'].every((b) => isExecutable(path.join(dir, b)))) {
      pgBinDirCache = dir
      return dir
    }
  }
  throw new MissingBinaryError('initdb', PG_INSTALL_HINT, candidates)
}
