import {Args, Flags} from '@oclif/core'

import {BaseCommand} from '../../src/cli/base-command.js'
import type {MaintenanceStatus} from '../../src/service/maintenance.js'

export default class ServiceMaintenance extends BaseCommand<typeof ServiceMaintenance> {
  static summary = 'Switch maintenance mode on or off (reads keep working, writes answer 503 with Retry-After).'
  static description =
    'Sets the flag file <stateDir>/maintenance and the Redis key charge-ops:maintenance (so every API process sees it). Restore and upgrade switch it on while they work. Without an argument, prints the current state.'
  static examples = [
    '<%= config.bin %> service maintenance on --reason "restore drill"',
    '<%= config.bin %> service maintenance off',
    '<%= config.bin %> service maintenance --json',
  ]
  static args = {
    state: Args.string({description: 'on | off | status', options: ['on', 'off', 'status'], default: 'status'}),
  }
  static flags = {
    reason: Flags.string({description: 'shown to clients in the 503 answer'}),
  }

  async run(): Promise<MaintenanceStatus> {
    const {isMaintenance, setMaintenance} = await import('../../src/service/maintenance.js')
    const {currentOwner, describeOwner} = await import('../../src/core/proc/pid.js')
    const settings = this.settings()
    const state = this.args.state
    // an operator's flag: it stays on after this run ends (no owner to take it over), but says who set it
    const result =
      state === 'status'
        ? await isMaintenance(settings)
        : await setMaintenance(
            settings,
            state === 'on',
            this.flags.reason,
            undefined,
            currentOwner(`service maintenance ${state}`),
          )
    this.log(
      `maintenance mode: ${result.on ? 'ON' : 'off'}${result.reason ? ` (${result.reason})` : ''}${result.setBy ? ` — set by ${describeOwner(result.setBy)}` : ''}`,
    )
    if (result.redis === 'unreachable')
      this.logger.warn(
        'Redis is unreachable: only the flag file is set; API processes using another state dir will not see it',
      )
    if (result.mirror === 'disagrees')
      this.logger.warn(
        `the flag file ${result.file} and the Redis key disagree (${result.redis === 'on' ? 'Redis says on, no file' : 'the file says on, Redis off'}): a run was killed between writing the two — \`charge-ops service maintenance on\` or \`off\` sets both`,
      )
    return result
  }
}
