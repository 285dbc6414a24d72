/**
 * `wal fetch --prefetch K`: while PostgreSQL replays segment N, the next K segments of the same
 * timeline are fetched, decompressed and checksum-verified in parallel into the spool
 * (src/wal/spool.ts), so that the following restore_command calls only rename a file.
 *
 * The prefetching runs in ONE worker process (dist/src/wal/prefetch-worker.js, `--process-max`
 * segments at a time), started bound to this process (core/proc/child-lifetime) and awaited
 * before this call returns: PostgreSQL waits for restore_command's exit, and nothing may outlive
 * it. A separate process rather than promises in this one so that a worker that dies (killed,
 * out of memory) costs only the prefetch — the segment PostgreSQL asked for is still handed over
 * and the call exits 0; the next calls fetch what is missing directly.
 *
 * When: only once fewer than half of the next K are spooled, so that most calls rename one file
 * and return, and a worker's start-up is paid once per ~K/2 segments.
 */
import {spawn, type ChildProcess} from 'node:child_process'
import {existsSync} from 'node:fs'
import {dirname, join, resolve} from 'node:path'
import {fileURLToPath} from 'node:url'

import {boundToParent} from '../core/proc/child-lifetime.js'
import {segmentName, type WalFileName} from './names.js'
import {spooledSegments} from './spool.js'

export interface PrefetchSettings {
  /** how many segments after the requested one to keep in the spool */
  count: number
  /** segments fetched at once by the worker */
  processMax: number
  /** the spool folder of this repository + stack (spoolDir('fetch', …)) */
  dir: string
  repository: string
  stack: string
}

/** The segments to fetch now, or [] while at least half of the next `count` are spooled. */
export async function planPrefetch(dir: string, file: WalFileName, count: number): Promise<string[]> {
  if (count <= 0 || file.kind !== 'segment' || file.segno === undefined) return []
  const spooled = await spooledSegments(dir)
  const window = Array.from({length: count}, (_, i) => segmentName(file.timeline, file.segno! + BigInt(i + 1)))
  let ahead = 0
  while (ahead < window.length && spooled.has(window[ahead])) ahead++
  if (ahead >= Math.ceil(count / 2)) return []
  return window.filter((name) => !spooled.has(name))
}

/** dist/src/wal/prefetch-worker.js next to this module (from src/ under vitest: the built one). */
export function workerEntry(): string {
  const here = fileURLToPath(import.meta.url)
  const entry = here.endsWith('.ts') ? resolve(dirname(here), '../../dist/src/wal/prefetch-worker.js') : join(dirname(here), 'prefetch-worker.js')
  return entry
}

export interface RunningPrefetch {
  child: ChildProcess
  /** resolves when the worker exited: undefined when it succeeded, else what went wrong (one line) */
  done: Promise<string | undefined>
}

/**
 * Starts the worker for `names`. Its stderr goes where ours goes (the server log). The AWS_*
 * variables an --aws-env-file loaded are inherited through the environment, never argv.
 */
export function startPrefetch(settings: PrefetchSettings, names: string[]): RunningPrefetch | undefined {
  const entry = workerEntry()
  if (names.length === 0 || !existsSync(entry)) return undefined
  const args = [entry, '--repo', settings.repository, '--stack', settings.stack, '--dir', settings.dir, '--process-max', String(settings.processMax), ...names]
  const bound = boundToParent(process.execPath, args)
  if (!bound) return undefined
  const child = spawn(bound.file, bound.args, {stdio: ['ignore', 'ignore', 'inherit']})
  const done = new Promise<string | undefined>((resolveDone) => {
    child.on('error', (error) => resolveDone(error.message))
    child.on('close', (code, signal) => resolveDone(code === 0 ? undefined : `prefetch worker ended by ${signal ?? `exit ${code}`}`))
  })
  return {child, done}
}
