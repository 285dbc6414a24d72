import {Flags} from '@oclif/core'

import {BaseCommand} from '../../src/cli/base-command.js'
import {databaseUrlFlag, encryptFlag, pitrTargetFlags, repositoryLocationFlags} from '../../src/cli/flags.js'
import type {PitrResult} from '../../src/restore/pitr.js'
import type {WalgRestoreResult} from '../../src/restore/walg.js'

export default class RestorePitr extends BaseCommand<typeof RestorePitr> {
  static summary = 'Point-in-time recovery: base backup + archived WAL into a new data directory.'
  static description = `Picks the newest base backup that finished before the target, checks that the archive holds every WAL segment from it on (a hole is named and refused: PostgreSQL would silently promote there), streams the backup into an EMPTY directory, writes restore_command (through charge-ops), recovery_target_* and recovery.signal, and writes global/pg_control last: an interrupted restore can never be started by accident.
It refuses a non-empty directory or one with postmaster.pid, changing nothing.
With --start --port P it starts the server, waits until the server itself says it finished recovery and promoted (postmaster status, and with credentials a connection asking pg_is_in_recovery() and the timeline; clients connecting meanwhile do not matter) and reports where it stopped; a target beyond the archived WAL fails (exit 1) and the server does not promote. The recovery log is written beside the data directory (<data-dir>.recovery-<time>.log), never inside it.
Exit codes: 0 restored (and recovered), 1 the archive or the backup cannot give the target, 2 bad usage / refused directory, 5 repository unreachable.`
  static examples = [
    '<%= config.bin %> restore pitr --latest --data-dir /var/lib/postgresql/15/restored --yes',
    '<%= config.bin %> restore pitr --target-time "2026-11-28T14:03:00+08:00" --data-dir /srv/pg-restored --start --port 5433 --yes',
    '<%= config.bin %> restore pitr --target-lsn 0/5000060 --data-dir /srv/pg-restored --archive off --yes',
  ]
  static flags = {
    ...pitrTargetFlags,
    'data-dir': Flags.string({required: true, description: 'the new data directory (must be empty or absent)'}),
    backup: Flags.string({description: 'use this base backup id instead of choosing one'}),
    start: Flags.boolean({
      description: 'start the server, wait until recovery ends, report the position',
      dependsOn: ['port'],
    }),
    port: Flags.integer({description: 'port for the restored server (with --start)'}),
    timeout: Flags.integer({description: 'seconds to wait for recovery with --start', default: 3600}),
    archive: Flags.string({
      options: ['keep', 'off'],
      default: 'keep',
      description:
        'keep: the restored server archives its new timeline into the same stack; off: a throw-away copy that archives nothing',
    }),
    'database-url': databaseUrlFlag(
      "with --start: credentials to ask the restored server (its roles are the backed-up server's; host and port are replaced)",
    ),
    'target-timeline': Flags.string({description: 'recovery_target_timeline: latest (default), current, or a number'}),
    ...repositoryLocationFlags,
    engine: Flags.string({options: ['native', 'wal-g'], description: 'default: backup.engine from charge-ops.yaml'}),
    encrypt: encryptFlag,
    jobs: Flags.integer({
      description: 'parallel block readers for a file-engine backup (--type full|diff|incr)',
      min: 1,
      default: 2,
    }),
    'wal-prefetch': Flags.integer({
      description:
        'restore_command fetches this many WAL segments ahead into a spool in the data directory (0: none; docs/pitr.md)',
      min: 0,
      max: 256,
      default: 8,
    }),
  }

