/** Versions recorded in manifests. */
import {readFileSync} from 'node:fs'

let cached: string | undefined

/** charge-ops' own version, from its package.json. */
export function version(): string {
  if (cached) return cached
  try {
    const pkg = JSON.parse(readFileSync(new URL('../../../package.json', import.meta.url), 'utf8')) as {
      version?: string
    }
    cached = pkg.version ?? 'unknown'
  } catch {
    try {
      const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as {version?: string}
      cached = pkg.version ?? 'unknown'
    } catch {
      cached = 'unknown'
    }
  }
  return cached
}
