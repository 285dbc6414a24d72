import type {Finding} from '../findings.js'
import {findingsFor, strictSeverity, type RuleContext} from './types.js'
import {formatPgDuration, tryParseDuration} from '../../core/units/duration.js'
import {formatPgMemory, pgSize, tryParseSize} from '../../core/units/size.js'

// postgresql.conf's own units; a bare number counts in the parameter's base unit.
const parseMemory = (value: string, baseUnitBytes: number) =>
  tryParseSize(value, {bareBytes: baseUnitBytes, units: 'postgres'})
const parseDuration = (value: string, baseUnitMs: number) =>
  tryParseDuration(value, {bareMs: baseUnitMs, units: 'postgres', negative: true})

export interface ConfSetting {
  value: string
  line: number
}

export interface ParsedPostgresqlConf {
  file: string
  /** lower-cased parameter name → the last assignment (the one PostgreSQL uses) */
  settings: Map<string, ConfSetting>
  findings: Finding[]
}

const LINE = /^\s*([A-Za-z_][A-Za-z0-9_.]*)\s*(?:=\s*|\s+)(.*)$/

/** Parses postgresql.conf: `name = value`, `=` optional, single-quoted values, # comments. */
export function parsePostgresqlConf(text: string, file: string): ParsedPostgresqlConf {
  const {findings, add} = findingsFor(file)
  const settings = new Map<string, ConfSetting>()
  text.split(/\r?\n/).forEach((raw, index) => {
    const line = index + 1
    const trimmed = raw.trim()
    if (trimmed === '' || trimmed.startsWith('#')) return
    const match = LINE.exec(trimmed)
    if (!match) {
      add(
        'error',
        'postgresql/syntax',
        'line is not "name = value"',
        'Write the parameter as name = value, or comment the line out with #.',
        line,
      )
      return
    }
    const name = match[1].toLowerCase()
    const value = readValue(match[2])
    if (value === undefined) {
      add(
        'error',
        'postgresql/syntax',
        `${name}: the quoted value is never closed`,
        "Close the single quote (write '' for a quote inside the value).",
        line,
        name,
      )
      return
    }
    if (name.startsWith('include')) {
      add(
        'info',
        'postgresql/include',
        `${name} is not followed; parameters set in the included file are not checked`,
        undefined,
        line,
        name,
      )
      return
    }
    settings.set(name, {value, line})
  })
  return {file, settings, findings}
}

function readValue(rest: string): string | undefined {
  if (rest.startsWith("'")) {
    let out = ''
    for (let i = 1; i < rest.length; i++) {
      if (rest[i] === "'") {
        if (rest[i + 1] === "'") {
          out += "'"
          i++
          continue
        }
        return out
      }
      if (rest[i] === '\\' && i + 1 < rest.length) {
        out += rest[++i]
        continue
      }
      out += rest[i]
    }
    return undefined
  }
  const hash = rest.indexOf('#')
  return (hash === -1 ? rest : rest.slice(0, hash)).trim()
}

/** PostgreSQL 15 defaults of the parameters judged here (used when the file does not set them). */
const DEFAULTS: Record<string, string> = {
  shared_buffers: '128MB',
  effective_cache_size: '4GB',
  work_mem: '4MB',
  maintenance_work_mem: '64MB',
  checkpoint_timeout: '5min',
  max_connections: '100',
  superuser_reserved_connections: '3',
  archive_mode: 'off',
  wal_level: 'replica',
}

/** Base unit of unit-less numbers, per parameter (pg_settings.unit). */
const MEMORY_BASE: Record<string, number> = {
  shared_buffers: 8192,
  effective_cache_size: 8192,
  work_mem: 1024,
  maintenance_work_mem: 1024,
}

export interface PgEffective {
  value: string
  /** undefined when the file does not set it and the PostgreSQL default applies */
  line?: number
}

export function effective(parsed: ParsedPostgresqlConf, name: string): PgEffective {
  const set = parsed.settings.get(name)
  return set ? {value: set.value, line: set.line} : {value: DEFAULTS[name] ?? ''}
}

const MB = 1024 ** 2
const pct = (part: number, whole: number) => `${Math.round((part / whole) * 100)} %`

type Add = ReturnType<typeof findingsFor>['add']
const setOrDefault = (e: PgEffective) => (e.line ? '' : ' (not set: PostgreSQL default)')

/** A memory parameter's size in bytes (undefined, with an error finding, when it is not one). */
function memory(parsed: ParsedPostgresqlConf, add: Add, name: string): {bytes?: number; at: PgEffective} {
  const at = effective(parsed, name)
  const bytes = parseMemory(at.value, MEMORY_BASE[name])
  if (bytes === undefined)
    add(
      'error',
      'postgresql/type',
      `${name} is not a memory size`,
      `Write it with a unit, e.g. ${name} = 256MB.`,
      at.line,
      name,
    )
  return {bytes, at}
}

