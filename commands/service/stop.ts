import {Flags} from '@oclif/core'

import {BaseCommand} from '../../src/cli/base-command.js'
import type {StoppedProcess} from '../../src/service/process.js'

export default class ServiceStop extends BaseCommand<typeof ServiceStop> {
  static summary = 'Stop the bundled service: graceful (the worker drains its job), then forceful after a timeout.'
  static description =
    'Sends SIGTERM to the API and the workers; the API finishes in-flight requests, each worker finishes its current analysis. Whatever is still running after --timeout seconds gets SIGKILL (its job is taken over by the next worker: nothing is lost or done twice).'
  static examples = ['<%= config.bin %> service stop', '<%= config.bin %> service stop --timeout 120']
  static flags = {
    timeout: Flags.integer({description: 'seconds to wait for a graceful stop before SIGKILL', default: 30}),
  }

  async run(): Promise<{stopped: StoppedProcess[]}> {
    const {stopService} = await import('../../src/service/process.js')
    const result = await stopService(this.settings(), {timeoutMs: this.flags.timeout * 1000, logger: this.logger})
    if (result.stopped.length === 0) this.log('the service was not running')
    for (const s of result.stopped)
      this.log(`${s.name} (pid ${s.pid}) stopped${s.how === 'forced' ? ' — forced with SIGKILL' : ''}`)
    return result
  }
}
