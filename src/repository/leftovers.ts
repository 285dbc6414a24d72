/**
 * What killed runs leave in a repository beside incomplete backups: temp files of unfinished puts
 * (a killed `backup db` left a 182 MB `.tmp-*` that nothing listed or removed), temp files of a
 * lock being created, and (S3) incomplete multipart uploads. `backup list --all` shows them,
 * `backup prune` removes them (its dry run counts them), every backup sweeps them after taking the
 * lock, and `doctor` reports them.
 *
 * Under `<stack>/backups/` a temp file whose writer is dead is garbage at once: backup writers hold
 * the stack's lock, so no other run can be writing there. Under `<stack>/locks/` a writer on another
 * host (a repository shared over NFS) cannot be seen, so only temp files older than LOCK_TEMP_AGE_MS
 * (a lock put takes milliseconds) count; the same under `<stack>/wal/`, where `wal push` writes
 * without the lock (a segment's put takes well under a second).
 */
import {hostname} from 'node:os'

import {readLock, staleReason} from './lock.js'
import {backupsPrefix} from './manifest.js'
import type {RepositoryStorage, TemporaryObject} from './storage.js'

export const LOCK_TEMP_AGE_MS = 10 * 60 * 1000

const scopes = (stack: string) => [
  {prefix: backupsPrefix(stack), olderThanMs: 0},
  {prefix: `${stack}/locks/`, olderThanMs: LOCK_TEMP_AGE_MS},
  // `wal push` (archive_command) holds no lock: a writer on another host is only judged by age too
  {prefix: `${stack}/wal/`, olderThanMs: LOCK_TEMP_AGE_MS},
]

/** The leftovers of dead writers (nothing is removed). */
export async function listLeftoverTemporary(
  storage: RepositoryStorage,
  stack: string,
  now = Date.now(),
): Promise<TemporaryObject[]> {
  if (!storage.listTemporary) return []
  const out: TemporaryObject[] = []
  for (const {prefix, olderThanMs} of scopes(stack)) {
    for (const t of await storage.listTemporary(prefix))
      if (!t.writerAlive && now - t.mtime.getTime() >= olderThanMs) out.push(t)
  }
  // An S3 upload cannot name its writer: while another live run holds the stack's lock, the
  // uploads may be that run's parts on their way, not leftovers (sweeps only run under the lock).
  if (out.some((t) => t.uploadId !== undefined)) {
    const holder = await readLock(storage, stack)
    const otherLive =
      holder !== undefined &&
      holder !== 'invalid' &&
      !staleReason(holder) &&
      !(holder.pid === process.pid && holder.host === hostname())
    if (otherLive) return out.filter((t) => t.uploadId === undefined)
  }
  return out
}

/** Removes them; returns what was removed. */
export async function sweepLeftoverTemporary(storage: RepositoryStorage, stack: string): Promise<TemporaryObject[]> {
  if (!storage.sweepTemporary) return []
  const out: TemporaryObject[] = []
  for (const {prefix, olderThanMs} of scopes(stack)) out.push(...(await storage.sweepTemporary(prefix, olderThanMs)))
  return out
}
