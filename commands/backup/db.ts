import {Flags} from '@oclif/core'

import {BaseCommand} from '../../src/cli/base-command.js'
import {encryptFlag, metricsFileFlag, pingUrlFlag, repositoryLocationFlags} from '../../src/cli/flags.js'
import type {BackupManifest} from '../../src/repository/manifest.js'

export default class BackupDb extends BaseCommand<typeof BackupDb> {
  static summary =
    'Back up the database: pg_dump from one exported snapshot, streamed through zstd into the repository.'
  static description =
    'No temp file: pg_dump -Fc -Z0 → zstd -T<cores> → (AES-256-GCM with --encrypt) → repository. The manifest records per-table row counts taken in the same snapshot, the snapshot time and LSN, the migration head and the service version; it is written last, so a killed backup is never listed. Exit 4 when another backup of the stack is running, 5 when PostgreSQL, zstd or the repository is unreachable.'
  static examples = [
    '<%= config.bin %> backup db --repo /var/backups/charge-ops',
    '<%= config.bin %> backup db --repo s3://backups/charge --encrypt /etc/charge-ops/backup.key --json',
    '<%= config.bin %> backup db --quiet --metrics-file /var/lib/prometheus/node-exporter/charge_ops_backup_db.prom',
  ]

  static flags = {
    ...repositoryLocationFlags,
    encrypt: encryptFlag,
    'metrics-file': metricsFileFlag,
    'ping-url': pingUrlFlag,
    jobs: Flags.integer({
      description:
        'parallel pg_dump workers (directory format, staged locally, then streamed); only faster with several large tables',
      min: 1,
      default: 1,
    }),
  }

  async run(): Promise<BackupManifest> {
    const {backupDatabase} = await import('../../src/backup/db.js')
    const {formatBytes} = await import('../../src/core/units/size.js')
    const ctx = await this.backupContext({
      repo: this.flags.repo,
      stack: this.flags.stack,
      encrypt: this.flags.encrypt,
      metricsFile: this.flags['metrics-file'],
      pingUrl: this.flags['ping-url'],
    })
    const manifest = await backupDatabase(ctx, {jobs: this.flags.jobs})
    const tables = Object.keys(manifest.db?.rowCounts ?? {}).length
    this.log(
      `backup ${manifest.id} complete: ${formatBytes(manifest.parts[0].bytes)} in ${((manifest.durationMs ?? 0) / 1000).toFixed(1)}s, ${tables} tables, snapshot ${manifest.db?.snapshotAt} (LSN ${manifest.db?.lsn ?? '?'})`,
    )
    return manifest
  }
}
