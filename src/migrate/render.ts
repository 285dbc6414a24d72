/** Human renderings of the engine's results (the commands print these; --json prints the results). */
import {renderTable} from '../output/table.js'
import {formatMs} from '../core/units/duration.js'
import type {MigrateResult, StatusResult, ValidateResult} from './engine.js'
import type {HistoryRow} from './history.js'

export function renderMigrateResult(result: MigrateResult): string {
  const verb = result.direction === 'up' ? 'apply' : 'revert'
  if (result.dryRun) {
    if (result.plan.length === 0) return `dry run: nothing to ${verb}${result.current ? ` (at ${result.current})` : ''}`
    const parts = [
      `dry run: would ${verb} ${result.plan.length} migration${result.plan.length === 1 ? '' : 's'} (now at ${result.before ?? 'none'}); nothing was changed`,
    ]
    for (const p of result.plan) {
      const mode = p.transactional ? 'in a transaction' : 'NO transaction (statement by statement)'
      parts.push(
        '',
        `-- ${p.direction} ${p.file}: ${p.statements} statement${p.statements === 1 ? '' : 's'}, ${mode}, lock_timeout ${p.lockTimeoutMs ? formatMs(p.lockTimeoutMs) : 'none'}, statement_timeout ${p.statementTimeoutMs ? formatMs(p.statementTimeoutMs) : 'none'}`,
        p.sql,
      )
    }
    return parts.join('\n')
  }
  if (result.applied.length === 0)
    return result.direction === 'up' ? `up to date (at ${result.current ?? 'none'})` : 'nothing to revert'
  const done = result.direction === 'up' ? 'applied' : 'reverted'
  const rows = result.applied.map((a) => [a.version, a.name, formatMs(a.executionMs)])
  return `${renderTable(['VERSION', 'NAME', 'TIME'], rows)}\n${done} ${result.applied.length} migration${result.applied.length === 1 ? '' : 's'} in ${formatMs(result.totalMs)}; now at ${result.current ?? 'none'}${result.pending > 0 ? `, ${result.pending} pending` : ''}`
}

export function renderStatus(status: StatusResult): string {
  const rows = status.migrations.map((m) => [
    m.version,
    m.name,
    m.state,
    m.appliedAt ? m.appliedAt.replace('T', ' ').replace(/\.\d+Z$/, 'Z') : '',
    m.transactional === false ? 'no-tx' : '',
  ])
  const lines = [
    rows.length > 0 ? renderTable(['VERSION', 'NAME', 'STATE', 'APPLIED', ''], rows) : 'no migrations found',
  ]
  lines.push('', `current: ${status.current ?? 'none'}; pending: ${status.pending}; drift: ${status.drift}`)
  for (const p of status.problems) lines.push(`  ${p.kind}: ${p.message}\n    fix: ${p.hint}`)
  return lines.join('\n')
}

export function renderValidate(result: ValidateResult): string {
  if (result.ok)
    return `ok: ${result.migrations} migration files parse; ${result.applied} applied unchanged; ${result.pending} pending`
  return [
    `${result.problems.length} problem${result.problems.length === 1 ? '' : 's'}:`,
    ...result.problems.map((p) => `  ${p.kind}: ${p.message}\n    fix: ${p.hint}`),
  ].join('\n')
}

export function renderHistory(rows: HistoryRow[]): string {
  if (rows.length === 0) return 'no migrations applied yet'
  return renderTable(
    ['VERSION', 'NAME', 'APPLIED AT', 'TIME', 'BY', 'STATUS', 'CHECKSUM'],
    rows.map((r) => [
      r.version,
      r.name,
      r.appliedAt,
      formatMs(r.executionMs),
      r.appliedBy,
      r.success ? (r.kind === 'baseline' ? 'baseline' : 'ok') : 'FAILED',
      r.checksum.slice(0, 12),
    ]),
  )
}
