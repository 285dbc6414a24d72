/**
 * `wal push --queue-max SIZE`: the archive_command's limit on WAL waiting in pg_wal (pgBackRest's
 * archive-push-queue-max). pgBackRest, past the limit, tells PostgreSQL a segment was archived when
 * it was not — dropping it to save the primary's disk, and breaking point-in-time recovery.
 * charge-ops never does that: exit 0 still means "in the repository". Past the limit it is loud
 * instead: every call prints a WARNING into the server log (with the backlog and what to do), and
 * `capacity` reads the limit from archive_command (pg.archive_ready_backlog turns critical at it,
 * warning at half; the metric charge_ops_pg_archive_ready_backlog and its _threshold series feed
 * the ChargeOpsWalArchiveQueueFull alert). pg_wal then only grows under an alarm, never silently.
 */
import {readdir} from 'node:fs/promises'
import {dirname, join, resolve} from 'node:path'

import {formatBytes, tryParseSize} from '../core/units/size.js'
import {UsageError} from '../errors.js'

export const SEGMENT_BYTES = 16 * 1024 * 1024

/** `--queue-max` in bytes (a size: `4GB`, `512MB`; a bare number counts bytes). */
export function parseQueueMax(text: string): number {
  const bytes = tryParseSize(text)
  if (bytes === undefined || bytes < SEGMENT_BYTES) {
    throw new UsageError(
      `invalid --queue-max ${JSON.stringify(text)}: a size of at least one WAL segment (16MB), e.g. 4GB`,
      {code: 'USAGE'},
    )
  }
  return bytes
}

/** Segments PostgreSQL marked ready for archive_command (pg_wal/archive_status/*.ready). */
export async function readyCount(walDir: string): Promise<number> {
  try {
    return (await readdir(join(walDir, 'archive_status'))).filter((entry) => entry.endsWith('.ready')).length
  } catch {
    return 0
  }
}

/** The server-log line when the backlog is over the limit, else undefined. */
export function queueWarning(ready: number, queueMax: number): string | undefined {
  if (ready * SEGMENT_BYTES <= queueMax) return undefined
  return `WARNING: ${ready} WAL segment(s) (${formatBytes(ready * SEGMENT_BYTES)}) wait in pg_wal for archiving, over --queue-max ${formatBytes(queueMax)}: the repository has been failing or is slower than the writes. Nothing is dropped (every segment is kept until it is archived), so pg_wal grows until the disk is full: fix the repository now (the errors above name it), or give pg_wal room. charge-ops capacity --only postgresql shows the backlog.`
}

/** What a push with `--queue-max` prints before it pushes (undefined: under the limit). */
export async function checkQueue(path: string, queueMax: number): Promise<string | undefined> {
  return queueWarning(await readyCount(dirname(resolve(path))), queueMax)
}
