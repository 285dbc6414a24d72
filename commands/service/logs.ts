import {Flags} from '@oclif/core'

import {BaseCommand} from '../../src/cli/base-command.js'
import {followLog, logFile, tailLines, type LogName} from '../../src/service/logs.js'

export default class ServiceLogs extends BaseCommand<typeof ServiceLogs> {
  static summary = "Print the last lines of the service's logs (app.log, error.log or a process's output)."
  static examples = [
    '<%= config.bin %> service logs',
    '<%= config.bin %> service logs --error --lines 50',
    '<%= config.bin %> service logs --process worker-1 --follow',
  ]
  static flags = {
    error: Flags.boolean({description: 'logs/error.log instead of logs/app.log', exclusive: ['process']}),
    process: Flags.string({description: "a process's stdout/stderr: api, worker-1 …", exclusive: ['error']}),
    lines: Flags.integer({char: 'n', description: 'how many lines', default: 100, min: 1}),
    follow: Flags.boolean({char: 'f', description: 'keep printing new lines (Ctrl-C to stop)', exclusive: ['json']}),
  }

  async run(): Promise<{file: string; lines: string[]}> {
    const name = (this.flags.process ?? (this.flags.error ? 'error' : 'app')) as LogName
    const file = logFile(this.settings(), name)
    const lines = tailLines(file, this.flags.lines)
    for (const line of lines) this.log(line)
    if (this.flags.follow) {
      const controller = new AbortController()
      process.once('SIGINT', () => controller.abort())
      await followLog(file, (text) => process.stdout.write(text), controller.signal)
    }
    return {file, lines}
  }
}
