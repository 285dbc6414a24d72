import {Flags} from '@oclif/core'

import {BaseCommand} from '../../src/cli/base-command.js'
import {encryptFlag, metricsFileFlag, pingUrlFlag, repositoryLocationFlags} from '../../src/cli/flags.js'
import {manifestBytes, type BackupManifest} from '../../src/repository/manifest.js'
import type {RepositoryStorage} from '../../src/repository/storage.js'

export default class BackupBase extends BaseCommand<typeof BackupBase> {
  static summary =
    'Take a physical base backup into the repository: pg_basebackup, or full / differential / incremental with --type.'
  static description = `Without --type: pg_basebackup -Ft -X none streamed through zstd into the repository; the manifest (written last) records start / stop LSN, timeline, system identifier, the WAL segments the backup needs, and the sha256 of the stored tar. The backup is marked complete only once its last WAL segment is archived, so WAL archiving (\`charge-ops wal archive-command\`) must be on.
Every wait is bounded by --wal-timeout: when archiving fails, the server would wait forever for the backup's last segment; charge-ops stops pg_basebackup, ends the server's wait (terminates its walsender), releases the lock and exits 5 naming pg_stat_archiver's last failure. SIGTERM / SIGINT clean up the same way.
With --type full|diff|incr: the file engine. It runs pg_backup_start / pg_backup_stop in one session and reads the data directory itself (run it on the database host as the postgres user), --jobs workers in parallel, in 8 MiB blocks; a diff (against the newest full) or incr (against the newest backup of the chain) stores only the blocks that changed and references the rest. A diff / incr without a sound prior backup (missing, incomplete, failed verification) is refused, never turned into a full. Encrypted with --encrypt / backup.encryption.keyFile.
With backup.engine: wal-g it runs \`wal-g backup-push\` instead (needs --data-dir).
--metrics-file (or backup.metricsFile) gets kind="base" like the other backups: the last success's timestamp, duration and stored bytes, or the last failure's timestamp (ChargeOpsBackupTooOld / ChargeOpsBaseBackupMissing read them); --ping-url is pinged on start, success and /fail.`
  static examples = [
    '<%= config.bin %> backup base',
    '<%= config.bin %> backup base --repo /var/backups/charge-ops --json',
    'sudo -u postgres <%= config.bin %> backup base --type full --jobs 2 --repo /var/backups/charge-ops --stack charge-analysis',
    'sudo -u postgres <%= config.bin %> backup base --type incr --repo /var/backups/charge-ops --stack charge-analysis',
    '<%= config.bin %> backup base --quiet --metrics-file /var/lib/prometheus/node-exporter/charge_ops_backup_base.prom',
  ]
  static flags = {
    ...repositoryLocationFlags,
    'database-url': Flags.string({
      description:
        'the server to back up (default: CHARGE_OPS_ADMIN_URL when set, else DATABASE_URL); needs REPLICATION',
    }),
    'wal-timeout': Flags.integer({
      description:
        "seconds to wait for the backup's WAL to be archived — the server's own wait at the end of the backup, then the backup history file; on timeout pg_basebackup is stopped and the command exits 5 naming pg_stat_archiver's last failure",
      default: 120,
    }),
    engine: Flags.string({options: ['native', 'wal-g'], description: 'default: backup.engine from charge-ops.yaml'}),
    'data-dir': Flags.string({
      description:
        "the server data directory (PGDATA) as this host sees it: wal-g, and --type (default: the server's data_directory)",
    }),
    type: Flags.string({
      options: ['full', 'diff', 'incr'],
      description:
        'file engine: full, diff (changes since the newest full) or incr (since the newest backup); default: pg_basebackup (always full)',
    }),
    jobs: Flags.integer({description: 'file engine: parallel block workers', min: 1, default: 2}),
    encrypt: encryptFlag,
    'metrics-file': metricsFileFlag,
    'ping-url': pingUrlFlag,
  }

