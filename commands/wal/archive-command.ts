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
  static description =
    'The lines are self-contained (absolute node and charge-ops paths, --repo and --stack) because PostgreSQL runs them as the postgres OS user without your environment. S3 credentials are referenced by file (--aws-env-file, mode 0600, readable by postgres), never written into the line.'
  static examples = [
    '<%= config.bin %> wal archive-command --repo /var/backups/charge-ops',
    '<%= config.bin %> wal archive-command --repo s3://backups/charge-ops --aws-env-file /etc/charge-ops/s3.env',
    '<%= config.bin %> wal archive-command --repo /var/backups/charge-ops --async --process-max 2',
    '<%= config.bin %> wal archive-command --engine wal-g',
    '<%= config.bin %> wal archive-command --form compose --json',
  ]
  static flags = {
    ...repositoryLocationFlags,
    async: Flags.boolean({
      default: false,
      description: 'archive_command pushes ahead the next ready segments in parallel (wal push --async; docs/pitr.md)',
    }),
    'process-max': Flags.integer({min: 1, max: 64, default: 2, description: 'with --async: segments pushed at once'}),
    'queue-max': Flags.string({
      description: 'archive_command warns loudly past this much WAL waiting in pg_wal (e.g. 4GB; wal push --queue-max)',
    }),
    engine: Flags.string({
      options: ['native', 'wal-g'],
      description: 'default: backup.engine from charge-ops.yaml (native with --repo and --stack)',
    }),
    form: Flags.string({
      options: ['host', 'compose'],
      description:
        "host: absolute paths of this installation; compose: the line for the stack's postgres image (charge-ops inside it, charge-ops.yaml mounted at /etc/charge-ops). Default: compose when charge-ops.yaml's target is compose",
    }),
  }

  async run(): Promise<ArchiveCommandResult> {
    const {resolveLocation} = await import('../../src/wal/context.js')
    const {archiveCommand, restoreCommand, confString, containerArchiveCommand, containerRestoreCommand} =
      await import('../../src/wal/command-lines.js')
    const {isAbsolute, resolve} = await import('node:path')
    const explicit = Boolean(this.flags.repo && this.flags.stack)
    const engine = (this.flags.engine ?? (explicit ? 'native' : this.settings().yaml.backup.engine)) as
      'native' | 'wal-g'
    const form = this.flags.form ?? (!explicit && this.settings().yaml.target === 'compose' ? 'compose' : 'host')
    let archive: string
    let restore: string
    if (form === 'compose') {
      // what init writes into the compose postgresql.conf: the container's charge-ops reads the mounted
      // charge-ops.yaml (repository, stack, engine); the S3 credentials come from backup.env (env_file)
      archive = containerArchiveCommand({engine})
      restore = containerRestoreCommand({engine})
    } else {
      const location = resolveLocation(this.flags, () => this.settings())
      const repository =
        location.repository.startsWith('s3://') || isAbsolute(location.repository)
          ? location.repository
          : resolve(location.repository)
      const options = {repository, stack: location.stack, awsEnvFile: this.flags['aws-env-file'], engine}
      if (this.flags['queue-max']) (await import('../../src/wal/queue.js')).parseQueueMax(this.flags['queue-max'])
      archive = archiveCommand({
        ...options,
        asyncProcessMax: this.flags.async ? this.flags['process-max'] : undefined,
        queueMax: this.flags['queue-max'],
      })
      restore = restoreCommand(options)
    }
    const postgresqlConf = `archive_mode = on\narchive_command = ${confString(archive)}\n# for recovery (charge-ops restore pitr writes this itself):\n# restore_command = ${confString(restore)}`
    this.log(postgresqlConf)
    return {archive_command: archive, restore_command: restore, postgresqlConf}
  }
}
