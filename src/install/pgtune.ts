/**
 * postgresql.conf sizing with pgtune's formulas for the "web application" profile
 * (le0pard/pgtune), PostgreSQL 15 on Linux. Pure: the host's sizing in, numbers out.
 */
import type {StorageType} from './answers.js'

export interface HostSizing {
  ramBytes: number
  cpus: number
  storage: StorageType
  /** expected client connections */
  connections: number
  pgbouncer: boolean
}

export interface PgTuning {
  maxConnections: number
  sharedBuffersKb: number
  effectiveCacheSizeKb: number
  maintenanceWorkMemKb: number
  workMemKb: number
  walBuffersKb: number
  checkpointCompletionTarget: number
  randomPageCost: number
  effectiveIoConcurrency: number
  defaultStatisticsTarget: number
  minWalSizeMb: number
  maxWalSizeMb: number
  maxWorkerProcesses: number
  maxParallelWorkersPerGather: number
  maxParallelWorkers: number
  maxParallelMaintenanceWorkers: number
}

const KB_PER_MB = 1024
const KB_PER_GB = 1024 * 1024

/** With PgBouncer in transaction pooling the server needs far fewer connections (the guide: 100). */
export function maxConnectionsFor(sizing: Pick<HostSizing, 'connections' | 'pgbouncer'>): number {
  return sizing.pgbouncer ? Math.min(sizing.connections, 100) : sizing.connections
}

export function tunePostgres(sizing: HostSizing): PgTuning {
  const ramKb = Math.floor(sizing.ramBytes / 1024)
  const maxConnections = maxConnectionsFor(sizing)
  const sharedBuffersKb = Math.floor(ramKb / 4)
  const effectiveCacheSizeKb = Math.floor((ramKb * 3) / 4)
  // pgtune caps maintenance_work_mem at 2GB: more does not speed up index builds noticeably.
  const maintenanceWorkMemKb = Math.min(Math.floor(ramKb / 16), 2 * KB_PER_GB)

  // 3 % of shared_buffers, at least 32kB, at most 16MB; pgtune rounds values near 16MB up to 16MB.
  let walBuffersKb = Math.floor((3 * sharedBuffersKb) / 100)
  if (walBuffersKb > 16 * KB_PER_MB) walBuffersKb = 16 * KB_PER_MB
  if (walBuffersKb > 14 * KB_PER_MB && walBuffersKb < 16 * KB_PER_MB) walBuffersKb = 16 * KB_PER_MB
  if (walBuffersKb < 32) walBuffersKb = 32

  // pgtune sets the worker settings from 4 CPUs up; below that PostgreSQL's default of 8 stays.
  const maxWorkerProcesses = sizing.cpus >= 4 ? sizing.cpus : 8
  const halfCpus = Math.ceil(sizing.cpus / 2)
  const maxParallelWorkersPerGather = Math.min(halfCpus, 4)
  const maxParallelWorkers = sizing.cpus >= 4 ? sizing.cpus : Math.min(sizing.cpus, 8)
  const maxParallelMaintenanceWorkers = Math.min(halfCpus, 4)

  // (RAM − shared_buffers) / ((max_connections + max_worker_processes) × 3), at least 4MB.
  const workMemKb = Math.max(
    Math.floor((ramKb - sharedBuffersKb) / ((maxConnections + maxWorkerProcesses) * 3)),
    4 * KB_PER_MB,
  )

  return {
    maxConnections,
    sharedBuffersKb,
    effectiveCacheSizeKb,
    maintenanceWorkMemKb,
    workMemKb,
    walBuffersKb,
    checkpointCompletionTarget: 0.9,
    randomPageCost: sizing.storage === 'hdd' ? 4 : 1.1,
    effectiveIoConcurrency: {ssd: 200, hdd: 2, san: 300}[sizing.storage],
    defaultStatisticsTarget: 100,
    minWalSizeMb: 1024,
    maxWalSizeMb: 4096,
    maxWorkerProcesses,
    maxParallelWorkersPerGather,
    maxParallelWorkers,
    maxParallelMaintenanceWorkers,
  }
}

/** PostgreSQL's own unit style: the largest of GB / MB / kB that divides the value exactly. */
export function formatKb(kb: number): string {
  if (kb % KB_PER_GB === 0) return `${kb / KB_PER_GB}GB`
  if (kb % KB_PER_MB === 0) return `${kb / KB_PER_MB}MB`
  return `${kb}kB`
}
