import {closeSync, fstatSync, openSync, readSync} from 'node:fs'

import {ConfigError} from '../errors.js'

/** Config files larger than this are refused before parsing: a 20 MB ".env" is a mistake, not a config. */
export const MAX_CONFIG_BYTES = 1024 * 1024

export interface TextFile {
  path: string
  text: string
  /** permission bits (e.g. 0o600) */
  mode: number
}

/**
 * Reads a configuration file as UTF-8 text, refusing what cannot be a config file: missing,
 * a directory, over 1 MiB, or binary (NUL bytes / invalid UTF-8). Errors carry the path and a fix.
 */
export function readConfigText(path: string, kind: string): TextFile {
  let fd: number
  try {
    fd = openSync(path, 'r')
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code
    const reason =
      code === 'ENOENT'
        ? 'does not exist'
        : code === 'EACCES'
          ? 'is not readable (permission denied)'
          : `cannot be opened (${code})`
    throw new ConfigError(`${path}: ${kind} ${reason}`, {
      code: 'CONFIG_UNREADABLE',
      hint:
        code === 'ENOENT'
          ? `Create it (charge-ops init writes one) or point to it with the matching flag.`
          : `Check the file's owner and mode.`,
    })
  }
  try {
    const stat = fstatSync(fd)
    if (stat.isDirectory())
      throw new ConfigError(`${path}: is a directory, expected a ${kind} file`, {code: 'CONFIG_UNREADABLE'})
    if (stat.size > MAX_CONFIG_BYTES) {
      throw new ConfigError(
        `${path}:1: ${kind} is ${(stat.size / 1024 / 1024).toFixed(1)} MiB; config files over 1 MiB are refused`,
        {
          code: 'CONFIG_UNREADABLE',
          hint: 'Point the flag at the real configuration file; this one is too large to be one.',
        },
      )
    }
    const buffer = Buffer.alloc(stat.size)
    let read = 0
    while (read < stat.size) {
      const n = readSync(fd, buffer, read, stat.size - read, read)
      if (n === 0) break
      read += n
    }
    const bytes = buffer.subarray(0, read)
    const nul = bytes.indexOf(0)
    if (nul !== -1) {
      const line = bytes.subarray(0, nul).toString('latin1').split('\n').length
      throw new ConfigError(`${path}:${line}: ${kind} is binary (NUL byte at offset ${nul}), not text`, {
        code: 'CONFIG_UNREADABLE',
        hint: 'Point the flag at a text configuration file.',
      })
    }
    let text: string
    try {
      text = new TextDecoder('utf-8', {fatal: true}).decode(bytes)
    } catch {
      throw new ConfigError(`${path}:1: ${kind} is not valid UTF-8 text`, {
        code: 'CONFIG_UNREADABLE',
        hint: 'Save the file as UTF-8.',
      })
    }
    if (text.charCodeAt(0) === 0xfeff) text = text.slice(1)
    return {path, text, mode: stat.mode & 0o777}
  } finally {
    closeSync(fd)
  }
}
