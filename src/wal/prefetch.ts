/**
 * `wal fetch --prefetch K`: while PostgreSQL replays segment N, the next K segments of the same
 * timeline are fetched, decompressed and checksum-verified in parallel into the spool
 * (src/wal/spool.ts), so that the following restore_command calls only move a file.
 *
 * Two halves, as pgBackRest's asynchronous archive-get:
 *  - the **fast path** is in the restore_command line itself (command-lines.ts
 *    `restoreCommand({fast, prefetch})`): `test -f SPOOL/%f && mv -f SPOOL/%f %p || exec node
 *    fetch-main.js …` — one `mv` when the segment is spooled, no Node start. PostgreSQL runs
 *    restore_command once per segment, serially; a Node start per segment alone costs more than
 *    the whole budget (1.15× a plain `cp`).
 *  - the **slow path** (this module, from src/wal/fetch.ts) runs for whatever is not spooled:
 *    it notes the asked segment (`.want`), makes sure a prefetcher runs for its timeline, and
 *    fetches the asked file directly.
 *
 * The prefetcher (dist/src/wal/prefetch-worker.js) outlives the restore_command call that
 * started it — it has to, to work while PostgreSQL replays — so it is bound to the *server*
 * instead: it starts only in a data directory with a postmaster.pid, stays in the startup
 * process' process group (the postmaster signals that group at shutdown), and ends by itself
 * when the postmaster is gone, when recovery ended (recovery.signal and standby.signal gone: it
 * then removes the spool), when PostgreSQL moved to another timeline, or after a minute without
 * a request.
 */
import {spawn} from 'node:child_process'
import {existsSync, mkdirSync} from 'node:fs'
import {dirname, join, resolve} from 'node:path'
import {fileURLToPath} from 'node:url'

import type {RepositoryStorage} from '../repository/storage.js'
import type {WalFileName} from './names.js'

export interface PrefetchSettings {
  /** how many segments after the requested one to keep in the spool */
  count: number
  /** segments fetched at once by the prefetcher */
  processMax: number
  /** the spool root (default charge-ops-spool in the data directory) */
  root?: string
  repository: string
  stack: string
}

/** Settings + the spool folder of this repository, stack and cluster. */
export interface PrefetchSpool extends PrefetchSettings {
  dir: string
  systemIdentifier?: string
}

/** The fetch spool of the repository's cluster (cluster.json names it; one small read, slow path only). */
export async function resolvePrefetchSpool(
  storage: RepositoryStorage,
  settings: PrefetchSettings,
): Promise<PrefetchSpool> {
  const [{readClusterIdentity}, {spoolDir}] = await Promise.all([import('./archive.js'), import('./spool.js')])
  const systemIdentifier = (await readClusterIdentity(storage, settings.stack))?.systemIdentifier
  return {
    ...settings,
    systemIdentifier,
    dir: spoolDir('fetch', {repository: settings.repository, stack: settings.stack, systemIdentifier}, settings.root),
  }
}

/** dist/src/wal/prefetch-worker.js next to this module (from src/ under vitest: the built one). */
export function workerEntry(): string {
  const here = fileURLToPath(import.meta.url)
  return here.endsWith('.ts')
    ? resolve(dirname(here), '../../dist/src/wal/prefetch-worker.js')
    : join(dirname(here), 'prefetch-worker.js')
}

/**
 * Notes `file` as asked and starts the prefetcher of its timeline unless one runs. Returns why
 * none could start (one line), or undefined. Never waits for it. Outside a server's data
 * directory (no postmaster.pid in the cwd: a `wal fetch` by hand) nothing is started: nothing
 * would bind it.
 */
export async function ensurePrefetcher(spool: PrefetchSpool, file: WalFileName): Promise<string | undefined> {
  if (spool.count <= 0 || file.kind !== 'segment' || !existsSync('postmaster.pid')) return undefined
  const {prefetcherPid, writeWant} = await import('./spool.js')
  try {
    mkdirSync(spool.dir, {recursive: true, mode: 0o700})
    await writeWant(spool.dir, file.name)
  } catch (error) {
    return `cannot write the prefetch spool ${spool.dir}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`
  }
  if (prefetcherPid(spool.dir, file.timeline) !== undefined) return undefined
  const entry = workerEntry()
  if (!existsSync(entry)) return `${entry} is missing (run npm run build)`
  const args = [
    entry,
    '--repo',
    spool.repository,
    '--stack',
    spool.stack,
    '--dir',
    spool.dir,
    '--count',
    String(spool.count),
    '--process-max',
    String(spool.processMax),
    '--from',
    file.name,
  ]
  if (spool.systemIdentifier) args.push('--system-id', spool.systemIdentifier)
  // not detached: it stays in the process group the postmaster signals at shutdown. Its stderr is
  // ours (the server log). AWS_* from an --aws-env-file reach it by the environment, never argv.
  const child = spawn(process.execPath, args, {stdio: ['ignore', 'ignore', 'inherit']})
  child.on('error', () => {})
  child.unref()
  return undefined
}
