/**
 * Structured JSON logs (pino): INFO and above to <LOG_DIR>/app.log, ERROR and above also to
 * <LOG_DIR>/error.log — the guide's Loguru setup. Files rotate daily (app.log → app.YYYY-MM-DD.log)
 * and rotated files older than 30 days are deleted. Every line passes a redactor first: the
 * service's secrets, URL passwords and bearer tokens never reach a file.
 *
 * The API and the worker share the files (appends are atomic per line with O_APPEND); whichever
 * process first notices the day changed renames the file, the other reopens it.
 */
import {
  closeSync,
  existsSync,
  mkdirSync,
  openSync,
  readdirSync,
  renameSync,
  statSync,
  unlinkSync,
  writeSync,
} from 'node:fs'
import {join} from 'node:path'

import pino, {type Logger} from 'pino'

export const RETENTION_DAYS = 30

const day = (ms: number) => new Date(ms).toISOString().slice(0, 10)

export function makeRedactor(secrets: string[]): (line: string) => string {
  const escaped = secrets.filter((s) => s.length >= 4).map((s) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'))
  const known = escaped.length > 0 ? new RegExp(escaped.join('|'), 'g') : undefined
  return (line) => {
    let out = line
      .replace(/(\w+:\/\/[^:/@\s"]*:)[^@\s"]+@/g, '$1******@')
      .replace(/(Bearer\s+)[A-Za-z0-9._~+/=-]+/gi, '$1******')
    if (known) out = out.replace(known, '******')
    return out
  }
}

/** A destination that writes synchronously to `<dir>/<name>.log` and rotates it daily. */
export class DailyFile {
  private fd = -1
  private currentDay = ''
  private nextCheck = 0

  constructor(
    readonly dir: string,
    readonly name: string,
    private readonly redact: (line: string) => string,
    private readonly retentionDays = RETENTION_DAYS,
  ) {
    mkdirSync(dir, {recursive: true})
  }

  get path(): string {
    return join(this.dir, `${this.name}.log`)
  }

  write(line: string): void {
    const now = Date.now()
    if (this.fd < 0 || now >= this.nextCheck) this.roll(now)
    writeSync(this.fd, this.redact(line))
  }

  private roll(now: number): void {
    const today = day(now)
    this.nextCheck = now + 1000
    if (this.fd >= 0 && today === this.currentDay && existsSync(this.path)) return
    if (this.fd >= 0) {
      closeSync(this.fd)
      this.fd = -1
    }
    try {
      const started = day(statSync(this.path).mtimeMs)
      if (started !== today) {
        const target = join(this.dir, `${this.name}.${started}.log`)
        if (!existsSync(target)) renameSync(this.path, target)
      }
    } catch {
      // no file yet, or another process rotated it first
    }
    this.fd = openSync(this.path, 'a', 0o640)
    this.currentDay = today
    this.prune(now)
  }

  private prune(now: number): void {
    const cutoff = day(now - this.retentionDays * 86_400_000)
    const pattern = new RegExp(`^${this.name}\\.(\\d{4}-\\d{2}-\\d{2})\\.log$`)
    for (const file of readdirSync(this.dir)) {
      const m = pattern.exec(file)
      if (m && m[1]! < cutoff) {
        try {
          unlinkSync(join(this.dir, file))
        } catch {
          // already gone
        }
      }
    }
  }
}

export interface LoggerOptions {
  logDir: string
  secrets: string[]
  /** also write to stdout (foreground runs) */
  stdout?: boolean
  name: string
  level?: string
}

export function createServiceLogger(options: LoggerOptions): Logger {
  const redact = makeRedactor(options.secrets)
  const app = new DailyFile(options.logDir, 'app', redact)
  const errors = new DailyFile(options.logDir, 'error', redact)
  const streams: pino.StreamEntry[] = [
    {level: 'info', stream: app},
    {level: 'error', stream: errors},
  ]
  if (options.stdout)
    streams.push({level: 'info', stream: {write: (line: string) => process.stdout.write(redact(line))}})
  return pino(
    {
      name: options.name,
      level: options.level ?? process.env.LOG_LEVEL ?? 'info',
      base: {service: options.name, pid: process.pid},
      timestamp: pino.stdTimeFunctions.isoTime,
      redact: {
        paths: ['req.headers.authorization', 'req.headers.cookie', '*.password', '*.secretKey', '*.token'],
        censor: '******',
      },
    },
    pino.multistream(streams),
  )
}
