/** `charge-ops service logs`: the last lines of the service's logs, optionally following them. */
import {closeSync, existsSync, openSync, readSync, statSync} from 'node:fs'
import {join} from 'node:path'

import type {Settings} from '../config/settings.js'
import {UsageError} from '../errors.js'
import {logDir} from './process.js'

export type LogName = 'app' | 'error' | 'api' | `worker-${number}`

export function logFile(settings: Pick<Settings, 'stateDir'>, name: LogName): string {
  return join(logDir(settings), name === 'app' || name === 'error' ? `${name}.log` : `${name}.out`)
}

/** Reads the last `lines` lines, scanning back from the end (log files can be large). */
export function tailLines(file: string, lines: number): string[] {
  if (!existsSync(file))
    throw new UsageError(`no log at ${file}`, {
      code: 'LOG_NOT_FOUND',
      hint: 'Has the service been started (`charge-ops service start`)?',
    })
  const size = statSync(file).size
  const fd = openSync(file, 'r')
  try {
    let position = size
    let text = ''
    const chunk = Buffer.alloc(64 * 1024)
    while (position > 0 && text.split('\n').length <= lines + 1) {
      const length = Math.min(chunk.length, position)
      position -= length
      readSync(fd, chunk, 0, length, position)
      text = chunk.toString('utf8', 0, length) + text
    }
    return text
      .replace(/\n$/, '')
      .split('\n')
      .slice(-lines)
      .filter((l) => l !== '')
  } finally {
    closeSync(fd)
  }
}

/** Calls `onText` with what is appended to `file` until `signal` aborts; follows daily rotation. */
export async function followLog(file: string, onText: (text: string) => void, signal: AbortSignal): Promise<void> {
  let position = existsSync(file) ? statSync(file).size : 0
  while (!signal.aborted) {
    await new Promise((r) => setTimeout(r, 500))
    if (!existsSync(file)) continue
    const size = statSync(file).size
    if (size < position) position = 0 // rotated: a new file
    if (size === position) continue
    const fd = openSync(file, 'r')
    try {
      const buffer = Buffer.alloc(size - position)
      readSync(fd, buffer, 0, buffer.length, position)
      position = size
      onText(buffer.toString('utf8'))
    } finally {
      closeSync(fd)
    }
  }
}