/** shared_buffers ≈ 25 % and effective_cache_size 50–75 % of the host's RAM. */
function checkCacheSizes(parsed: ParsedPostgresqlConf, add: Add, ram: number): void {
  const ramText = formatPgMemory(ram)
  const sb = memory(parsed, add, 'shared_buffers')
  if (sb.bytes !== undefined) {
    const ratio = sb.bytes / ram
    if (ratio < 0.15 || ratio > 0.4) {
      add(
        'warning',
        'postgresql/shared-buffers',
        `shared_buffers is ${formatPgMemory(sb.bytes)} = ${pct(sb.bytes, ram)} of ${ramText} RAM${setOrDefault(sb.at)}; the guide recommends about 25 %`,
        `Set shared_buffers = ${pgSize(ram * 0.25)}.`,
        sb.at.line,
        'shared_buffers',
      )
    }
  }
  const ecs = memory(parsed, add, 'effective_cache_size')
  if (ecs.bytes !== undefined) {
    const ratio = ecs.bytes / ram
    if (ratio < 0.49 || ratio > 0.76) {
      add(
        'warning',
        'postgresql/effective-cache-size',
        `effective_cache_size is ${formatPgMemory(ecs.bytes)} = ${pct(ecs.bytes, ram)} of ${ramText} RAM${setOrDefault(ecs.at)}; the guide recommends 50–75 %`,
        `Set effective_cache_size between ${pgSize(ram * 0.5)} and ${pgSize(ram * 0.75)}.`,
        ecs.at.line,
        'effective_cache_size',
      )
    }
  }
}

/** work_mem 32–64MB, and × max_connections within RAM; maintenance_work_mem 256MB. */
function checkWorkMemory(parsed: ParsedPostgresqlConf, add: Add, ram: number): void {
  const ramText = formatPgMemory(ram)
  const maxConnAt = effective(parsed, 'max_connections')
  const maxConnections = /^\d+$/.test(maxConnAt.value) ? Number(maxConnAt.value) : undefined
  if (maxConnections === undefined)
    add(
      'error',
      'postgresql/type',
      'max_connections is not an integer',
      'Set max_connections = 200 (the guide) or what your pools need.',
      maxConnAt.line,
      'max_connections',
    )
  const wm = memory(parsed, add, 'work_mem')
  if (wm.bytes !== undefined) {
    if (maxConnections !== undefined && wm.bytes * maxConnections > ram) {
      add(
        'warning',
        'postgresql/work-mem',
        `work_mem ${formatPgMemory(wm.bytes)} × max_connections ${maxConnections} = ${formatPgMemory(roundMb(wm.bytes * maxConnections))} exceeds the ${ramText} RAM: concurrent sorts can exhaust memory`,
        'Lower work_mem or max_connections (put PgBouncer in front to need fewer connections).',
        wm.at.line,
        'work_mem',
      )
    } else if (wm.bytes < 32 * MB || wm.bytes > 64 * MB) {
      add(
        'info',
        'postgresql/work-mem',
        `work_mem is ${formatPgMemory(wm.bytes)}${setOrDefault(wm.at)}; the guide recommends 32MB–64MB`,
        'Set work_mem = 32MB (raise for complex analytical queries).',
        wm.at.line,
        'work_mem',
      )
    }
  }
  const mwm = memory(parsed, add, 'maintenance_work_mem')
  if (mwm.bytes !== undefined) {
    if (mwm.bytes > ram * 0.25) {
      add(
        'warning',
        'postgresql/maintenance-work-mem',
        `maintenance_work_mem is ${formatPgMemory(mwm.bytes)} = ${pct(mwm.bytes, ram)} of ${ramText} RAM; autovacuum workers each may use it`,
        'Set maintenance_work_mem = 256MB (the guide).',
        mwm.at.line,
        'maintenance_work_mem',
      )
    } else if (mwm.bytes < 256 * MB) {
      add(
        'info',
        'postgresql/maintenance-work-mem',
        `maintenance_work_mem is ${formatPgMemory(mwm.bytes)}${setOrDefault(mwm.at)}; the guide recommends 256MB for index builds and VACUUM`,
        'Set maintenance_work_mem = 256MB.',
        mwm.at.line,
        'maintenance_work_mem',
      )
    }
  }
}

