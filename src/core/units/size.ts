/**
 * Byte sizes: one grammar — a number, optional spaces, a unit of powers of 1024 written any of the
 * usual ways (`512MB`, `512M`, `512MiB`, `16 GB`, `1TB`, `8kB`, `100B`). A bare number counts
 * `bareBytes` (bytes unless the caller says otherwise: `--host-ram 16` means 16 GB).
 */
const FACTORS: Record<string, number> = {b: 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3, t: 1024 ** 4}

export interface SizeGrammar {
  /** what a unit-less number counts, in bytes (default 1) */
  bareBytes?: number
  /** `postgres`: postgresql.conf's units only (B, kB, MB, GB, TB) and its -1 = "use the default" */
  units?: 'any' | 'postgres'
}

/** Bytes, or undefined when `text` is not a size in that grammar. */
export function tryParseSize(text: string, grammar: SizeGrammar = {}): number | undefined {
  const postgres = grammar.units === 'postgres'
  const match = (
    postgres ? /^\s*(-?\d+(?:\.\d+)?)\s*(?:([kmgt])b|(b))?\s*$/i : /^\s*(\d+(?:\.\d+)?)\s*(?:([kmgt])i?b?|(b))?\s*$/i
  ).exec(text)
  if (!match) return undefined
  const n = Number(match[1])
  const unit = (match[2] ?? match[3])?.toLowerCase()
  return unit === undefined ? n * (grammar.bareBytes ?? 1) : n * FACTORS[unit]!
}

/** Bytes for humans: `512 B`, `1.5 KiB`, `3.2 GiB`; signed (growth can be negative). */
export function formatBytes(bytes: number): string {
  if (bytes < 0) return `-${formatBytes(-bytes)}`
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB']
  let value = bytes
  let unit = 0
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024
    unit++
  }
  return `${value.toFixed(unit === 0 ? 0 : 1)} ${units[unit]}`
}

/** A size written the way postgresql.conf shows it: `8GB`, `128MB`, `1.5GB` when not exact. */
export function formatPgMemory(bytes: number): string {
  const units = ['B', 'kB', 'MB', 'GB', 'TB']
  let value = bytes
  let i = 0
  while (value >= 1024 && i < units.length - 1 && Number.isInteger(value / 1024)) {
    value /= 1024
    i++
  }
  if (value >= 1024 && i < units.length - 1) {
    // not an exact multiple: show one decimal of the next unit
    while (value >= 1024 && i < units.length - 1) {
      value /= 1024
      i++
    }
    return `${value.toFixed(1)}${units[i]}`
  }
  return `${value}${units[i]}`
}

/** A size postgresql.conf accepts as a setting: whole GB when exact, else whole MB. */
export function pgSize(bytes: number): string {
  const mb = Math.max(1, Math.round(bytes / 1024 ** 2))
  return mb % 1024 === 0 ? `${mb / 1024}GB` : `${mb}MB`
}

/**
 * The bytes of a `--NAME SIZE` (or `--NAME=SIZE`, quoted or not) in a command line such as
 * archive_command, read back by capacity; undefined when absent or not a size.
 */
export function sizeFlagOf(commandLine: string, name: string): number | undefined {
  const match = new RegExp(`--${name}(?:=|\\s+)'?([0-9.]+\\s*[A-Za-z]*)'?`).exec(commandLine)
  return match ? tryParseSize(match[1]) : undefined
}
