/**
 * PostgreSQL-style quantities: memory ("8GB", "128MB", "1024" in the parameter's base unit) and
 * time ("15min", "300" in seconds). Units follow postgresql.conf: kB, MB, GB, TB (powers of 1024),
 * B; us, ms, s, min, h, d.
 */
const MEMORY_UNITS: Record<string, number> = {b: 1, kb: 1024, mb: 1024 ** 2, gb: 1024 ** 3, tb: 1024 ** 4}
const TIME_UNITS: Record<string, number> = {us: 0.001, ms: 1, s: 1000, min: 60_000, h: 3_600_000, d: 86_400_000}

/** Bytes from a memory setting; `baseUnitBytes` applies to unit-less numbers (8192 for shared_buffers). */
export function parseMemory(value: string, baseUnitBytes: number): number | undefined {
  const match = /^\s*(-?\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*$/.exec(value)
  if (!match) return undefined
  const n = Number(match[1])
  if (match[2] === '') return n * baseUnitBytes
  const unit = MEMORY_UNITS[match[2].toLowerCase()]
  return unit === undefined ? undefined : n * unit
}

/** Milliseconds from a time setting; `baseUnitMs` applies to unit-less numbers (1000 for checkpoint_timeout). */
export function parseDuration(value: string, baseUnitMs: number): number | undefined {
  const match = /^\s*(-?\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*$/.exec(value)
  if (!match) return undefined
  const n = Number(match[1])
  if (match[2] === '') return n * baseUnitMs
  const unit = TIME_UNITS[match[2].toLowerCase()]
  return unit === undefined ? undefined : n * unit
}

/** "16GB", "16G", "16384MB", "17179869184" → bytes (the --host-ram flag; unit-less means bytes). */
export function parseHostRam(value: string): number | undefined {
  const match = /^\s*(\d+(?:\.\d+)?)\s*([kKmMgGtT]i?[bB]?|[bB])?\s*$/.exec(value)
  if (!match) return undefined
  const n = Number(match[1])
  if (!match[2]) return n
  const unit = MEMORY_UNITS[match[2].toLowerCase().replace('i', '').replace(/^([kmgt])$/, '$1b')]
  return unit === undefined ? undefined : n * unit
}

export function formatBytes(bytes: number): string {
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

export function formatDuration(ms: number): string {
  if (ms % 3_600_000 === 0) return `${ms / 3_600_000}h`
  if (ms % 60_000 === 0) return `${ms / 60_000}min`
  if (ms % 1000 === 0) return `${ms / 1000}s`
  return `${ms}ms`
}

/** A size written the way postgresql.conf accepts it: whole GB when exact, else whole MB. */
export function pgSize(bytes: number): string {
  const mb = Math.max(1, Math.round(bytes / 1024 ** 2))
  return mb % 1024 === 0 ? `${mb / 1024}GB` : `${mb}MB`
}
