/**
 * `backup prune [--dry-run]`: applies the retention policy (src/repository/retention.ts) and
 * removes abandoned partial backups.
 *
 * Under the stack's backup lock, no other backup writer runs (backup db / files / all / base all
 * take it), so every backup directory without a manifest is a leftover of a killed or failed run
 * and is removed. A complete backup is deleted manifest first: it stops being listed as
 * restorable before any part disappears, so a prune killed halfway leaves only an incomplete
 * directory (removed next time), never a "complete" backup with missing parts.
 *
 * Archived WAL follows the base backups: every segment a kept base backup needs for
 * point-in-time recovery is kept, older ones are deleted (src/backup/physical-retention.ts).
 */
import type {RetentionPolicy} from '../config/schema.js'
import {faultPoint} from '../core/faults.js'
import {acquireLock} from '../repository/lock.js'
import {backupPrefix, backupsPrefix, listBackups, manifestBytes, manifestKey} from '../repository/manifest.js'
import {planRetention, type RetentionDecision} from '../repository/retention.js'
import type {BackupContext} from './context.js'

export interface PruneResult {
  dryRun: boolean
  policy: RetentionPolicy
  kept: RetentionDecision[]
  deleted: (RetentionDecision & {bytes: number})[]
  incompleteRemoved: {id: string; bytes: number}[]
  /** temp files / incomplete uploads of killed runs (src/repository/leftovers.ts) */
  temporaryRemoved: {key: string; bytes: number}[]
  /** archived WAL older than the oldest kept base backup needs */
  wal: {keepFrom?: string; deleted: number; bytes: number; reason: string}
  bytesFreed: number
}

export async function pruneBackups(
  ctx: BackupContext,
  options: {dryRun?: boolean; policy?: Partial<RetentionPolicy>} = {},
): Promise<PruneResult> {
  const policy = {...ctx.settings.yaml.backup.retention, ...options.policy}
  const release = options.dryRun ? async () => {} : await acquireLock(ctx.storage, ctx.stack, {command: 'backup prune'})
  try {
    const listing = await listBackups(ctx.storage, ctx.stack, {includeIncomplete: true})
    const plan = planRetention(
      listing.complete.map((m) => ({
        id: m.id,
        kind: m.kind,
        finishedAt: new Date(m.finishedAt),
        verified: m.verification ? m.verification.ok : null,
      })),
      policy,
      ctx.now(),
    )
    const byId = new Map(listing.complete.map((m) => [m.id, m]))
    keepReferenced(plan, byId)
    const deleted = plan.filter((d) => !d.keep).map((d) => ({...d, bytes: manifestBytes(byId.get(d.id)!)}))
    const incompleteRemoved = listing.incomplete.map((i) => ({id: i.id, bytes: i.bytes}))
    const [{listArchive}, {planWalRetention, deleteArchivedWal}] = await Promise.all([
      import('../wal/archive.js'),
      import('./physical-retention.js'),
    ])
    const keptBases = plan.filter((d) => d.keep && d.kind === 'base').map((d) => byId.get(d.id)!)
    const walPlan = planWalRetention(
      await listArchive(ctx.storage, ctx.stack),
      keptBases as Parameters<typeof planWalRetention>[1],
    )
    const walBytes = walPlan.delete.reduce((sum, f) => sum + f.size, 0)
    const {listLeftoverTemporary, sweepLeftoverTemporary} = await import('../repository/leftovers.js')
    let temporary = await listLeftoverTemporary(ctx.storage, ctx.stack)
    if (!options.dryRun) {
      for (const d of deleted) {
        await ctx.storage.delete(manifestKey(ctx.stack, d.id))
        // kill point: no longer listed as complete (nor restorable), its parts still there — an
        // incomplete backup that the next prune removes
        await faultPoint('backup.prune.manifest-deleted', () => ({id: d.id}))
        const objects = await ctx.storage.list(backupPrefix(ctx.stack, d.id))
        await ctx.storage.delete(objects.map((o) => o.key))
        ctx.logger.info(`deleted backup ${d.id}`)
      }
      for (const i of listing.incomplete) {
        await ctx.storage.delete(i.objects)
        ctx.logger.info(`removed incomplete backup ${i.id}`)
      }
      if (walPlan.delete.length > 0) {
        await deleteArchivedWal(ctx.storage, walPlan.delete)
        ctx.logger.info(`deleted ${walPlan.delete.length} archived WAL file(s) older than ${walPlan.keepFrom}`)
      }
      temporary = await sweepLeftoverTemporary(ctx.storage, ctx.stack)
      if (temporary.length > 0)
        ctx.logger.info(`removed ${temporary.length} temp file(s) / upload(s) left by killed runs`)
      if (ctx.storage.kind === 'local') {
        const {rmdirEmpty} = await import('./prune-local.js')
        await rmdirEmpty(ctx.storage, backupsPrefix(ctx.stack))
      }
    }
    return {
      dryRun: Boolean(options.dryRun),
      policy,
      kept: plan.filter((d) => d.keep),
      deleted,
      incompleteRemoved,
      temporaryRemoved: temporary.map((t) => ({key: t.key, bytes: t.size})),
      wal: {keepFrom: walPlan.keepFrom, deleted: walPlan.delete.length, bytes: walBytes, reason: walPlan.reason},
      bytesFreed:
        deleted.reduce((s, d) => s + d.bytes, 0) +
        incompleteRemoved.reduce((s, i) => s + i.bytes, 0) +
        temporary.reduce((s, t) => s + t.size, 0) +
        walBytes,
    }
  } finally {
    await release()
  }
}

/**
 * A kept diff / incr base backup needs the backups holding the blocks it references: they are kept
 * too, whatever the policy says (otherwise prune would break a chain it claims to keep).
 */
export function keepReferenced(plan: RetentionDecision[], byId: Map<string, {base?: unknown}>): void {
  const decisions = new Map(plan.map((d) => [d.id, d]))
  const queue = plan.filter((d) => d.keep).map((d) => d.id)
  while (queue.length > 0) {
    const id = queue.pop()!
    for (const ref of ((byId.get(id)?.base as {references?: string[]} | undefined)?.references ?? []) as string[]) {
      const d = decisions.get(ref)
      if (!d) continue
      if (!d.reasons.includes(`referenced by ${id}`)) d.reasons.push(`referenced by ${id}`)
      if (!d.keep) {
        d.keep = true
        queue.push(ref)
      }
    }
  }
}
