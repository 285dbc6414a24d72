/**
 * Backup repository checks: age of the newest verified backup per kind, the recovery-point gap
 * (time since the newest archived WAL, or since the newest db backup without WAL archiving), and
 * S3 lifecycle rules that would expire objects retention still needs.
 *
 * Manifests are read through the repository layer (src/repository/manifest.ts `listBackups`: the
 * zod schema, complete = has a valid manifest); a manifest that does not parse is reported, never
 * trusted. The schema's objects are loose, so a field added by the backup engine never breaks this.
 */
import {measure, unknown} from './check-kit.js'
import {diskResult} from './pg-checks.js'
import {formatSeconds} from './render.js'
import type {BackupManifest} from '../repository/manifest.js'
import {diskUsage} from '../core/fs/system.js'
import type {Check, CheckContext, CheckResult} from './types.js'

const C = 'backup'

/** What the checks need of a manifest (BackupManifest from src/repository/manifest.ts has it). */
export interface ManifestLike {
  id: string
  kind: string
  finishedAt: string
  verification?: {ok: boolean; verifiedAt: string}
}

export interface NewestOfKind<M extends ManifestLike = ManifestLike> {
  complete?: M
  verified?: M
}

/** For each kind (db, files, base): the newest complete and newest verified backup. `all` counts as db and files. */
export function newestPerKind<M extends ManifestLike>(manifests: M[]): Record<string, NewestOfKind<M>> {
  const out: Record<string, NewestOfKind<M>> = {}
  const newer = (a: M | undefined, b: M) => (!a || Date.parse(b.finishedAt) > Date.parse(a.finishedAt) ? b : a)
  for (const m of manifests) {
    const kinds = m.kind === 'all' ? ['db', 'files'] : [m.kind]
    for (const k of kinds) {
      const e = (out[k] ??= {})
      e.complete = newer(e.complete, m)
      if (m.verification?.ok === true) e.verified = newer(e.verified, m)
    }
  }
  return out
}

export interface LifecycleRule {
  ID?: string
  Status?: string
  Prefix?: string
  Filter?: {Prefix?: string; And?: {Prefix?: string}}
  Expiration?: {Days?: number; Date?: Date | string}
}

/** Days of history retention needs: keepDays, and the daily / weekly / monthly tiers. */
export function retentionDays(r: {keepDays: number; daily: number; weekly: number; monthly: number}): number {
  return Math.max(r.keepDays, r.daily, r.weekly * 7, r.monthly * 31)
}

/** Lifecycle rules that would expire repository objects (WAL or backups) sooner than retention needs them. */
export function dangerousLifecycleRules(
  rules: LifecycleRule[],
  repoPrefix: string,
  stack: string,
  neededDays: number,
): {rule: string; prefix: string; days?: number; reason: string}[] {
  const targets = [`${repoPrefix}${stack}/backups/`, `${repoPrefix}${stack}/wal/`]
  const found: {rule: string; prefix: string; days?: number; reason: string}[] = []
  for (const rule of rules) {
    if (rule.Status && rule.Status !== 'Enabled') continue
    const prefix = rule.Filter?.Prefix ?? rule.Filter?.And?.Prefix ?? rule.Prefix ?? ''
    const hits = targets.filter((t) => t.startsWith(prefix) || prefix.startsWith(t))
    if (hits.length === 0 || !rule.Expiration) continue
    const what = hits.map((h) => (h.endsWith('/wal/') ? 'WAL' : 'backups')).join(' and ')
    if (rule.Expiration.Days !== undefined && rule.Expiration.Days < neededDays) {
      found.push({
        rule: rule.ID ?? '(unnamed)',
        prefix,
        days: rule.Expiration.Days,
        reason: `expires ${what} after ${rule.Expiration.Days} days; retention needs ${neededDays}`,
      })
    } else if (rule.Expiration.Date !== undefined) {
      found.push({
        rule: rule.ID ?? '(unnamed)',
        prefix,
        reason: `expires ${what} on ${new Date(rule.Expiration.Date).toISOString().slice(0, 10)}`,
      })
    }
  }
  return found
}

type NewestPerKind = Record<string, NewestOfKind<BackupManifest>>

