/**
 * `wal fetch` (restore_command). PostgreSQL reads its exit status:
 *  - 0: the file is at the destination, complete and verified;
 *  - 1: not in the archive — the normal end of the archive, said quietly;
 *  - 126 (> 125): the archive HAS a problem (checksum mismatch, undecodable object, repository
 *    unreachable, bad configuration). PostgreSQL treats an exit status above 125 as fatal and
 *    stops recovery, instead of taking the failure for the end of the archive and promoting
 *    early with data missing.
 */
import {open, rename, rm} from 'node:fs/promises'
import {dirname, isAbsolute, join} from 'node:path'
import {randomBytes} from 'node:crypto'

import {ExitCode} from '../errors.js'
import type {RepositoryStorage} from '../repository/storage.js'
import {explainFsError, readWal} from './archive.js'

export const FETCH_MISSING_EXIT = 1
export const FETCH_ABORT_EXIT = ExitCode.walArchiveFatal

export interface FetchResult {
  file: string
  status: 'restored' | 'missing'
  destination: string
  key?: string
  bytes?: number
}

export async function fetchWal(options: {storage: RepositoryStorage; stack: string; name: string; destination: string}): Promise<FetchResult> {
  const destination = isAbsolute(options.destination) ? options.destination : join(process.cwd(), options.destination)
  const found = await readWal(options.storage, options.stack, options.name).catch((error: unknown) => {
    throw explainFsError(error, options.storage.location)
  })
  if (!found) return {file: options.name, status: 'missing', destination}
  // temp + fsync + rename: PostgreSQL must never read a half-written segment
  const temp = join(dirname(destination), `.${options.name}.charge-ops-${randomBytes(3).toString('hex')}`)
  try {
    const handle = await open(temp, 'wx', 0o600)
    try {
      await handle.writeFile(found.data)
      await handle.sync()
    } finally {
      await handle.close()
    }
    await rename(temp, destination)
  } catch (error) {
    await rm(temp, {force: true})
    throw error
  }
  return {file: options.name, status: 'restored', destination, key: found.key, bytes: found.data.length}
}
