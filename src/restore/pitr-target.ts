/** Recovery targets for `restore pitr`, and the postgresql.auto.conf lines they become (pure). */
import {UsageError} from '../errors.js'
import {confString} from '../wal/command-lines.js'
import {formatLsn, parseLsn} from '../wal/names.js'

export type RecoveryTarget =
  | {kind: 'time'; time: Date; text: string}
  | {kind: 'lsn'; lsn: bigint}
  | {kind: 'name'; name: string}
  | {kind: 'latest'}

export function parseTarget(flags: {
  'target-time'?: string
  'target-lsn'?: string
  'target-name'?: string
  latest?: boolean
}): RecoveryTarget {
  const given = [
    flags['target-time'],
    flags['target-lsn'],
    flags['target-name'],
    flags.latest ? 'latest' : undefined,
  ].filter((v) => v !== undefined)
  if (given.length !== 1) {
    throw new UsageError('give exactly one of --target-time, --target-lsn, --target-name, --latest', {
      code: 'PITR_TARGET',
      hint: 'e.g. --target-time "2026-11-28 14:03:00+08"',
    })
  }
  if (flags['target-time'] !== undefined) {
    const text = flags['target-time'].trim()
    // ISO 8601 with an explicit zone: PostgreSQL would otherwise read it in the server's TimeZone
    const m = /^(\d{4}-\d{2}-\d{2})[T ](\d{2}:\d{2}(?::\d{2}(?:\.\d{1,6})?)?)(Z|[+-]\d{2}(?::?\d{2})?)?$/i.exec(text)
    if (!m)
      throw new UsageError(`--target-time ${JSON.stringify(text)} is not a timestamp`, {
        code: 'PITR_TARGET',
        hint: 'Use ISO 8601 with a zone, e.g. 2026-11-28T14:03:00+08:00',
      })
    if (!m[3]) {
      throw new UsageError(`--target-time ${JSON.stringify(text)} has no time zone`, {
        code: 'PITR_TARGET',
        hint: 'Add the offset, e.g. 2026-11-28T14:03:00+08:00 or …Z for UTC.',
      })
    }
    const zone =
      m[3].toUpperCase() === 'Z'
        ? 'Z'
        : m[3].length === 3
          ? `${m[3]}:00`
          : m[3].includes(':')
            ? m[3]
            : `${m[3].slice(0, 3)}:${m[3].slice(3)}`
    const time = new Date(`${m[1]}T${m[2]}${zone}`)
    if (Number.isNaN(time.getTime()))
      throw new UsageError(`--target-time ${JSON.stringify(text)} is not a valid time`, {code: 'PITR_TARGET'})
    return {kind: 'time', time, text}
  }
  if (flags['target-lsn'] !== undefined) {
    try {
      return {kind: 'lsn', lsn: parseLsn(flags['target-lsn'])}
    } catch (error) {
      throw new UsageError((error as Error).message, {code: 'PITR_TARGET'})
    }
  }
  if (flags['target-name'] !== undefined) {
    if (!flags['target-name'] || flags['target-name'].length > 63)
      throw new UsageError('--target-name must be 1–63 characters (a pg_create_restore_point name)', {
        code: 'PITR_TARGET',
      })
    return {kind: 'name', name: flags['target-name']}
  }
  return {kind: 'latest'}
}

export function describeTarget(target: RecoveryTarget): string {
  switch (target.kind) {
    case 'time':
      return `time ${target.time.toISOString()}`
    case 'lsn':
      return `LSN ${formatLsn(target.lsn)}`
    case 'name':
      return `restore point "${target.name}"`
    default:
      return 'the end of the archived WAL'
  }
}

/** `2026-11-28T10:46:04.301695Z` → `2026-11-28 10:46:04.301695+00` (PostgreSQL's recovery_target_time rejects the T/Z forms). */
export function postgresTimestamp(text: string): string {
  return text
    .trim()
    .replace(/^(\d{4}-\d{2}-\d{2})T/, '$1 ')
    .replace(/Z$/i, '+00')
}

export interface RecoveryConfOptions {
  target: RecoveryTarget
  restoreCommand: string
  port?: number
  /** 'off' stops the restored copy from archiving into the same stack (drills, test copies) */
  archive?: 'keep' | 'off'
  targetTimeline?: string
}

/** The block appended to postgresql.auto.conf (later lines win over earlier ones and postgresql.conf). */
export function recoveryConf(options: RecoveryConfOptions): string {
  const lines = [
    '',
    `# added by charge-ops restore pitr (${new Date().toISOString()})`,
    `restore_command = ${confString(options.restoreCommand)}`,
  ]
  const t = options.target
  if (t.kind === 'time') lines.push(`recovery_target_time = ${confString(postgresTimestamp(t.text))}`)
  if (t.kind === 'lsn') lines.push(`recovery_target_lsn = ${confString(formatLsn(t.lsn))}`)
  if (t.kind === 'name') lines.push(`recovery_target_name = ${confString(t.name)}`)
  if (t.kind !== 'latest') {
    lines.push(`recovery_target_inclusive = on`)
    lines.push(`recovery_target_action = 'promote'`)
  }
  lines.push(`recovery_target_timeline = ${confString(options.targetTimeline ?? 'latest')}`)
  if (options.port) lines.push(`port = ${options.port}`)
  if (options.archive === 'off') lines.push(`archive_mode = off`)
  return lines.join('\n') + '\n'
}
