/**
 * The scheduled jobs: the one table every renderer (crontab, systemd timers, Kubernetes
 * CronJobs), `schedule list` and the overlap check read. The guide's times: database backup
 * 02:00 (§10.1), files backup 03:00 and weekly pruning on Sunday 04:00 (§10.3); a daily
 * verification with a restore drill and a daily capacity check are added so that a backup that
 * cannot be restored, or a disk about to fill, is noticed the next morning.
 */
import type {ChargeOpsYaml} from '../config/schema.js'

export interface ScheduledJob {
  /** stable id: unit names, lock and log file names, metric file names */
  name: string
  description: string
  cron: string
  /** charge-ops arguments (without the binary and the global flags) */
  args: string[]
  /** IANA zone the expression is read in; undefined = the host's zone */
  timezone?: string
  /** how long a run usually takes: the window other jobs should stay out of */
  typicalMinutes: number
  /** the flag through which the job writes its Prometheus textfile charge_ops_<name>.prom (temp + rename) */
  metricsFlag?: '--metrics-file' | '--output'
  enabled: boolean
}

export const DEFAULT_JOBS: readonly ScheduledJob[] = [
  {
    name: 'backup-db',
    description: 'PostgreSQL logical backup to the repository',
    cron: '0 2 * * *',
    args: ['backup', 'db'],
    typicalMinutes: 45,
    metricsFlag: '--metrics-file',
    enabled: true,
  },
  {
    name: 'backup-files',
    description: 'uploads and Chroma backup to the repository',
    cron: '0 3 * * *',
    args: ['backup', 'files'],
    typicalMinutes: 40,
    metricsFlag: '--metrics-file',
    enabled: true,
  },
  // `backup prune` writes no textfile (it has no --metrics-file): its failures show in the job's log
  {
    name: 'prune',
    description: 'apply the retention policy (weekly)',
    cron: '0 4 * * 0',
    args: ['backup', 'prune', '--yes'],
    typicalMinutes: 20,
    enabled: true,
  },
  {
    name: 'verify',
    description: 'verify the newest backups with a restore drill',
    cron: '30 5 * * *',
    args: ['backup', 'verify', 'latest', '--restore-drill'],
    typicalMinutes: 60,
    metricsFlag: '--metrics-file',
    enabled: true,
  },
  {
    name: 'capacity',
    description: 'disk, database and Redis capacity check',
    cron: '0 7 * * *',
    args: ['capacity', '--format', 'prometheus'],
    typicalMinutes: 5,
    metricsFlag: '--output',
    enabled: true,
  },
]

/**
 * With WAL archiving on (compose: init's postgresql.conf), a nightly base backup: without one there
 * is never a base for point-in-time recovery, and `backup prune` (which also deletes the WAL older
 * than the oldest kept base) has nothing to keep WAL from. 01:00, before the logical backups.
 */
export const BASE_BACKUP_JOB: ScheduledJob = {
  name: 'backup-base',
  description: 'physical base backup (point-in-time recovery starts from it)',
  cron: '0 1 * * *',
  args: ['backup', 'base'],
  typicalMinutes: 30,
  metricsFlag: '--metrics-file',
  enabled: true,
}

/**
 * The commands that write a Prometheus textfile, and through which flag (checked against the
 * command classes by test/unit/init-schedule-flags.test.ts). A job from charge-ops.yaml running one
 * of them gets the textfile too; any other command gets no extra flag.
 */
export const METRICS_FLAGS: Readonly<Record<string, '--metrics-file'>> = {
  'backup db': '--metrics-file',
  'backup files': '--metrics-file',
  'backup all': '--metrics-file',
  'backup base': '--metrics-file',
  'backup verify': '--metrics-file',
}

/** Splits a charge-ops.yaml `command:` string into arguments (no shell: plain words and quotes). */
export function splitCommand(command: string): string[] {
  const out: string[] = []
  const re = /"([^"]*)"|'([^']*)'|(\S+)/g
  let m: RegExpExecArray | null
  while ((m = re.exec(command))) out.push(m[1] ?? m[2] ?? m[3])
  if (out[0] === 'charge-ops') out.shift()
  return out
}

/**
 * The effective job table: the defaults, with charge-ops.yaml `schedules:` overriding a job's
 * expression, command, zone or enabled flag, or adding jobs of its own; and per-job typical
 * durations from `--window job=minutes`.
 */
export function resolveJobs(
  yaml?: Pick<ChargeOpsYaml, 'schedules'>,
  options: {timezone?: string; windows?: Record<string, number>; walArchiving?: boolean} = {},
): ScheduledJob[] {
  const defaults = options.walArchiving ? [BASE_BACKUP_JOB, ...DEFAULT_JOBS] : DEFAULT_JOBS
  const jobs = new Map<string, ScheduledJob>(defaults.map((j) => [j.name, {...j, args: [...j.args]}]))
  for (const [name, entry] of Object.entries(yaml?.schedules ?? {})) {
    const base = jobs.get(name)
    const args = splitCommand(entry.command)
    jobs.set(name, {
      name,
      description: base?.description ?? `charge-ops ${args.join(' ')}`,
      cron: entry.cron,
      args,
      timezone: entry.timezone,
      typicalMinutes: base?.typicalMinutes ?? 15,
      metricsFlag:
        base && base.args.slice(0, 2).join(' ') === args.slice(0, 2).join(' ')
          ? base.metricsFlag
          : METRICS_FLAGS[args.slice(0, 2).join(' ')],
      enabled: entry.enabled,
    })
  }
  return [...jobs.values()].map((job) => ({
    ...job,
    timezone: job.timezone ?? options.timezone,
    typicalMinutes: options.windows?.[job.name] ?? job.typicalMinutes,
  }))
}

/** The `schedules:` block init writes into charge-ops.yaml (the defaults, in the chosen zone). */
export function schedulesYaml(
  timezone: string,
): Record<string, {cron: string; command: string; timezone: string; enabled: boolean}> {
  return Object.fromEntries(
    DEFAULT_JOBS.map((j) => [
      j.name,
      {cron: j.cron, command: `charge-ops ${j.args.join(' ')}`, timezone, enabled: j.enabled},
    ]),
  )
}
