import {Flags} from '@oclif/core'

import {BaseCommand} from '../../src/cli/base-command.js'
import type {SandboxDownResult} from '../../src/sandbox/sandbox.js'

export default class SandboxDown extends BaseCommand<typeof SandboxDown> {
  static summary = "Stop the sandbox's service, Chroma, Redis and PostgreSQL (--purge also deletes it)."
  static examples = ['<%= config.bin %> sandbox down', '<%= config.bin %> sandbox down --purge --yes']
  static flags = {
    dir: Flags.string({description: 'sandbox directory', default: '.charge-ops/sandbox'}),
    purge: Flags.boolean({description: 'delete the sandbox directory and all its data afterwards'}),
  }

  async run(): Promise<SandboxDownResult> {
    const {sandboxDir, sandboxDown} = await import('../../src/sandbox/sandbox.js')
    if (this.flags.purge) await this.confirm(`Delete the sandbox ${sandboxDir(this.flags.dir)} and all its data?`)
    const result = await sandboxDown({dir: this.flags.dir, purge: this.flags.purge, logger: this.logger})
    this.log(result.stopped.length === 0 ? 'nothing was running' : `stopped: ${result.stopped.join(', ')}`)
    if (result.purged) this.log(`deleted ${result.dir}`)
    return result
  }
}
