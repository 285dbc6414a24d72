/**
 * The local lock: a pid file created exclusively in a state directory, for work that must not run
 * twice on one host at once (restore files, upgrade). A lock whose holder died is taken over. Locks
 * shared between hosts live in the backup repository (src/repository/lock.ts), not here.
 */
import {readFileSync, rmSync, writeFileSync, mkdirSync} from 'node:fs'
import {dirname} from 'node:path'

import {LockHeldError} from '../../errors.js'
import {pidAlive} from '../proc/pid.js'

export interface LocalLockOptions {
  /** what holds it, for the message: "another restore files (pid 123) is running" */
  what: string
}

/** Takes the lock at `file`; returns the function that releases it. Throws LockHeldError (exit 4). */
export async function acquireLocalLock(file: string, options: LocalLockOptions): Promise<() => Promise<void>> {
  mkdirSync(dirname(file), {recursive: true})
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      writeFileSync(file, `${process.pid}\n`, {flag: 'wx', mode: 0o600})
      return async () => {
        rmSync(file, {force: true})
      }
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error
      const pid = liveLockHolder(file)
      if (pid !== undefined)
        throw new LockHeldError(`another ${options.what} (pid ${pid}) is running`, {
          hint: `Wait for it to finish; if no such process runs, remove ${file}.`,
        })
      rmSync(file, {force: true})
    }
  }
  throw new LockHeldError(`could not take the ${options.what} lock`, {
    hint: `Remove ${file} if no ${options.what} runs.`,
  })
}

/** The pid holding the lock at `file` while that process runs; undefined when none (or it died). */
export function liveLockHolder(file: string): number | undefined {
  let pid: number
  try {
    pid = Number(readFileSync(file, 'utf8').trim())
  } catch {
    // no lock (or removed between a create and this read)
    return undefined
  }
  return Number.isSafeInteger(pid) && pid > 0 && pidAlive(pid) ? pid : undefined
}
