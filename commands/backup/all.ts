import {Flags} from '@oclif/core'

import {BaseCommand} from '../../src/cli/base-command.js'
import {encryptFlag, metricsFileFlag, pingUrlFlag, repositoryLocationFlags} from '../../src/cli/flags.js'
import type {BackupManifest} from '../../src/repository/manifest.js'

export default class BackupAll extends BaseCommand<typeof BackupAll> {
  static summary = 'Back up the database and the files under one backup id, and check the stores agree.'
  static description =
    "The database and the folders are captured concurrently; the manifest records the snapshot time and LSN, the uploads and Chroma capture times and the skew between them. Before completing it checks that every upload the database references is in the files part (missing ones and orphan files are listed) and that Chroma's charging_knowledge count matches the knowledge passages in PostgreSQL. Problems are recorded in the manifest and make the command exit 1 (the backup is still complete)."
  static examples = [
    '<%= config.bin %> backup all --repo s3://backups/charge --encrypt /etc/charge-ops/backup.key',
    '<%= config.bin %> backup all --quiet --metrics-file /var/lib/prometheus/node-exporter/charge_ops_backup_all.prom --ping-url https://hc-ping.com/UUID',
  ]
  static flags = {
    ...repositoryLocationFlags,
    encrypt: encryptFlag,
    'metrics-file': metricsFileFlag,
    'ping-url': pingUrlFlag,
    maintenance: Flags.boolean({
      description: 'put the service in maintenance mode while the Chroma folder is read',
      default: true,
      allowNo: true,
    }),
    jobs: Flags.integer({description: 'parallel pg_dump workers (directory format)', min: 1, default: 1}),
  }

  async run(): Promise<BackupManifest> {
    const ctx = await this.backupContext({
      repo: this.flags.repo,
      stack: this.flags.stack,
      encrypt: this.flags.encrypt,
      metricsFile: this.flags['metrics-file'],
      pingUrl: this.flags['ping-url'],
    })
    const {backupAll, describeConsistency} = await import('../../src/backup/all.js')
    const {filesOptionsFrom} = await import('../../src/backup/files.js')
    const {formatBytes} = await import('../../src/core/units/size.js')
    const {ChecksFailedError} = await import('../../src/errors.js')
    const manifest = await backupAll(ctx, {
      ...filesOptionsFrom(ctx, {maintenance: this.flags.maintenance}),
      jobs: this.flags.jobs,
    })
    const c = manifest.consistency!
    this.log(
      `backup ${manifest.id} complete: ${formatBytes(manifest.parts.reduce((s, p) => s + p.bytes, 0))} in ${((manifest.durationMs ?? 0) / 1000).toFixed(1)}s, skew ${((c.skewMs ?? 0) / 1000).toFixed(1)}s`,
    )
    this.log(`cross-store check: ${describeConsistency(c)}`)
    for (const note of c.notes) this.logger.warn(note)
    if (!c.ok) {
      if (this.jsonEnabled()) process.exitCode = 1
      else
        throw new ChecksFailedError(
          `backup ${manifest.id} is complete, but the stores disagree: ${describeConsistency(c)}`,
          {
            code: 'CROSS_STORE_MISMATCH',
            hint: 'Inspect with charge-ops backup show ' + manifest.id + ' --json (consistency section).',
          },
        )
    }
    return manifest
  }
}
