import {Flags} from '@oclif/core'

import {BaseCommand} from '../../src/cli/base-command.js'
import type {BackupManifest} from '../../src/repository/manifest.js'

export default class BackupBase extends BaseCommand<typeof BackupBase> {
  static summary = 'Take a physical base backup (pg_basebackup, tar, zstd, streamed) into the repository.'
  static description = `Native engine: pg_basebackup -Ft -X none streamed through zstd into the repository; the manifest (written last) records start / stop LSN, timeline, system identifier, the WAL segments the backup needs, and the sha256 of the stored tar. The backup is marked complete only once its last WAL segment is archived, so WAL archiving (\`charge-ops wal archive-command\`) must be on.
Every wait is bounded by --wal-timeout: when archiving fails, the server would wait forever for the backup's last segment; charge-ops stops pg_basebackup, ends the server's wait (terminates its walsender), releases the lock and exits 5 naming pg_stat_archiver's last failure. SIGTERM / SIGINT clean up the same way.
With backup.engine: wal-g it runs \`wal-g backup-push\` instead (needs --data-dir).`
  static examples = ['<%= config.bin %> backup base', '<%= config.bin %> backup base --repo /var/backups/charge-ops --json']
  static flags = {
    repo: Flags.string({description: 'repository: a directory or s3://bucket/prefix', env: 'CHARGE_OPS_REPO'}),
    stack: Flags.string({description: 'stack name (default: from charge-ops.yaml)'}),
    'aws-env-file': Flags.string({description: 'a 0600 file with AWS_* variables for an S3 repository'}),
    'database-url': Flags.string({description: 'the server to back up (default: DATABASE_URL); needs REPLICATION'}),
    'wal-timeout': Flags.integer({description: "seconds to wait for the backup's WAL to be archived — the server's own wait at the end of the backup, then the backup history file; on timeout pg_basebackup is stopped and the command exits 5 naming pg_stat_archiver's last failure", default: 120}),
    engine: Flags.string({options: ['native', 'wal-g'], description: 'default: backup.engine from charge-ops.yaml'}),
    'data-dir': Flags.string({description: 'wal-g engine only: the server data directory (PGDATA)'}),
  }

  async run(): Promise<BackupManifest | Record<string, unknown>> {
    const {openWalRepository} = await import('../../src/wal/context.js')
    const {requireSetting} = await import('../../src/config/settings.js')
    const engine = this.flags.engine ?? (this.flags.repo && this.flags.stack ? 'native' : this.settings().yaml.backup.engine)
    const databaseUrl = this.flags['database-url'] ?? requireSetting(this.settings().databaseUrl, 'DATABASE_URL', 'Set DATABASE_URL in the .env or pass --database-url.')
    if (engine === 'wal-g') {
      const {walgBackupPush} = await import('../../src/backup/walg.js')
      const result = await walgBackupPush({settings: this.settings(), databaseUrl, dataDir: requireSetting(this.flags['data-dir'], '--data-dir', 'wal-g backup-push reads the data directory: pass --data-dir.'), logger: this.logger})
      this.log('wal-g backup-push complete')
      return result
    }
    const {backupBase} = await import('../../src/backup/physical.js')
    const {storage, stack} = await openWalRepository(this.flags, () => this.settings(this.flags.repo ? {repository: this.flags.repo} : {}))
    const manifest = await backupBase({storage, stack, databaseUrl, logger: this.logger, walTimeoutSec: this.flags['wal-timeout'], progress: (label) => this.progress(label)})
    this.log(`base backup ${manifest.id} complete: ${manifest.base?.startLsn} → ${manifest.base?.stopLsn} on timeline ${manifest.base?.timeline}`)
    return manifest
  }
}
