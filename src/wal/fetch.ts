/**
 * `wal fetch` (restore_command). PostgreSQL reads its exit status:
 *  - 0: the file is at the destination, complete and verified;
 *  - 1: not in the archive — the normal end of the archive, said quietly;
 *  - 126 (> 125): the archive HAS a problem (checksum mismatch, undecodable object, repository
 *    unreachable, bad configuration). PostgreSQL treats an exit status above 125 as fatal and
 *    stops recovery, instead of taking the failure for the end of the archive and promoting
 *    early with data missing.
 */
import {isAbsolute, join} from 'node:path'

import {writeFileAtomic} from '../core/fs/atomic.js'
import {faultPoint} from '../core/faults.js'
import {ExitCode} from '../errors.js'
import type {RepositoryStorage} from '../repository/storage.js'
import {explainFsError, readWal, requireWalName} from './archive.js'
import type {PrefetchSettings} from './prefetch.js'

export const FETCH_MISSING_EXIT = 1
/** how long the slow path waits for a segment the prefetcher is writing (then fetches it itself) */
const IN_FLIGHT_WAIT_MS = 10_000
export const FETCH_ABORT_EXIT = ExitCode.walArchiveFatal

export interface FetchResult {
  file: string
  status: 'restored' | 'missing'
  destination: string
  key?: string
  bytes?: number
  /** served from the prefetch spool (no repository read in this call) */
  fromSpool?: boolean
  /** the prefetch worker that ran during this call failed (the asked file was still handed over) */
  prefetchProblem?: string
}

export interface FetchOptions {
  storage: RepositoryStorage
  stack: string
  name: string
  destination: string
  /** `--prefetch K`: the spool and worker settings (src/wal/prefetch.ts) */
  prefetch?: PrefetchSettings
}

export async function fetchWal(options: FetchOptions): Promise<FetchResult> {
  const file = requireWalName(options.name)
  const settings = options.prefetch
  // only segments are prefetched: history / .backup / .partial probes go straight to the repository
  if (!settings || settings.count <= 0 || file.kind !== 'segment') return fetchDirect(options)
  const destination = isAbsolute(options.destination) ? options.destination : join(process.cwd(), options.destination)
  const [{awaitSpooled, takeSpoolSegment}, {ensurePrefetcher, resolvePrefetchSpool}] = await Promise.all([
    import('./spool.js'),
    import('./prefetch.js'),
  ])
  const spool = await resolvePrefetchSpool(options.storage, settings).catch((error: unknown) => {
    throw explainFsError(error, options.storage.location)
  })
  // the restore_command's shell fast path takes spooled segments itself; a `wal fetch --prefetch`
  // line without it (or one racing the prefetcher's rename) is served here
  if (await takeSpoolSegment(spool.dir, options.name, destination)) {
    // tests name this point (pausing with the resume file already there) to see the spool serve
    await faultPoint('wal.fetch.spool-hit', () => ({name: options.name}))
    const problem = await ensurePrefetcher(spool, file)
    return {file: options.name, status: 'restored', destination, fromSpool: true, prefetchProblem: problem}
  }
  // not spooled: the prefetcher (started if none runs) fetches the next ones; this one it may be
  // fetching right now (its temp file says so): wait for that rather than reading it twice
  const problem = await ensurePrefetcher(spool, file)
  if (
    (await awaitSpooled(spool.dir, options.name, IN_FLIGHT_WAIT_MS)) &&
    (await takeSpoolSegment(spool.dir, options.name, destination))
  ) {
    return {file: options.name, status: 'restored', destination, fromSpool: true, prefetchProblem: problem}
  }
  const result = await fetchDirect(options)
  return result.status === 'restored' && problem ? {...result, prefetchProblem: problem} : result
}

async function fetchDirect(options: FetchOptions): Promise<FetchResult> {
  const destination = isAbsolute(options.destination) ? options.destination : join(process.cwd(), options.destination)
  const found = await readWal(options.storage, options.stack, options.name).catch((error: unknown) => {
    throw explainFsError(error, options.storage.location)
  })
  if (!found) return {file: options.name, status: 'missing', destination}
  // the one atomic write (temp + fsync + rename + fsync of pg_wal): PostgreSQL must never read a half-written segment
  await writeFileAtomic(destination, found.data, {mode: 0o600})
  return {file: options.name, status: 'restored', destination, key: found.key, bytes: found.data.length}
}
