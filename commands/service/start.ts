import {Flags} from '@oclif/core'

import {BaseCommand} from '../../src/cli/base-command.js'
import {formatStatus} from '../../src/service/format.js'
import type {ServiceStatus} from '../../src/service/process.js'

export default class ServiceStart extends BaseCommand<typeof ServiceStart> {
  static summary = 'Start the bundled Charge Analysis API and worker(s) in the background.'
  static description =
    'Runs the API and the workers as background processes with pid files under <stateDir>/run and logs under <stateDir>/logs. ' +
    'Settings (DATABASE_URL, REDIS_URL, SECRET_KEY, CHROMA_URL, UPLOADS_DIR, HOST, PORT …) are passed from the backend .env as environment, never argv. ' +
    'Refuses (exit 4) when the service is already running; exit 3 when the schema is not migrated.'
  static examples = [
    '<%= config.bin %> service start',
    '<%= config.bin %> service start --workers 1',
    '<%= config.bin %> service start --json',
  ]
  static flags = {
    workers: Flags.integer({
      description: 'number of workers (default: charge-ops.yaml service.workers)',
      min: 1,
      max: 32,
    }),
    timeout: Flags.integer({description: 'seconds to wait for the API to answer /health', default: 30}),
  }

  async run(): Promise<ServiceStatus> {
    const {startService} = await import('../../src/service/process.js')
    const status = await startService(this.settings(), {
      workers: this.flags.workers,
      timeoutMs: this.flags.timeout * 1000,
      logger: this.logger,
    })
    this.log(formatStatus(status))
    return status
  }
}
