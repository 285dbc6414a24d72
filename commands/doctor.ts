import {BaseCommand} from '../src/cli/base-command.js'
import {ChecksFailedError} from '../src/errors.js'
import type {Report} from '../src/capacity/render.js'

export default class Doctor extends BaseCommand<typeof Doctor> {
  static summary = "Diagnose the stack: the guide's troubleshooting table, automated, plus cross-store integrity."
  static description = `Checks: configuration validation; database connectivity with the exact cause (DNS, refused, timeout, password, pg_hba, SSL); migrations pending or drifted; Redis writable (MISCONF, OOM, persistence errors); Chroma heartbeat; memory and disk pressure; the service's processes and /health; and cross-store integrity — uploads referenced by the database but missing on disk, orphan upload files, knowledge passages without vectors in Chroma and the reverse, embedding dimension mismatches. Each finding carries the guide's remedy.

Exit codes: 0 nothing wrong, 1 any warning or critical finding (checks that could not run are shown as UNKNOWN with the reason).`
  static examples = [
    '<%= config.bin %> doctor',
    '<%= config.bin %> doctor --json | jq \'.checks[] | select(.status != "ok")\'',
  ]

  async run(): Promise<Report> {
    const {runDoctor, doctorFailed} = await import('../src/doctor/index.js')
    const {renderText} = await import('../src/capacity/render.js')
    const report = await runDoctor({settings: this.settings(), logger: this.logger})
    if (!this.jsonEnabled()) this.log(renderText(report))
    if (doctorFailed(report)) {
      if (this.jsonEnabled()) {
        process.exitCode = 1
        return report
      }
      throw new ChecksFailedError(
        `doctor found ${report.summary.critical} critical and ${report.summary.warning} warning finding(s)`,
        {hint: 'See "What to do" above.'},
      )
    }
    return report
  }
}
