/**
 * Retention of archived WAL: keep every file from the start segment of the oldest base backup
 * still kept, and nothing older. Timeline history files are always kept (tiny, and recovery
 * needs them to follow a switch). With no base backup at all nothing is deleted: the archive
 * may be all there is.
 */
import {faultPoint} from '../core/faults.js'
import type {RepositoryStorage} from '../repository/storage.js'
import type {ArchivedFile} from '../wal/archive.js'
import {parseLsn, segmentName, segnoOf} from '../wal/names.js'

export interface WalRetentionPlan {
  /** the oldest segment still needed (first segment of the oldest kept base backup) */
  keepFrom?: string
  delete: ArchivedFile[]
  keep: number
  reason: string
}

export function planWalRetention(
  archive: ArchivedFile[],
  keptBases: {id: string; base?: {startLsn: string; timeline: number}}[],
): WalRetentionPlan {
  const starts = keptBases
    .filter((b) => b.base)
    .map((b) => ({id: b.id, segno: segnoOf(parseLsn(b.base!.startLsn)), timeline: b.base!.timeline}))
  if (starts.length === 0)
    return {delete: [], keep: archive.length, reason: 'no base backup: every archived file is kept'}
  const oldest = starts.reduce((a, b) => (b.segno < a.segno ? b : a))
  const doomed = archive.filter((f) => f.kind !== 'history' && f.segno !== undefined && f.segno < oldest.segno)
  return {
    keepFrom: segmentName(oldest.timeline, oldest.segno),
    delete: doomed,
    keep: archive.length - doomed.length,
    reason: `base backup ${oldest.id} (the oldest kept) starts at ${segmentName(oldest.timeline, oldest.segno)}`,
  }
}

/**
 * Deletes the planned WAL files oldest first (by segment, then timeline), so that a prune killed
 * halfway leaves the archive without a hole: what remains of the doomed files is a contiguous run
 * just below the first kept segment, and every kept segment is untouched (the plan never names
 * one). The next `wal prune` / `backup prune` plans again and deletes the rest.
 */
export async function deleteArchivedWal(storage: RepositoryStorage, files: ArchivedFile[]): Promise<void> {
  const oldestFirst = [...files].sort((a, b) =>
    a.segno === b.segno
      ? a.timeline - b.timeline || (a.name < b.name ? -1 : 1)
      : (a.segno ?? 0n) < (b.segno ?? 0n)
        ? -1
        : 1,
  )
  if (oldestFirst.length === 0) return
  await storage.delete(oldestFirst[0].key)
  // kill point (docs/conventions.md): the oldest doomed file gone, the others still there
  await faultPoint('wal.prune.oldest-deleted', () => ({
    deleted: oldestFirst[0].name,
    left: oldestFirst.slice(1).map((f) => f.name),
  }))
  await storage.delete(oldestFirst.slice(1).map((f) => f.key))
}
