import {formatDuration} from '../core/units/duration.js'
import {formatBytes} from '../core/units/size.js'
import type {Logger} from './logger.js'

/**
 * The one progress reporter for long work (dump, upload, restore, tar): bytes, rate and ETA.
 * On a TTY it redraws one line; elsewhere (cron, CI, --json) it prints a line at most every
 * `intervalMs` so logs stay readable; with `enabled: false` (--quiet) it prints nothing.
 */
export interface ProgressOptions {
  label: string
  totalBytes?: number
  logger: Logger
  tty?: boolean
  enabled?: boolean
  intervalMs?: number
  now?: () => number
}

export interface Progress {
  add(bytes: number): void
  readonly bytes: number
  done(note?: string): void
}

export function createProgress(options: ProgressOptions): Progress {
  const now = options.now ?? Date.now
  const started = now()
  const interval = options.intervalMs ?? (options.tty ? 200 : 10_000)
  let bytes = 0
  let lastDraw = 0
  const line = () => {
    const elapsed = Math.max(now() - started, 1)
    const rate = (bytes / elapsed) * 1000
    let text = `${options.label}: ${formatBytes(bytes)}`
    if (options.totalBytes) {
      const pct = Math.min(100, (bytes / options.totalBytes) * 100)
      const eta = rate > 0 ? ((options.totalBytes - bytes) / rate) * 1000 : Number.NaN
      text += ` / ${formatBytes(options.totalBytes)} (${pct.toFixed(0)}%)`
      text += ` ${formatBytes(rate)}/s ETA ${formatDuration(eta)}`
    } else {
      text += ` ${formatBytes(rate)}/s`
    }
    return text
  }
  const draw = (force: boolean) => {
    if (options.enabled === false) return
    const t = now()
    if (!force && t - lastDraw < interval) return
    lastDraw = t
    if (options.tty) options.logger.write(`\r\u001B[2K${line()}`)
    else options.logger.write(`${line()}\n`)
  }
  return {
    add(n: number) {
      bytes += n
      draw(false)
    },
    get bytes() {
      return bytes
    },
    done(note?: string) {
      if (options.enabled === false) return
      const elapsed = formatDuration(now() - started)
      const text = `${line()} in ${elapsed}${note ? ` — ${note}` : ''}`
      if (options.tty) options.logger.write(`\r\u001B[2K${text}\n`)
      else options.logger.write(`${text}\n`)
    },
  }
}
