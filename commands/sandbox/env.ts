import {Flags} from '@oclif/core'

import {BaseCommand} from '../../src/cli/base-command.js'

export default class SandboxEnv extends BaseCommand<typeof SandboxEnv> {
  static summary = 'Print the shell lines that point charge-ops at the sandbox.'
  static description =
    'Prints `export CHARGE_OPS_CONFIG=…` (and MIGRATION_DATABASE_URL read from a 0600 file, so no password is printed). Use: eval "$(charge-ops sandbox env)".'
  static examples = ['eval "$(<%= config.bin %> sandbox env)"']
  static flags = {
    dir: Flags.string({description: 'sandbox directory', default: '.charge-ops/sandbox'}),
  }

  async run(): Promise<{lines: string[]}> {
    const {sandboxEnvLines} = await import('../../src/sandbox/sandbox.js')
    const lines = sandboxEnvLines({dir: this.flags.dir})
    for (const line of lines) this.log(line)
    return {lines}
  }
}