  async run(): Promise<PitrResult | WalgRestoreResult> {
    const {parseTarget, describeTarget} = await import('../../src/restore/pitr-target.js')
    const target = parseTarget(this.flags)
    const engine =
      this.flags.engine ?? (this.flags.repo && this.flags.stack ? 'native' : this.settings().yaml.backup.engine)
    if (engine === 'wal-g') {
      const {resolveLocation} = await import('../../src/wal/context.js')
      const {restoreWithWalg} = await import('../../src/restore/walg.js')
      const location = resolveLocation(this.flags, () => this.settings())
      await this.confirm(
        `Restore stack ${location.stack} with wal-g into ${this.flags['data-dir']}, recovering to ${describeTarget(target)}?`,
      )
      const result = await restoreWithWalg({
        settings: this.settings(),
        ...location,
        awsEnvFile: this.flags['aws-env-file'],
        target,
        dataDir: this.flags['data-dir'],
        backupName: this.flags.backup,
        archive: this.flags.archive as 'keep' | 'off',
        start: this.flags.start ? {port: this.flags.port!, timeoutSec: this.flags.timeout} : undefined,
        logger: this.logger,
      })
      this.log(
        `wal-g restored ${result.backup} into ${result.dataDir}${result.recovery ? `; recovered, timeline ${result.recovery.timeline}, port ${result.recovery.port}` : ''}`,
      )
      return result
    }
    const {openWalRepository} = await import('../../src/wal/context.js')
    const {restorePitr} = await import('../../src/restore/pitr.js')
    const {resolve} = await import('node:path')
    const {storage, stack, repository} = await openWalRepository(this.flags, () =>
      this.settings(this.flags.repo ? {repository: this.flags.repo} : {}),
    )
    await this.confirm(
      `Restore stack ${stack} from ${storage.location} into ${this.flags['data-dir']}, recovering to ${describeTarget(target)}${this.flags.start ? `, and start it on port ${this.flags.port}` : ''}?`,
    )
    const result = await restorePitr({
      storage,
      stack,
      repository: repository.startsWith('s3://') ? repository : resolve(repository),
      awsEnvFile: this.flags['aws-env-file'] ? resolve(this.flags['aws-env-file']) : undefined,
      target,
      dataDir: this.flags['data-dir'],
      backupId: this.flags.backup,
      archive: this.flags.archive as 'keep' | 'off',
      targetTimeline: this.flags['target-timeline'],
      start: this.flags.start ? {port: this.flags.port!, timeoutSec: this.flags.timeout} : undefined,
      databaseUrl: this.flags.start ? (this.flags['database-url'] ?? this.configuredDatabaseUrl()) : undefined,
      logger: this.logger,
      progress: (label, total) => this.progress(label, total),
      encryption: await this.restoreKey(),
      jobs: this.flags.jobs,
      walPrefetch: this.flags['wal-prefetch'],
    })
    this.log(
      `restored base backup ${result.backupId} into ${result.dataDir} (WAL ${result.archive.firstSegment} … ${result.archive.lastSegment} available)`,
    )
    if (result.recovery) {
      const r = result.recovery
      if (r.confirmedBy !== 'connection')
        this.logger.info(
          'promotion read from pg_control (no credentials to ask the server: --database-url / DATABASE_URL)',
        )
      this.log(
        `recovered to ${result.target}: ${r.stoppedAt ?? `redo done at ${r.redoDoneAt}`}; last transaction ${r.lastTransactionAt ?? 'n/a'}; now on timeline ${r.timeline}, serving on port ${r.port} (${Math.round(r.durationMs / 100) / 10}s)`,
      )
    }
    return result
  }

  /** DATABASE_URL from the configuration, when there is one (restore pitr needs none otherwise). */
  private configuredDatabaseUrl(): string | undefined {
    try {
      return this.settings().databaseUrl
    } catch {
      return undefined
    }
  }

  /** --encrypt, else backup.encryption.keyFile when a configuration is in use */
  private async restoreKey() {
    const file = this.flags.encrypt ?? (this.flags.repo && this.flags.stack ? undefined : this.configKeyFile())
    if (!file) return undefined
    const {loadKeyFile} = await import('../../src/backup/encryption.js')
    return loadKeyFile(file)
  }

  /** backup.encryption.keyFile, relative to the configuration's directory */
  private configKeyFile(): string | undefined {
    const settings = this.settings()
    const file = settings.yaml.backup.encryption?.keyFile
    return file ? `${file.startsWith('/') ? '' : `${settings.baseDir}/`}${file}` : undefined
  }
}