/** Per kind (db, files, and base when there is one): the age of the newest verified backup. */
function backupAgeResults(ctx: CheckContext, newest: NewestPerKind): CheckResult[] {
  const out: CheckResult[] = []
  for (const kind of ['db', 'files', ...(newest.base ? ['base'] : [])]) {
    const e = newest[kind]
    if (!e?.complete) {
      out.push(
        measure(ctx, {
          id: 'backup.age_hours',
          component: C,
          title: 'Age of the newest verified backup',
          value: null,
          unit: 'h',
          status: 'critical',
          labels: {kind},
          message: `no complete ${kind} backup in the repository`,
          remedy: `Take one now: charge-ops backup ${kind}; schedule it (charge-ops schedule).`,
        }),
      )
      continue
    }
    const ref = e.verified ?? e.complete
    const hours = (ctx.now.getTime() - Date.parse(ref.finishedAt)) / 3_600_000
    const failedNewer = e.complete !== e.verified && e.complete.verification?.ok === false ? e.complete : undefined
    const result = measure(ctx, {
      id: 'backup.age_hours',
      component: C,
      title: 'Age of the newest verified backup',
      value: Math.round(hours * 10) / 10,
      unit: 'h',
      labels: {kind},
      message:
        (e.verified
          ? `newest verified ${kind} backup ${ref.id} finished ${formatSeconds(hours * 3600)} ago`
          : `no verified ${kind} backup; newest complete ${ref.id} finished ${formatSeconds(hours * 3600)} ago and was never verified`) +
        (failedNewer
          ? `; the newer ${failedNewer.id} FAILED verification at ${failedNewer.verification!.verifiedAt}`
          : ''),
      remedy: e.verified
        ? `Check the ${kind} backup schedule and its last run's log; take one now: charge-ops backup ${kind}.`
        : `Verify it: charge-ops backup verify ${ref.id} (and schedule verification).`,
    })
    if ((!e.verified || failedNewer) && result.status === 'ok') {
      result.status = 'warning'
      result.remedy = failedNewer
        ? `Backup ${failedNewer.id} is damaged: take a new one (charge-ops backup ${kind}) and check the repository storage.`
        : `Verify it: charge-ops backup verify ${ref.id} (and schedule verification).`
    }
    out.push(result)
  }
  return out
}

/** The recovery-point gap: the newest archived WAL's age, else the newest db backup's. */
function rpoGapResult(
  ctx: CheckContext,
  db: BackupManifest | undefined,
  walNewest: Date | undefined,
  walCount: number,
): CheckResult {
  const rpoFrom = walNewest ? walNewest.getTime() : db ? Date.parse(db.finishedAt) : undefined
  return measure(ctx, {
    id: 'backup.rpo_gap_seconds',
    component: C,
    title: 'Recovery-point gap',
    value: rpoFrom === undefined ? null : Math.max(0, Math.round((ctx.now.getTime() - rpoFrom) / 1000)),
    unit: 's',
    status: rpoFrom === undefined ? 'critical' : undefined,
    message: walNewest
      ? `newest archived WAL (${walCount} segments) is ${formatSeconds((ctx.now.getTime() - walNewest.getTime()) / 1000)} old`
      : db
        ? `no archived WAL: data written since the newest db backup (${formatSeconds((ctx.now.getTime() - Date.parse(db.finishedAt)) / 1000)} ago) would be lost`
        : 'nothing to recover from: no db backup and no archived WAL',
    remedy: walNewest
      ? 'Check archive_command (capacity pg.archive_failing) and set archive_timeout so the gap stays bounded.'
      : 'Enable WAL archiving (archive_mode = on + charge-ops backup base) for point-in-time recovery, or back up more often.',
  })
}

