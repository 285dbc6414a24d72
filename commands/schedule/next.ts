import {Args, Flags} from '@oclif/core'

import {BaseCommand} from '../../src/cli/base-command.js'

export interface NextResult {
  expression: string
  timezone: string
  runs: string[]
  onCalendar?: string
}

export default class ScheduleNext extends BaseCommand<typeof ScheduleNext> {
  static summary =
    'Show the next runs of a cron expression (and its systemd OnCalendar form); reject invalid ones with the reason.'
  static examples = [
    '<%= config.bin %> schedule next "0 2 * * *"',
    '<%= config.bin %> schedule next "*/15 9-17 * * 1-5" --timezone Europe/Berlin --count 5 --json',
  ]
  static args = {expression: Args.string({required: true, description: 'five-field cron expression (quote it)'})}
  static flags = {
    timezone: Flags.string({description: 'IANA zone to read the expression in (default: the host zone)'}),
    count: Flags.integer({description: 'how many runs', default: 3, min: 1, max: 100}),
  }

  async run(): Promise<NextResult> {
    const {nextRuns, cronToOnCalendar} = await import('../../src/schedule/cron.js')
    const {formatInZone} = await import('../../src/schedule/plan.js')
    const zone = this.flags.timezone ?? Intl.DateTimeFormat().resolvedOptions().timeZone
    const runs = nextRuns(this.args.expression, {timezone: this.flags.timezone, count: this.flags.count}).map((d) =>
      formatInZone(d, zone),
    )
    let onCalendar: string | undefined
    try {
      onCalendar = cronToOnCalendar(this.args.expression, this.flags.timezone)
    } catch {
      onCalendar = undefined
    }
    for (const r of runs) this.log(r)
    if (onCalendar) this.logger.info(`systemd: OnCalendar=${onCalendar}`)
    return {expression: this.args.expression, timezone: zone, runs, ...(onCalendar ? {onCalendar} : {})}
  }
}
