/** Human renderings of upgrade results (stdout). --json prints the typed results instead. */
import {renderTable} from '../output/table.js'
import type {UpgradeResult} from './types.js'
import type {UpgradeJournal} from './journal.js'
import {renderPlan} from './plans.js'
import {renderChecks} from './preflight.js'
import type {RehearsalResult} from './rehearse.js'

const seconds = (ms: number | undefined) => (ms === undefined ? '-' : `${(ms / 1000).toFixed(1)} s`)

export function renderResult(result: UpgradeResult): string {
  const lines: string[] = []
  if (result.checks) lines.push('preflight:', renderChecks(result.checks))
  if (result.plan) {
    lines.push(`plan (${result.from?.version ?? '?'} → ${result.to?.version}):`)
    for (const p of result.plan) lines.push(`  ${p.title}\n      ${p.action}`)
  }
  if (result.commandPlan) lines.push(renderPlan(result.commandPlan))
  lines.push(result.message)
  return lines.join('\n')
}

export function renderHistory(upgrades: UpgradeJournal[]): string {
  if (upgrades.length === 0) return 'no upgrades recorded'
  return renderTable(
    ['id', 'started', 'from', 'to', 'schema', 'duration', 'outcome', 'failed step'],
    upgrades.map((u) => [
      u.id,
      u.startedAt.replace('T', ' ').replace(/\.\d+Z$/, 'Z'),
      u.from.version ?? '?',
      u.to.version,
      `${u.from.schemaHead ?? 'none'} → ${u.to.schemaHead ?? u.from.schemaHead ?? 'none'}`,
      seconds(u.durationMs),
      u.status +
        (u.rollback?.method && u.status === 'rolled-back' ? ` (${u.rollback.method})` : '') +
        (u.interrupted ? ' [interrupted]' : ''),
      u.failure?.step ?? '',
    ]),
  )
}

export function renderRehearsal(r: RehearsalResult): string {
  const lines = [
    `rehearsal of ${r.to.version} on backup ${r.backupId} (service ${r.from.backupServiceVersion ?? '?'}, schema ${r.from.schemaHead ?? 'none'}), scratch database ${r.scratchDatabase} (dropped)`,
    `  restore      ${seconds(r.restoreMs)}`,
    `  migrations   ${seconds(r.migrateMs)}${r.migrations.length ? '' : ' (none pending)'}`,
    ...r.migrations.map((m) => `    ${m.file.padEnd(40)} ${m.ms} ms`),
    `  start        ${seconds(r.startMs)}`,
  ]
  if (r.health) lines.push(`  health       ${r.health.status}, version ${r.health.version}, ${r.health.smoke}`)
  if (r.ok)
    lines.push(
      `expected downtime ≈ ${seconds(r.expectedDowntimeMs)} (worker drain ≤ stop timeout + migrations + start); schema → ${r.to.schemaHead ?? 'none'}`,
    )
  else lines.push(`REHEARSAL FAILED at ${r.failure?.step}: ${r.failure?.error}`)
  return lines.join('\n')
}
