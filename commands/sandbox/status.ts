import {Flags} from '@oclif/core'

import {BaseCommand} from '../../src/cli/base-command.js'
import type {SandboxStatus} from '../../src/sandbox/sandbox.js'
import {formatStatus} from '../../src/service/format.js'

export default class SandboxStatusCommand extends BaseCommand<typeof SandboxStatusCommand> {
  static summary = "Show the sandbox's servers (PostgreSQL, Redis, Chroma) and service."
  static examples = ['<%= config.bin %> sandbox status', '<%= config.bin %> sandbox status --json']
  static flags = {
    dir: Flags.string({description: 'sandbox directory', default: '.charge-ops/sandbox'}),
  }

  async run(): Promise<SandboxStatus> {
    const {sandboxStatus} = await import('../../src/sandbox/sandbox.js')
    const s = await sandboxStatus({dir: this.flags.dir})
    if (!s.exists) {
      this.log(`no sandbox at ${s.dir} (create it with \`charge-ops sandbox up\`)`)
      return s
    }
    for (const [name, state] of Object.entries(s.servers))
      this.log(
        `${name.padEnd(9)} ${state.running ? `running (pid ${state.pid}, port ${s.ports?.[name as 'postgres']})` : 'stopped'}`,
      )
    if (s.service) this.log(formatStatus(s.service))
    return s
  }
}
