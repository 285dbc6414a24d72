import {redact} from './redact.js'

/**
 * Human-facing diagnostics. Everything goes to stderr (stdout is reserved for results) and through
 * the redactor. `quiet` keeps only warnings and errors (for cron); `verbose` adds debug lines.
 */
export interface Logger {
  info(message: string): void
  warn(message: string): void
  error(message: string): void
  debug(message: string): void
  /** raw line to stderr, still redacted (used by progress reporters) */
  write(text: string): void
}

export interface LoggerOptions {
  quiet?: boolean
  verbose?: boolean
  color?: boolean
  stream?: NodeJS.WritableStream
}

const paint = (enabled: boolean, code: number, text: string) => (enabled ? `\u001B[${code}m${text}\u001B[0m` : text)

export function createLogger(options: LoggerOptions = {}): Logger {
  const stream = options.stream ?? process.stderr
  const color = options.color ?? false
  const emit = (text: string) => stream.write(redact(text) + '\n')
  return {
    info: (m) => (options.quiet ? undefined : emit(m)),
    warn: (m) => emit(`${paint(color, 33, 'warning:')} ${m}`),
    error: (m) => emit(`${paint(color, 31, 'error:')} ${m}`),
    debug: (m) => (options.verbose ? emit(paint(color, 2, `debug: ${m}`)) : undefined),
    write: (t) => stream.write(redact(t)),
  }
}

/** A logger that drops everything: for library callers and tests that do not care. */
export const silentLogger: Logger = {info() {}, warn() {}, error() {}, debug() {}, write() {}}
