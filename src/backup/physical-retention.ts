/**
 * Retention of archived WAL: keep every file from the start segment of the oldest base backup
 * still kept, and nothing older. Timeline history files are always kept (tiny, and recovery
 * needs them to follow a switch). With no base backup at all nothing is deleted: the archive
 * may be all there is.
 */
import type {ArchivedFile} from '../wal/archive.js'
import {parseLsn, segmentName, segnoOf} from '../wal/names.js'

export interface WalRetentionPlan {
  /** the oldest segment still needed (first segment of the oldest kept base backup) */
  keepFrom?: string
  delete: ArchivedFile[]
  keep: number
  reason: string
}

export function planWalRetention(archive: ArchivedFile[], keptBases: {id: string; base?: {startLsn: string; timeline: number}}[]): WalRetentionPlan {
  const starts = keptBases.filter((b) => b.base).map((b) => ({id: b.id, segno: segnoOf(parseLsn(b.base!.startLsn)), timeline: b.base!.timeline}))
  if (starts.length === 0) return {delete: [], keep: archive.length, reason: 'no base backup: every archived file is kept'}
  const oldest = starts.reduce((a, b) => (b.segno < a.segno ? b : a))
  const doomed = archive.filter((f) => f.kind !== 'history' && f.segno !== undefined && f.segno < oldest.segno)
  return {
    keepFrom: segmentName(oldest.timeline, oldest.segno),
    delete: doomed,
    keep: archive.length - doomed.length,
    reason: `base backup ${oldest.id} (the oldest kept) starts at ${segmentName(oldest.timeline, oldest.segno)}`,
  }
}
