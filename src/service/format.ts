/** Human rendering of the service status (the --json output is the ServiceStatus itself). */
import {formatDuration} from '../core/units/duration.js'
import {renderTable} from '../output/table.js'
import type {ServiceStatus} from './process.js'

export function formatStatus(status: ServiceStatus): string {
  if (status.processes.length === 0)
    return `the service of stack "${status.stack}" is not running (state dir ${status.stateDir})`
  const table = renderTable(
    ['PROCESS', 'PID', 'STATE', 'UPTIME'],
    status.processes.map((p) => [
      p.name,
      p.pid ?? '-',
      p.running ? 'running' : 'dead (stale pid file)',
      p.uptimeSeconds === undefined ? '-' : formatDuration(p.uptimeSeconds * 1000),
    ]),
  )
  const h = status.health
  const health = !h
    ? 'health: API not running'
    : h.status === 'unreachable'
      ? `health: ${h.url}/health unreachable (${h.error})`
      : `health: ${h.status === 'ok' ? 'ok' : `FAIL (${h.failing.join(', ')})`} — ${h.url} version ${h.version ?? '?'}${h.maintenance ? ' — MAINTENANCE MODE' : ''}`
  return `${table}\n${health}\nlogs: ${status.logDir}`
}
