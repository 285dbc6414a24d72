import {Flags} from '@oclif/core'

import {BaseCommand} from '../../src/cli/base-command.js'
import {repositoryLocationFlags} from '../../src/cli/flags.js'

interface ArchiveCommandResult {
  archive_command: string
  restore_command: string
  postgresqlConf: string
}

export default class WalArchiveCommand extends BaseCommand<typeof WalArchiveCommand> {
  static summary = 'Print the archive_command / restore_command lines to paste into postgresql.conf.'
  static description = 'The lines are self-contained (absolute node and charge-ops paths, --repo and --stack) because PostgreSQL runs them as the postgres OS user without your environment. S3 credentials are referenced by file (--aws-env-file, mode 0600, readable by postgres), never written into the line.'
  static examples = ['<%= config.bin %> wal archive-command --repo /var/backups/charge-ops', '<%= config.bin %> wal archive-command --repo s3://backups/charge-ops --aws-env-file /etc/charge-ops/s3.env', '<%= config.bin %> wal archive-command --repo /var/backups/charge-ops --async --process-max 2']
  static flags = {
    ...repositoryLocationFlags,
    async: Flags.boolean({default: false, description: 'archive_command pushes ahead the next ready segments in parallel (wal push --async; docs/pitr.md)'}),
    'process-max': Flags.integer({min: 1, max: 64, default: 2, description: 'with --async: segments pushed at once'}),
  }

  async run(): Promise<ArchiveCommandResult> {
    const {resolveLocation} = await import('../../src/wal/context.js')
    const {archiveCommand, restoreCommand, confString} = await import('../../src/wal/command-lines.js')
    const {isAbsolute, resolve} = await import('node:path')
    const location = resolveLocation(this.flags, () => this.settings())
    const repository = location.repository.startsWith('s3://') || isAbsolute(location.repository) ? location.repository : resolve(location.repository)
    const options = {repository, stack: location.stack, awsEnvFile: this.flags['aws-env-file']}
    const archive = archiveCommand({...options, asyncProcessMax: this.flags.async ? this.flags['process-max'] : undefined})
    const restore = restoreCommand(options)
    const postgresqlConf = `archive_mode = on\narchive_command = ${confString(archive)}\n# for recovery (charge-ops restore pitr writes this itself):\n# restore_command = ${confString(restore)}`
    this.log(postgresqlConf)
    return {archive_command: archive, restore_command: restore, postgresqlConf}
  }
}
