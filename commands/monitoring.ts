import {Flags} from '@oclif/core'
import {join} from 'node:path'

import {BaseCommand} from '../src/cli/base-command.js'
import {UsageError} from '../src/errors.js'
import type {ApplyResult} from '../src/core/fs/file-plan.js'

export interface MonitoringResult extends ApplyResult {
  target: string
  backupMaxAgeSeconds: Record<string, number>
  alerts: string[]
}

export default class Monitoring extends BaseCommand<typeof Monitoring> {
  static summary =
    'Write the Prometheus scrape configuration, alert rules, Grafana dashboard and provisioning for the stack.'
  static description = `For --target local, compose or k8s (default: charge-ops.yaml's target): prometheus.yml scraping the service's /metrics, postgres_exporter (:9187), redis_exporter (:9121) and node_exporter's textfile collector (the backup and capacity textfiles; on k8s the CronJobs push to a Pushgateway instead); charge-ops-rules.yml with every alert (severity, summary, a description naming the charge-ops command to run, runbook_url into docs/monitoring.md) and the SLO recording rules; grafana/dashboards/charge-ops.json and grafana/provisioning/.

The backup alerts follow the schedule (charge-ops.yaml schedules:): a kind may be its longest interval + 2 h old (daily: 26 h). Override with --backup-max-age KIND=DURATION.

Files that differ from what would be written are refused without --force (exit 2) and shown as a diff; each write is atomic. Load them as docs/monitoring.md says; check them with promtool check config / check rules.`

  static examples = [
    '<%= config.bin %> monitoring --dir /etc/prometheus/charge-ops',
    '<%= config.bin %> monitoring --target compose --dir deploy/monitoring --alertmanager alertmanager:9093',
    '<%= config.bin %> monitoring --target k8s --namespace charge --dir k8s/monitoring',
    '<%= config.bin %> monitoring --backup-max-age db=30h --backup-max-age files=50h --force',
    "<%= config.bin %> monitoring --dry-run --json | jq '.alerts'",
  ]

  static flags = {
    target: Flags.string({
      options: ['local', 'compose', 'k8s'],
      description: "deployment to write for (default: charge-ops.yaml's target)",
    }),
    dir: Flags.string({description: 'directory to write into (default: <stateDir>/monitoring)'}),
    namespace: Flags.string({description: 'k8s: namespace (default: the stack name)'}),
    'backup-max-age': Flags.string({
      multiple: true,
      description:
        'age of the newest backup of a kind that fires ChargeOpsBackupTooOld, KIND=DURATION (db, files, base; repeatable)',
    }),
    'drill-max-age': Flags.string({description: 'a passing restore drill must be younger than this', default: '8d'}),
    rpo: Flags.string({description: 'recovery-point objective: WAL archived at most this long ago', default: '15m'}),
    'availability-slo': Flags.string({description: 'API availability objective (non-5xx share)', default: '99.5%'}),
    'latency-slo': Flags.string({
      description: 'API latency objective: SHARE under SECONDS, e.g. 99%<0.5s (SECONDS must be a histogram bucket)',
      default: '99%<0.5s',
    }),
    service: Flags.string({
      description: "HOST:PORT of the API /metrics (default: from the .env HOST / PORT, or the target's service name)",
    }),
    'postgres-exporter': Flags.string({description: 'HOST:PORT of postgres_exporter'}),
    'redis-exporter': Flags.string({description: 'HOST:PORT of redis_exporter'}),
    'node-exporter': Flags.string({
      description: "HOST:PORT of node_exporter (its textfile collector reads the jobs' .prom files)",
    }),
    pushgateway: Flags.string({
      description: 'HOST:PORT of the Pushgateway (k8s default: pushgateway.<namespace>.svc:9091)',
    }),
    'probe-url': Flags.string({
      multiple: true,
      description:
        'HTTPS URL whose certificate blackbox_exporter probes (ChargeOpsCertificateExpiry); needs --blackbox',
    }),
    blackbox: Flags.string({description: 'HOST:PORT of blackbox_exporter'}),
    alertmanager: Flags.string({
      multiple: true,
      description:
        'HOST:PORT of an Alertmanager Prometheus sends the alerts to (repeatable; without it the alerts only show in Prometheus)',
    }),
    'prometheus-url': Flags.string({description: "Prometheus' URL as Grafana reaches it"}),
    'scrape-interval': Flags.string({description: 'scrape interval', default: '30s'}),
    'evaluation-interval': Flags.string({description: 'rule evaluation interval', default: '30s'}),
    'pending-for': Flags.string({description: 'for: of the alerts that wait out blips', default: '5m', hidden: true}),
    'down-for': Flags.string({
      description: 'for: of the "is down" alerts (a restart should not page)',
      default: '1m',
      hidden: true,
    }),
    force: Flags.boolean({description: 'overwrite files that differ'}),
    'dry-run': Flags.boolean({description: 'show what would be written, write nothing'}),
  }

