import {Flags} from '@oclif/core'

import {BaseCommand} from '../../src/cli/base-command.js'
import {ChecksFailedError} from '../../src/errors.js'
import {renderTable} from '../../src/output/table.js'
import type {ScheduleListing} from '../../src/schedule/plan.js'
import {parseWindows} from './install.js'

export default class ScheduleList extends BaseCommand<typeof ScheduleList> {
  static summary =
    'List the scheduled jobs: expression, time zone, next three runs; flag invalid expressions and overlapping jobs.'
  static description =
    "Exit codes: 0 all jobs valid and apart; 1 an expression is invalid or two jobs are scheduled into each other's window (typical durations, see --window)."
  static examples = [
    '<%= config.bin %> schedule list',
    '<%= config.bin %> schedule list --json',
    '<%= config.bin %> schedule list --window backup-db=90',
  ]
  static flags = {
    window: Flags.string({
      multiple: true,
      description: 'typical duration of a job for the overlap check, JOB=MINUTES (repeatable)',
    }),
  }

  async run(): Promise<ScheduleListing> {
    const {listSchedule} = await import('../../src/schedule/plan.js')
    const listing = listSchedule({settings: this.settings(), windows: parseWindows(this.flags.window)})
    this.log(
      renderTable(
        ['JOB', 'CRON', 'TIMEZONE', 'NEXT RUNS', 'COMMAND'],
        listing.jobs.map((j) => [
          j.name,
          j.cron,
          j.timezone,
          j.problem ? `invalid: ${j.problem}` : j.enabled ? j.nextRuns.join(', ') : 'disabled',
          j.command,
        ]),
      ),
    )
    for (const o of listing.overlaps) this.logger.warn(`overlap: ${o.message}`)
    const invalid = listing.jobs.filter((j) => j.problem)
    if (invalid.length > 0 || listing.overlaps.length > 0) {
      process.exitCode = 1
      if (!this.jsonEnabled()) {
        throw new ChecksFailedError(`${invalid.length} invalid expression(s), ${listing.overlaps.length} overlap(s)`, {
          hint: 'Fix schedules: in charge-ops.yaml (or adjust --window if the durations are wrong).',
        })
      }
    }
    return listing
  }
}
