import {Flags} from '@oclif/core'

import {BaseCommand} from '../../src/cli/base-command.js'
import {encryptFlag, metricsFileFlag, pingUrlFlag, repositoryLocationFlags} from '../../src/cli/flags.js'
import type {BackupManifest} from '../../src/repository/manifest.js'

export default class BackupFiles extends BaseCommand<typeof BackupFiles> {
  static summary = 'Back up UPLOADS_DIR and the Chroma folder: tar → zstd → repository, no temp copy.'
  static description =
    "chroma.sqlite3 is copied with SQLite's online backup API (never read while live); the HNSW segment files are read while the service is in maintenance mode (--no-maintenance to skip). Each folder is one part with its file count, bytes, checksum and a file list."
  static examples = [
    '<%= config.bin %> backup files --repo /var/backups/charge-ops',
    '<%= config.bin %> backup files --json --quiet',
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
  }

  async run(): Promise<BackupManifest> {
    const ctx = await this.backupContext({
      repo: this.flags.repo,
      stack: this.flags.stack,
      encrypt: this.flags.encrypt,
      metricsFile: this.flags['metrics-file'],
      pingUrl: this.flags['ping-url'],
    })
    const {backupFiles, filesOptionsFrom} = await import('../../src/backup/files.js')
    const {formatBytes} = await import('../../src/core/units/size.js')
    const manifest = await backupFiles(ctx, filesOptionsFrom(ctx, {maintenance: this.flags.maintenance}))
    const f = manifest.files
    this.log(
      `backup ${manifest.id} complete: uploads ${f?.uploads ? `${f.uploads.fileCount} files / ${formatBytes(f.uploads.bytes)}` : '-'}, chroma ${f?.chroma ? `${f.chroma.fileCount} files / ${formatBytes(f.chroma.bytes)}` : '-'}, stored ${formatBytes(manifest.parts.reduce((s, p) => s + p.bytes, 0))}`,
    )
    return manifest
  }
}
