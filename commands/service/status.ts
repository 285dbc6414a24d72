import {BaseCommand} from '../../src/cli/base-command.js'
import {formatStatus} from '../../src/service/format.js'
import type {ServiceStatus} from '../../src/service/process.js'

export default class ServiceStatusCommand extends BaseCommand<typeof ServiceStatusCommand> {
  static summary = 'Show the service processes (pid, uptime) and /health of PostgreSQL, Redis and Chroma.'
  static examples = ['<%= config.bin %> service status', '<%= config.bin %> service status --json']

  async run(): Promise<ServiceStatus> {
    const {serviceStatus} = await import('../../src/service/process.js')
    const status = await serviceStatus(this.settings())
    this.log(formatStatus(status))
    return status
  }
}