  async run(): Promise<BackupManifest | Record<string, unknown>> {
    const {openWalRepository} = await import('../../src/wal/context.js')
    const {requireSetting} = await import('../../src/config/settings.js')
    const engine =
      this.flags.engine ?? (this.flags.repo && this.flags.stack ? 'native' : this.settings().yaml.backup.engine)
    // REPLICATION is not the application role's: the admin connection (CHARGE_OPS_ADMIN_URL, which
    // init writes for compose) when there is one — so `docker compose run --rm ops backup base` works.
    const databaseUrl =
      this.flags['database-url'] ??
      this.settings().adminDatabaseUrl ??
      requireSetting(
        this.settings().databaseUrl,
        'DATABASE_URL',
        'Set DATABASE_URL in the .env or pass --database-url.',
      )
    const {reportBackupRun} = await import('../../src/backup/metrics.js')
    const report = {
      metricsFile:
        this.flags['metrics-file'] ??
        (this.flags.repo && this.flags.stack ? undefined : this.settings().yaml.backup.metricsFile),
      pushgatewayUrl: this.flags.repo && this.flags.stack ? undefined : this.settings().yaml.metrics?.pushgatewayUrl,
      pingUrl:
        this.flags['ping-url'] ??
        (this.flags.repo && this.flags.stack ? undefined : this.settings().yaml.backup.pingUrl),
      kind: 'base',
      label: 'backup base',
      logger: this.logger,
    }
    if (engine === 'wal-g') {
      const {walgBackupPush} = await import('../../src/backup/walg.js')
      const dataDir = requireSetting(
        this.flags['data-dir'],
        '--data-dir',
        'wal-g backup-push reads the data directory: pass --data-dir.',
      )
      // wal-g reports no size: the bytes sample is left out
      const result = await reportBackupRun(
        {...report, stack: this.settings().stack},
        () => walgBackupPush({settings: this.settings(), databaseUrl, dataDir, logger: this.logger}),
        () => undefined,
      )
      this.log('wal-g backup-push complete')
      return result
    }
    const {storage, stack} = await openWalRepository(this.flags, () =>
      this.settings(this.flags.repo ? {repository: this.flags.repo} : {}),
    )
    return reportBackupRun(
      {...report, stack},
      () => this.native(storage, stack, databaseUrl),
      (m) => {
        // the file engine stores only the changed blocks: its own count; pg_basebackup: the parts
        const stored = m.base?.storedBytes
        return typeof stored === 'number' ? stored : manifestBytes(m)
      },
    )
  }

  /** pg_basebackup, or the file engine with --type */
  private async native(storage: RepositoryStorage, stack: string, databaseUrl: string): Promise<BackupManifest> {
    if (this.flags.type) {
      const {backupBaseFiles} = await import('../../src/backup/base-files.js')
      const keyFile = this.flags.encrypt ?? (this.flags.repo && this.flags.stack ? undefined : this.configKeyFile())
      const {loadKeyFile} = await import('../../src/backup/encryption.js')
      const manifest = await backupBaseFiles({
        storage,
        stack,
        databaseUrl,
        type: this.flags.type as 'full' | 'diff' | 'incr',
        jobs: this.flags.jobs,
        dataDir: this.flags['data-dir'],
        encryption: keyFile ? loadKeyFile(keyFile) : undefined,
        walTimeoutSec: this.flags['wal-timeout'],
        logger: this.logger,
        progress: (label, total) => this.progress(label, total),
      })
      const b = manifest.base as Record<string, unknown>
      this.log(
        `base backup ${manifest.id} (${b.type}${b.prior ? ` on ${b.prior}` : ''}) complete: ${b.startLsn} → ${b.stopLsn} on timeline ${b.timeline}; ${b.storedBytes} bytes stored, ${b.referencedBytes} bytes referenced`,
      )
      return manifest
    }
    const {backupBase} = await import('../../src/backup/physical.js')
    const manifest = await backupBase({
      storage,
      stack,
      databaseUrl,
      logger: this.logger,
      walTimeoutSec: this.flags['wal-timeout'],
      progress: (label) => this.progress(label),
    })
    this.log(
      `base backup ${manifest.id} complete: ${manifest.base?.startLsn} → ${manifest.base?.stopLsn} on timeline ${manifest.base?.timeline}`,
    )
    return manifest
  }

  /** backup.encryption.keyFile, relative to the configuration's directory */
  private configKeyFile(): string | undefined {
    const settings = this.settings()
    const file = settings.yaml.backup.encryption?.keyFile
    return file ? `${file.startsWith('/') ? '' : `${settings.baseDir}/`}${file}` : undefined
  }
}
