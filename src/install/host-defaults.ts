/**
 * Defaults init takes from the machine it runs on when --ram / --cpus are not given: the memory
 * and CPUs this process may use (the cgroup's limits when it has any, as in a container or a
 * systemd slice), else the host's. Read once, at the command; planInit stays pure.
 */
import {readFileSync} from 'node:fs'
import {availableParallelism, totalmem} from 'node:os'

function readText(path: string): string | undefined {
  try {
    return readFileSync(path, 'utf8').trim()
  } catch {
    return undefined
  }
}

/** Bytes of RAM: the cgroup v2 memory.max / v1 limit_in_bytes when lower than the host's. */
export function detectRam(): number {
  const host = totalmem()
  const limit = Number(
    readText('/sys/fs/cgroup/memory.max') ?? readText('/sys/fs/cgroup/memory/memory.limit_in_bytes') ?? Number.NaN,
  )
  return Number.isFinite(limit) && limit > 0 && limit < host ? limit : host
}

/** CPUs: the cgroup v2 cpu.max quota when set, else the CPUs this process may run on. */
export function detectCpus(): number {
  const cpus = availableParallelism()
  const [quota, period] = (readText('/sys/fs/cgroup/cpu.max') ?? '').split(/\s+/)
  if (quota && quota !== 'max' && Number(period) > 0)
    return Math.max(1, Math.min(cpus, Math.ceil(Number(quota) / Number(period))))
  return cpus
}