  async run(): Promise<MonitoringResult> {
    const {planMonitoring} = await import('../src/monitoring/index.js')
    const {applyPlanShowingDiffs} = await import('../src/cli/file-plan.js')
    const {parseDuration} = await import('../src/core/units/duration.js')
    const f = this.flags
    const settings = this.settings()
    const target = (f.target ?? settings.target) as 'local' | 'compose' | 'k8s'
    const seconds = (text: string, what: string) => Math.round(parseDuration(text, {what}) / 1000)
    const backupMaxAgeSeconds: Record<string, number> = {}
    for (const entry of f['backup-max-age'] ?? []) {
      const m = /^(db|files|base)=(.+)$/.exec(entry)
      if (!m)
        throw new UsageError(`invalid --backup-max-age "${entry}"`, {
          hint: 'Use KIND=DURATION with KIND db, files or base, e.g. --backup-max-age db=26h.',
        })
      backupMaxAgeSeconds[m[1]] = seconds(m[2], `--backup-max-age ${m[1]}`)
    }
    if (f['probe-url'] && !f.blackbox)
      throw new UsageError('--probe-url needs --blackbox HOST:PORT (blackbox_exporter probes the certificate)')
    for (const [flag, value] of [
      ['service', f.service],
      ['postgres-exporter', f['postgres-exporter']],
      ['redis-exporter', f['redis-exporter']],
      ['node-exporter', f['node-exporter']],
      ['pushgateway', f.pushgateway],
      ['blackbox', f.blackbox],
      ...(f.alertmanager ?? []).map((a) => ['alertmanager', a] as const),
    ] as const) {
      if (value !== undefined && !/^[\w.-]+:\d{1,5}$/.test(value))
        throw new UsageError(`invalid --${flag} "${value}"`, {hint: 'Use HOST:PORT, e.g. 127.0.0.1:9187.'})
    }
    const share = (text: string, what: string) => {
      const m = /^(\d+(?:\.\d+)?)%$/.exec(text.trim())
      const v = m ? Number(m[1]) / 100 : NaN
      if (!(v > 0 && v < 1))
        throw new UsageError(`invalid ${what} "${text}"`, {hint: 'Use a percentage below 100, e.g. 99.5%.'})
      return v
    }
    const latency = /^(.+)<(\d+(?:\.\d+)?)s$/.exec(f['latency-slo'])
    if (!latency)
      throw new UsageError(`invalid --latency-slo "${f['latency-slo']}"`, {hint: 'Use SHARE<SECONDS, e.g. 99%<0.5s.'})
    const {files, ruleOptions} = planMonitoring(settings, {
      target,
      namespace: f.namespace,
      backupMaxAgeSeconds,
      scrapeInterval: `${seconds(f['scrape-interval'], '--scrape-interval')}s`,
      evaluationInterval: `${seconds(f['evaluation-interval'], '--evaluation-interval')}s`,
      prometheusUrl: f['prometheus-url'],
      targets: {
        ...(f.service ? {service: f.service} : {}),
        ...(f['postgres-exporter'] ? {postgresExporter: f['postgres-exporter']} : {}),
        ...(f['redis-exporter'] ? {redisExporter: f['redis-exporter']} : {}),
        ...(f['node-exporter'] ? {nodeExporter: f['node-exporter']} : {}),
        ...(f.pushgateway ? {pushgateway: f.pushgateway} : {}),
        ...(f.blackbox ? {blackbox: {exporter: f.blackbox, urls: f['probe-url'] ?? []}} : {}),
        ...(f.alertmanager ? {alertmanagers: f.alertmanager} : {}),
      },
      rules: {
        drillMaxAgeSeconds: seconds(f['drill-max-age'], '--drill-max-age'),
        rpoSeconds: seconds(f.rpo, '--rpo'),
        availabilityObjective: share(f['availability-slo'], '--availability-slo'),
        latencyObjective: share(latency[1], '--latency-slo'),
        latencyThresholdSeconds: Number(latency[2]),
        pendingFor: `${seconds(f['pending-for'], '--pending-for')}s`,
        downFor: `${seconds(f['down-for'], '--down-for')}s`,
      },
    })
    const dir = f.dir ?? join(settings.stateDir, 'monitoring')
    const result = await applyPlanShowingDiffs(files, dir, {force: f.force, dryRun: f['dry-run']})
    for (const o of result.files) this.log(`${o.action.padEnd(10)} ${o.mode}  ${join(result.dir, o.path)}`)
    const alerts = [
      ...new Set(files.find((x) => x.path.endsWith('rules.yml'))!.content.match(/(?<=alert: )\w+/g) ?? []),
    ]
    this.logger.info(
      `${alerts.length} alerts; backup age limits: ${Object.entries(ruleOptions.backupMaxAgeSeconds)
        .map(([k, v]) => `${k} ${Math.round(v / 360) / 10} h`)
        .join(', ')}; load them as docs/monitoring.md says`,
    )
    return {...result, target, backupMaxAgeSeconds: ruleOptions.backupMaxAgeSeconds, alerts}
  }
}
