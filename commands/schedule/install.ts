import {Flags} from '@oclif/core'
import {join} from 'node:path'

import {BaseCommand} from '../../src/cli/base-command.js'
import {UsageError} from '../../src/errors.js'
import type {ApplyResult} from '../../src/core/fs/file-plan.js'

export interface ScheduleInstallResult extends ApplyResult {
  target: string
  systemInstalled?: string
  overlaps: Array<{a: string; b: string; at: string; message: string}>
}

export default class ScheduleInstall extends BaseCommand<typeof ScheduleInstall> {
  static summary =
    'Write the scheduled jobs (backups, prune, verify with restore drill, capacity) as a crontab, systemd timers or CronJobs.'
  static description = `Jobs come from charge-ops.yaml (schedules:) over the defaults: backup-db 02:00, backup-files 03:00, prune Sunday 04:00, verify (restore drill) 05:30, capacity 07:00. Every run holds a per-job lock (flock -n; a run still going makes the next one skip, exit 75), appends to /var/log/charge-ops/<job>.log and writes its Prometheus textfile (charge_ops_<job>.prom) so that alerts on time() - charge_ops_backup_last_success_timestamp_seconds work.

On a compose deployment (charge-ops.yaml target: compose, or --runner compose) each job runs charge-ops in the stack's ops service: docker compose -f <compose file> -p <project> run --rm --no-deps -T ops <job> --config /etc/charge-ops/charge-ops.yaml, with the textfile folder bind-mounted at the same path (by default the stack's data/textfiles, read by the compose file's node-exporter service). When the postgresql.conf charge-ops.yaml names has archive_mode = on, a nightly backup-base (01:00) is added: point-in-time recovery starts from a base backup, and backup prune keeps WAL only from the oldest kept base.

cron: charge-ops.cron (/etc/cron.d format) + the charge-ops-job wrapper; --system --yes also installs it as /etc/cron.d/charge-ops. systemd: one .service + .timer per job (Persistent=true, RandomizedDelaySec). k8s: CronJobs with concurrencyPolicy Forbid, startingDeadlineSeconds and history limits.

Files that differ from what would be written are refused without --force (exit 2) and shown as a diff.`

  static examples = [
    '<%= config.bin %> schedule install --target cron --dir /etc/charge-ops/schedule',
    '<%= config.bin %> schedule install --target cron --system --yes',
    '<%= config.bin %> schedule install --target cron --runner compose --dir /etc/charge-ops/schedule',
    '<%= config.bin %> schedule install --target systemd --dir /etc/systemd/system',
    '<%= config.bin %> schedule install --target k8s --namespace charge --dir k8s',
  ]

  static flags = {
    target: Flags.string({options: ['cron', 'systemd', 'k8s'], default: 'cron', description: 'scheduler to write for'}),
    dir: Flags.string({description: 'directory to write into (default: <stateDir>/schedule)'}),
    window: Flags.string({
      multiple: true,
      description: 'typical duration of a job for the overlap check, JOB=MINUTES (repeatable)',
    }),
    bin: Flags.string({description: 'the charge-ops executable the jobs run (default: charge-ops on PATH)'}),
    'textfile-dir': Flags.string({
      description:
        "node_exporter's textfile collector directory (default: /var/lib/prometheus/node-exporter, Debian's; with the compose runner <compose file's folder>/data/textfiles, which the compose file's node-exporter reads)",
    }),
    'log-dir': Flags.string({description: 'where job logs go', default: '/var/log/charge-ops'}),
    'lock-dir': Flags.string({description: "cron / systemd: the jobs' flock files", default: '/run/lock/charge-ops'}),
    runner: Flags.string({
      options: ['host', 'compose'],
      description:
        "cron / systemd: run charge-ops on the host, or as `docker compose run --rm --no-deps -T ops …` in the stack (default: compose when charge-ops.yaml's target is compose)",
    }),
    user: Flags.string({description: 'cron / systemd: user the jobs run as', default: 'root'}),
    namespace: Flags.string({description: 'k8s: namespace (default: the stack name)'}),
    image: Flags.string({
      description:
        "k8s: the image the CronJobs run (default: charge-ops/service:<this charge-ops' version>, the service image `charge-ops images build` tags and init's manifests run)",
    }),
    system: Flags.boolean({
      description: 'cron: also install into /etc/cron.d/charge-ops (needs --yes or a confirmation)',
    }),
    force: Flags.boolean({description: 'overwrite files that differ'}),
    'dry-run': Flags.boolean({description: 'show what would be written, write nothing'}),
  }

  async run(): Promise<ScheduleInstallResult> {
    const {planSchedule, listSchedule} = await import('../../src/schedule/plan.js')
    const {applyPlanShowingDiffs} = await import('../../src/cli/file-plan.js')
    const {imageRef} = await import('../../src/topology/index.js')
    const {writeFileAtomicSync} = await import('../../src/core/fs/atomic.js')
    const f = this.flags
    const settings = this.settings()
    const windows = parseWindows(f.window)
    const dir = f.dir ?? join(settings.stateDir, 'schedule')
    const target = f.target as 'cron' | 'systemd' | 'k8s'
    const plan = planSchedule(target, {
      settings,
      windows,
      dir,
      bin: f.bin,
      textfileDir: f['textfile-dir'],
      logDir: f['log-dir'],
      lockDir: f['lock-dir'],
      user: f.user,
      namespace: f.namespace,
      image: f.image ?? imageRef('service', this.config.version),
      runner: f.runner as 'host' | 'compose' | undefined,
    })
    const {overlaps} = listSchedule({settings, windows})
    for (const o of overlaps) this.logger.warn(`overlap: ${o.message}`)

    const result = await applyPlanShowingDiffs(plan, dir, {force: f.force, dryRun: f['dry-run']})
    for (const o of result.files) this.log(`${o.action.padEnd(10)} ${o.mode}  ${join(result.dir, o.path)}`)

    let systemInstalled: string | undefined
    if (f.system) {
      if (target !== 'cron')
        throw new UsageError('--system applies to --target cron only', {
          hint: 'For systemd, write with --dir /etc/systemd/system and run systemctl daemon-reload.',
        })
      const cron = plan.find((p) => p.path === 'charge-ops.cron')!
      await this.confirm('Install the jobs as /etc/cron.d/charge-ops?')
      if (!f['dry-run']) {
        writeFileAtomicSync('/etc/cron.d/charge-ops', cron.content, {mode: 0o644})
        systemInstalled = '/etc/cron.d/charge-ops'
        this.log(`installed  0644  ${systemInstalled}`)
      }
    }
    return {...result, target, overlaps, ...(systemInstalled ? {systemInstalled} : {})}
  }
}

export function parseWindows(values: string[] | undefined): Record<string, number> {
  const out: Record<string, number> = {}
  for (const value of values ?? []) {
    const m = /^([a-z0-9-]+)=(\d+)$/.exec(value)
    if (!m || Number(m[2]) < 1)
      throw new UsageError(`--window ${value}: expected JOB=MINUTES, e.g. backup-db=90`, {
        hint: 'Job names are listed by charge-ops schedule list.',
      })
    out[m[1]] = Number(m[2])
  }
  return out
}