/** checkpoint_timeout within PostgreSQL's range, and about 15min. */
function checkCheckpointTimeout(parsed: ParsedPostgresqlConf, add: Add): void {
  const ct = effective(parsed, 'checkpoint_timeout')
  const ctMs = parseDuration(ct.value, 1000)
  if (ctMs === undefined) {
    add(
      'error',
      'postgresql/type',
      'checkpoint_timeout is not a duration',
      'Write it with a unit, e.g. checkpoint_timeout = 15min.',
      ct.line,
      'checkpoint_timeout',
    )
  } else if (ctMs < 30_000 || ctMs > 86_400_000) {
    add(
      'error',
      'postgresql/range',
      `checkpoint_timeout ${formatPgDuration(ctMs)} is outside PostgreSQL's range 30s–1d; the server will not start`,
      'Set checkpoint_timeout = 15min.',
      ct.line,
      'checkpoint_timeout',
    )
  } else if (ctMs < 10 * 60_000 || ctMs > 60 * 60_000) {
    add(
      'info',
      'postgresql/checkpoint-timeout',
      `checkpoint_timeout is ${formatPgDuration(ctMs)}${setOrDefault(ct)}; the guide recommends 15min (with max_wal_size) to reduce write amplification`,
      'Set checkpoint_timeout = 15min and size max_wal_size for it.',
      ct.line,
      'checkpoint_timeout',
    )
  }
}

/** archive_mode on (strict), with an archive_command or library and a wal_level above minimal; ssl (strict). */
function checkArchivingAndSsl(parsed: ParsedPostgresqlConf, add: Add, ctx: RuleContext): void {
  const archive = effective(parsed, 'archive_mode')
  const archiveOn = ['on', 'always', 'true', 'yes', '1'].includes(archive.value.toLowerCase())
  if (!archiveOn) {
    add(
      strictSeverity(ctx),
      'postgresql/archive-mode',
      `archive_mode is ${archive.value || 'off'}${setOrDefault(archive)}: WAL is not archived, so point-in-time recovery is impossible`,
      'Set archive_mode = on and an archive_command (charge-ops backup wal-push).',
      archive.line,
      'archive_mode',
    )
  } else {
    const command = effective(parsed, 'archive_command').value
    const library = effective(parsed, 'archive_library').value
    if (!command && !library)
      add(
        'error',
        'postgresql/archive-command',
        'archive_mode is on but neither archive_command nor archive_library is set: WAL piles up in pg_wal',
        'Set archive_command (e.g. charge-ops backup wal-push %p).',
        archive.line,
        'archive_mode',
      )
    const walLevel = effective(parsed, 'wal_level')
    if (walLevel.value.toLowerCase() === 'minimal')
      add(
        'error',
        'postgresql/wal-level',
        'wal_level = minimal with archive_mode on: PostgreSQL refuses to start',
        'Set wal_level = replica.',
        walLevel.line,
        'wal_level',
      )
  }
  const ssl = parsed.settings.get('ssl')
  if (ctx.strict && (!ssl || !['on', 'true', 'yes', '1'].includes(ssl.value.toLowerCase()))) {
    add(
      'warning',
      'postgresql/ssl',
      'ssl is off: clients on other hosts cannot use sslmode=require',
      'Set ssl = on with ssl_cert_file / ssl_key_file (the guide §6.1.6).',
      ssl?.line,
      'ssl',
    )
  }
}

/**
 * The guide's tuning table (§6.1.4) applied to the host's RAM: shared_buffers ≈ 25 %,
 * effective_cache_size 50–75 %, work_mem 32–64MB (and × max_connections must fit in RAM),
 * maintenance_work_mem 256MB, checkpoint_timeout 15min; archive_mode on in production.
 */
export function validatePostgresqlConf(parsed: ParsedPostgresqlConf, ctx: RuleContext): Finding[] {
  const {findings, add} = findingsFor(parsed.file)
  findings.push(...parsed.findings)
  checkCacheSizes(parsed, add, ctx.hostRamBytes)
  checkWorkMemory(parsed, add, ctx.hostRamBytes)
  checkCheckpointTimeout(parsed, add)
  checkArchivingAndSsl(parsed, add, ctx)
  return findings
}

/** max_connections minus the connections reserved for superusers (what the application may use). */
export function usableConnections(
  parsed: ParsedPostgresqlConf,
): {usable: number; maxConnections: number; reserved: number; line?: number} | undefined {
  const max = effective(parsed, 'max_connections')
  const reservedSu = effective(parsed, 'superuser_reserved_connections')
  const reservedRole = parsed.settings.get('reserved_connections')
  if (!/^\d+$/.test(max.value) || !/^\d+$/.test(reservedSu.value)) return undefined
  const reserved =
    Number(reservedSu.value) + (reservedRole && /^\d+$/.test(reservedRole.value) ? Number(reservedRole.value) : 0)
  return {usable: Number(max.value) - reserved, maxConnections: Number(max.value), reserved, line: max.line}
}

function roundMb(bytes: number): number {
  return Math.max(MB, Math.round(bytes / MB) * MB)
}
