import {Flags} from '@oclif/core'

import {BaseCommand} from '../src/cli/base-command.js'
import {ChecksFailedError} from '../src/errors.js'
import {redactValue} from '../src/output/redact.js'
import type {Report} from '../src/capacity/render.js'

export default class Capacity extends BaseCommand<typeof Capacity> {
  static summary = 'Capacity review of the whole stack: PostgreSQL, Redis, Chroma, uploads, backups, sizing.'
  static description = `Every check has warning / critical thresholds (charge-ops.yaml \`thresholds:\`, documented defaults in docs/maintenance.md) and renders to a table, JSON, Prometheus text (node_exporter textfile collector) or Nagios plugin output. With charge-ops.yaml \`metrics.pushgatewayUrl\` (init sets it on k8s, where the CronJob's pod is gone before any scrape) --format prometheus also replaces the stack's group on that Pushgateway.

Exit codes: with --format nagios, 0 OK / 1 WARNING / 2 CRITICAL / 3 UNKNOWN (the Nagios plugin contract); otherwise 0, or 1 when any check is critical.`
  static examples = [
    '<%= config.bin %> capacity',
    '<%= config.bin %> capacity --only postgresql,redis',
    '<%= config.bin %> capacity --format nagios   # in a Nagios / Icinga command definition',
    '<%= config.bin %> capacity --format prometheus --output /var/lib/prometheus/node-exporter/charge_ops_capacity.prom',
    '<%= config.bin %> capacity --json | jq \'.checks[] | select(.status != "ok")\'',
  ]
  static flags = {
    format: Flags.string({
      char: 'f',
      options: ['table', 'json', 'prometheus', 'nagios'],
      default: 'table',
      description: 'output format',
    }),
    only: Flags.string({
      description: 'comma-separated components to check: postgresql, sizing, redis, chroma, uploads, backup, host',
    }),
    output: Flags.string({
      char: 'o',
      description:
        'write the rendered output to this file atomically (for the Prometheus textfile collector) instead of stdout',
    }),
    'no-history': Flags.boolean({description: 'do not record this run in <stateDir>/capacity-history.json'}),
  }

  async run(): Promise<Report> {
    const {runCapacity} = await import('../src/capacity/index.js')
    const render = await import('../src/capacity/render.js')
    const format = this.jsonEnabled() ? 'json' : this.flags.format
    const report = await runCapacity({
      settings: this.settings(),
      logger: this.logger,
      components: this.flags.only
        ?.split(',')
        .map((s) => s.trim())
        .filter(Boolean),
      recordHistory: !this.flags['no-history'],
    })
    const critical = report.summary.critical > 0
    let text: string
    let exitCode = critical ? 1 : 0
    switch (format) {
      case 'nagios': {
        const n = render.renderNagios(report)
        text = n.text
        exitCode = n.exitCode
        break
      }
      case 'prometheus':
        text = render.renderPrometheus(report)
        break
      case 'json':
        text = JSON.stringify(redactValue(report), null, 2)
        break
      default:
        text = render.renderText(report)
    }
    if (this.flags.output) {
      const {writeFileAtomicSync} = await import('../src/core/fs/atomic.js')
      const {redact} = await import('../src/output/redact.js')
      // 0644: the node_exporter textfile collector runs as its own user
      writeFileAtomicSync(this.flags.output, redact(text.endsWith('\n') ? text : text + '\n'), {mode: 0o644})
      this.logger.info(`wrote ${this.flags.output}`)
    } else if (!this.jsonEnabled()) {
      this.log(text.replace(/\n$/, ''))
    }
    // k8s: the capacity CronJob's pod is gone before any scrape; the whole report replaces the
    // stack's group (PUT), so a check that disappeared does not linger
    const pushgateway = this.settings().yaml.metrics?.pushgatewayUrl
    if (format === 'prometheus' && pushgateway) {
      const {pushText} = await import('../src/backup/metrics.js')
      const {redact} = await import('../src/output/redact.js')
      await pushText(
        pushgateway,
        `/job/charge-ops-capacity/stack/${encodeURIComponent(this.settings().stack)}`,
        redact(text.endsWith('\n') ? text : text + '\n'),
        'PUT',
        this.logger,
      )
    }
    if (format === 'table' && critical) {
      throw new ChecksFailedError(`${report.summary.critical} capacity check(s) critical`, {
        hint: 'See "What to do" above.',
      })
    }
    process.exitCode = exitCode
    return report
  }
}
