/** Rows for `backup list` / `backup show`: what an operator needs to choose a backup. */
import {manifestBytes, type BackupListing, type BackupManifest} from '../repository/manifest.js'

export interface BackupSummary {
  id: string
  kind: string
  complete: boolean
  startedAt?: string
  ageSeconds: number
  bytes: number
  durationMs?: number
  serviceVersion?: string | null
  migrationHead?: string | null
  verified: boolean | null
  verifiedAt?: string
  restoreDrillSeconds?: number
  encrypted: boolean
  parts: {name: string; bytes: number}[]
}

export function summarize(m: BackupManifest, now: Date): BackupSummary {
  return {
    id: m.id,
    kind: m.kind,
    complete: true,
    startedAt: m.startedAt,
    ageSeconds: Math.max(0, Math.round((now.getTime() - Date.parse(m.finishedAt)) / 1000)),
    bytes: manifestBytes(m),
    durationMs: m.durationMs,
    serviceVersion: m.serviceVersion,
    migrationHead: m.migrationHead,
    verified: m.verification ? m.verification.ok : null,
    verifiedAt: m.verification?.verifiedAt,
    restoreDrillSeconds: m.verification?.restoreDrill ? m.verification.restoreDrill.durationMs / 1000 : undefined,
    encrypted: Boolean(m.encryption),
    parts: m.parts.map((p) => ({name: p.name, bytes: p.bytes})),
  }
}

export function formatAge(seconds: number): string {
  if (seconds < 120) return `${seconds}s`
  if (seconds < 7200) return `${Math.round(seconds / 60)}m`
  if (seconds < 172_800) return `${Math.round(seconds / 3600)}h`
  return `${Math.round(seconds / 86_400)}d`
}

export function listingSummaries(
  listing: BackupListing,
  now: Date,
): {
  backups: BackupSummary[]
  incomplete: {id: string; bytes: number; ageSeconds: number}[]
  invalid: {id: string; error: string}[]
} {
  return {
    backups: listing.complete.map((m) => summarize(m, now)),
    incomplete: listing.incomplete.map((i) => ({
      id: i.id,
      bytes: i.bytes,
      ageSeconds: Math.max(0, Math.round((now.getTime() - i.lastModified.getTime()) / 1000)),
    })),
    invalid: listing.invalid,
  }
}
