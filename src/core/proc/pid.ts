import {readFileSync} from 'node:fs'
import {hostname} from 'node:os'

/**
 * True when a process with that pid runs on this host (EPERM means it exists but is not ours). A
 * zombie — exited, not yet reaped — does not run: a killed prefetcher re-parented to a PID 1 that
 * reaps late still answers kill(0), and its lock and temp files would otherwise count as held.
 */
export function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0)
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EPERM') return false
  }
  return processState(pid) !== 'Z'
}

/** The state letter of /proc/<pid>/stat (R, S, Z …); undefined where /proc cannot say. */
function processState(pid: number): string | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
    // the command name (field 2) is parenthesised and may hold spaces: count from the last ')'
    return stat[stat.lastIndexOf(')') + 2]
  } catch {
    return undefined
  }
}

/**
 * Who left a mark (a maintenance flag, a stopped server, a temp file): enough to tell later whether
 * that run still goes on. The start time (clock ticks since boot, /proc/<pid>/stat field 22) tells
 * a reused pid from the original process.
 */
export interface ProcessOwner {
  pid: number
  /** /proc start time of the pid; null where /proc is not available */
  startTime: string | null
  host: string
  /** the command that holds it, e.g. `backup files` */
  command: string
}

/** The /proc start time of a pid (undefined when it does not run or /proc is unavailable). */
export function processStartTime(pid: number): string | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
    // the command name (field 2) is parenthesised and may hold spaces: count from the last ')'
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19]
  } catch {
    return undefined
  }
}

export function currentOwner(command: string): ProcessOwner {
  return {pid: process.pid, startTime: processStartTime(process.pid) ?? null, host: hostname(), command}
}

/**
 * 'alive' | 'dead' | 'unknown' (another host: its processes cannot be seen from here).
 * Dead = this host, and the pid no longer runs or is now another process (start time differs).
 */
export function ownerState(owner: ProcessOwner): 'alive' | 'dead' | 'unknown' {
  if (owner.host !== hostname()) return 'unknown'
  if (!pidAlive(owner.pid)) return 'dead'
  if (owner.startTime && processStartTime(owner.pid) !== undefined && processStartTime(owner.pid) !== owner.startTime)
    return 'dead'
  return 'alive'
}

export function isCurrentProcess(owner: ProcessOwner | undefined): boolean {
  return Boolean(
    owner &&
    owner.pid === process.pid &&
    owner.host === hostname() &&
    (owner.startTime ?? null) === (processStartTime(process.pid) ?? null),
  )
}

export function describeOwner(owner: ProcessOwner): string {
  return `\`${owner.command}\` (pid ${owner.pid} on ${owner.host})`
}