export const BACKUP_CHECK: Check = {
  id: 'backup',
  component: C,
  title: 'Backups: newest verified per kind, recovery-point gap, lifecycle',
  async run(ctx) {
    const repo = ctx.settings.repository
    if (!repo)
      return [
        unknown(
          C,
          'backup.age_hours',
          'Backup age',
          'no backup repository configured',
          'Set backup.repository in charge-ops.yaml (or CHARGE_OPS_REPO).',
        ),
      ]
    const out: CheckResult[] = []
    let manifests: BackupManifest[]
    let invalid: {id: string; error: string}[]
    let walNewest: Date | undefined
    let walCount = 0
    try {
      const {openConfiguredRepository} = await import('../repository/open.js')
      const {listBackups} = await import('../repository/manifest.js')
      const storage = await openConfiguredRepository(ctx.settings)
      const listing = await listBackups(storage, ctx.settings.stack)
      manifests = listing.complete
      invalid = listing.invalid
      const wal = await storage.list(`${ctx.settings.stack}/wal/`)
      walCount = wal.length
      for (const w of wal) if (!walNewest || w.mtime > walNewest) walNewest = w.mtime
      if (storage.kind === 'local') out.push(diskResult(ctx, await diskUsage(repo), 'backup-repository'))
    } catch (error) {
      return [
        unknown(
          C,
          'backup.age_hours',
          'Backup age',
          `cannot read the repository ${repo}: ${(error as Error).message}`,
          (error as {hint?: string}).hint ?? 'Check the repository path / S3 credentials and endpoint.',
        ),
      ]
    }
    if (invalid.length > 0) {
      out.push(
        measure(ctx, {
          id: 'backup.invalid_manifests',
          component: C,
          title: 'Backups whose manifest does not parse',
          value: invalid.length,
          unit: 'count',
          status: 'warning',
          message: `${invalid.length} backup(s) with an invalid manifest (not restorable, not counted): ${invalid
            .slice(0, 3)
            .map((i) => i.error)
            .join('; ')}`,
          remedy: 'Inspect them with `charge-ops backup show ID`; take a fresh backup, then `charge-ops backup prune`.',
          details: {invalid},
        }),
      )
    }
    // a manifest from the future (clock skew, a test clock) is not the newest backup
    manifests = manifests.filter((m) => Date.parse(m.finishedAt) <= ctx.now.getTime() + 60_000)
    const newest = newestPerKind(manifests)
    out.push(...backupAgeResults(ctx, newest))
    out.push(rpoGapResult(ctx, newest.db?.complete, walNewest, walCount))
    if (repo.startsWith('s3://')) out.push(...(await lifecycleCheck(ctx, repo)))
    return out
  },
}

async function lifecycleCheck(ctx: CheckContext, repo: string): Promise<CheckResult[]> {
  const id = 'backup.s3_lifecycle'
  const title = 'S3 lifecycle rules vs retention'
  try {
    const {createS3ClientFromEnv, parseS3Location} = await import('../repository/s3-storage.js')
    const {GetBucketLifecycleConfigurationCommand} = await import('@aws-sdk/client-s3')
    const where = parseS3Location(repo)
    const s3 = ctx.settings.yaml.backup.s3
    const client = await createS3ClientFromEnv({
      endpoint: s3?.endpoint,
      region: s3?.region,
      forcePathStyle: s3?.forcePathStyle,
    })
    let rules: LifecycleRule[] = []
    try {
      rules = ((await client.send(new GetBucketLifecycleConfigurationCommand({Bucket: where.bucket}))).Rules ??
        []) as LifecycleRule[]
    } catch (error) {
      const name = (error as {name?: string}).name
      if (name !== 'NoSuchLifecycleConfiguration' && name !== 'NotImplemented') throw error
    }
    const needed = retentionDays(ctx.settings.yaml.backup.retention)
    const bad = dangerousLifecycleRules(rules, where.prefix, ctx.settings.stack, needed)
    return [
      measure(ctx, {
        id,
        component: C,
        title,
        value: bad.length,
        unit: 'count',
        status: bad.some((b) => b.days !== undefined) ? 'critical' : bad.length > 0 ? 'warning' : 'ok',
        message:
          bad.length === 0
            ? `${rules.length} lifecycle rules; none expires what retention (${needed} days) needs`
            : bad.map((b) => `rule ${b.rule} (prefix "${b.prefix}") ${b.reason}`).join('; '),
        remedy:
          'Remove or lengthen the rule (or narrow its prefix): retention in charge-ops.yaml decides what is deleted, and `backup prune` never removes WAL a kept base backup needs.',
        details: {rules: bad},
      }),
    ]
  } catch (error) {
    return [
      unknown(
        C,
        id,
        title,
        `cannot read the bucket lifecycle: ${(error as Error).message}`,
        'Grant s3:GetLifecycleConfiguration to the backup credentials.',
      ),
    ]
  }
}
