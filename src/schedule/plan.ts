/**
 * schedule install / list: the job table resolved from charge-ops.yaml, rendered for one
 * scheduler, and described with its next runs and overlap findings.
 */
import {existsSync, readFileSync} from 'node:fs'
import {dirname, join, resolve} from 'node:path'

import type {Settings} from '../config/settings.js'
import type {PlannedFile} from '../core/fs/file-plan.js'
import {cronProblem, findOverlaps, nextRuns, type Overlap} from './cron.js'
import {resolveJobs, type ScheduledJob} from './jobs.js'
import {
  COMPOSE_TEXTFILE_DIR,
  composeRunner,
  DEFAULT_HOST_PATHS,
  jobsForKubernetes,
  renderCron,
  renderCronJobs,
  renderSystemd,
  stackCronJobContext,
  type HostScheduleContext,
} from './render.js'

export type SchedulerTarget = 'cron' | 'systemd' | 'k8s'

/** Where a cron / systemd job runs charge-ops: on the host, or in the compose stack's ops service. */
export type JobRunner = 'host' | 'compose'

export interface ScheduleOptions {
  settings: Pick<Settings, 'yaml' | 'configPath' | 'baseDir' | 'stack'>
  /** --window job=minutes overrides */
  windows?: Record<string, number>
  bin?: string
  textfileDir?: string
  logDir?: string
  lockDir?: string
  user?: string
  /** where the files are written (cron wrapper path is absolute inside it) */
  dir: string
  namespace?: string
  image?: string
  /** default: compose when charge-ops.yaml's target is compose */
  runner?: JobRunner
}

export function scheduledJobs(options: Pick<ScheduleOptions, 'settings' | 'windows'>): ScheduledJob[] {
  return resolveJobs(options.settings.yaml, {windows: options.windows, walArchiving: walArchivingOn(options.settings)})
}

/** archive_mode = on in the postgresql.conf charge-ops.yaml names (init writes it for compose). */
export function walArchivingOn(settings: Pick<Settings, 'yaml' | 'baseDir'>): boolean {
  const conf = settings.yaml.paths?.postgresqlConf
  if (!conf) return false
  const path = resolve(settings.baseDir, conf)
  if (!existsSync(path)) return false
  const setting = /^\s*archive_mode\s*=\s*'?(\w+)'?/im.exec(readFileSync(path, 'utf8'))
  return Boolean(setting && /^(on|always)$/i.test(setting[1]!))
}

/** The path of charge-ops.yaml inside the compose services (init mounts it there). */
export const CONTAINER_CONFIG_PATH = '/etc/charge-ops/charge-ops.yaml'

// the command defaults it to the service image `images build` tags for this charge-ops (the schedule
// domain does not read the topology)
function missingImage(): never {
  throw new Error('planSchedule: the k8s CronJobs need options.image')
}

export function planSchedule(target: SchedulerTarget, options: ScheduleOptions): PlannedFile[] {
  const jobs = scheduledJobs(options)
  const dir = resolve(options.dir)
  const configPath = options.settings.configPath ?? join(options.settings.baseDir, 'charge-ops.yaml')
  const host: HostScheduleContext = {
    configPath,
    bin: options.bin ?? 'charge-ops',
    lockDir: options.lockDir ?? DEFAULT_HOST_PATHS.lockDir,
    logDir: options.logDir ?? DEFAULT_HOST_PATHS.logDir,
    textfileDir: options.textfileDir ?? DEFAULT_HOST_PATHS.textfileDir,
    credentialsFile: join(options.settings.baseDir, 'backup.env'),
    wrapperPath: join(dir, 'charge-ops-job'),
    user: options.user ?? 'root',
  }
  const runner = options.runner ?? (options.settings.yaml.target === 'compose' ? 'compose' : 'host')
  if (runner === 'compose' && target !== 'k8s') {
    const composeFile = resolve(
      options.settings.baseDir,
      options.settings.yaml.paths?.composeFile ?? 'docker-compose.yml',
    )
    // by default the folder the compose file's node-exporter reads; another --textfile-dir is for a
    // node_exporter of the host's own
    const textfileDir = options.textfileDir ?? join(dirname(composeFile), COMPOSE_TEXTFILE_DIR)
    Object.assign(host, {
      runner: composeRunner(composeFile, options.settings.yaml.compose?.project, textfileDir),
      configPath: CONTAINER_CONFIG_PATH,
      textfileDir,
    })
  }
  if (target === 'cron') return renderCron(jobs, host, 'charge-ops.cron')
  if (target === 'systemd') return renderSystemd(jobs, host, '.')
  const stack = options.settings.stack
  return [
    {
      path: 'cronjobs.yaml',
      mode: 0o644,
      content: renderCronJobs(
        jobsForKubernetes(jobs),
        stackCronJobContext({namespace: options.namespace ?? stack, stack, image: options.image ?? missingImage()}),
      ),
    },
  ]
}

export interface JobListing {
  name: string
  cron: string
  timezone: string
  enabled: boolean
  command: string
  typicalMinutes: number
  nextRuns: string[]
  problem?: string
}

export interface ScheduleListing {
  jobs: JobListing[]
  overlaps: Overlap[]
}

export function listSchedule(
  options: Pick<ScheduleOptions, 'settings' | 'windows'>,
  now = new Date(),
): ScheduleListing {
  const jobs = scheduledJobs(options)
  const hostZone = Intl.DateTimeFormat().resolvedOptions().timeZone
  const listed = jobs.map((job): JobListing => {
    const problem = cronProblem(job.cron, job.timezone)
    return {
      name: job.name,
      cron: job.cron,
      timezone: job.timezone ?? `${hostZone} (host)`,
      enabled: job.enabled,
      command: `charge-ops ${job.args.join(' ')}`,
      typicalMinutes: job.typicalMinutes,
      nextRuns:
        problem || !job.enabled
          ? []
          : nextRuns(job.cron, {timezone: job.timezone, from: now}).map((d) =>
              formatInZone(d, job.timezone ?? hostZone),
            ),
      ...(problem ? {problem} : {}),
    }
  })
  const valid = jobs.filter((j) => !cronProblem(j.cron, j.timezone))
  return {jobs: listed, overlaps: findOverlaps(valid, {from: now})}
}

/** 2026-11-30 02:00 CET style: the wall-clock time in the job's zone, plus the offset. */
export function formatInZone(date: Date, timeZone: string): string {
  const parts = new Intl.DateTimeFormat('en-CA', {
    timeZone,
    year: 'numeric',
    month: '2-digit',
    day: '2-digit',
    hour: '2-digit',
    minute: '2-digit',
    hourCycle: 'h23',
    timeZoneName: 'shortOffset',
  }).formatToParts(date)
  const get = (type: string) => parts.find((p) => p.type === type)?.value ?? ''
  return `${get('year')}-${get('month')}-${get('day')} ${get('hour')}:${get('minute')} ${get('timeZoneName')}`
}
