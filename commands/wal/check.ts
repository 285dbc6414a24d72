import {Flags} from '@oclif/core'

import {BaseCommand} from '../../src/cli/base-command.js'
import type {WalCheckResult} from '../../src/wal/check.js'
import {repositoryLocationFlags} from '../../src/cli/flags.js'

export default class WalCheck extends BaseCommand<typeof WalCheck> {
  static summary = 'Force a WAL switch and confirm the segment reaches the repository; report archive lag.'
  static description =
    "Checks archive_mode / archive_command, that the repository belongs to this cluster (system identifier), then runs pg_switch_wal() and waits until that segment is in the repository. Exit 0 when it arrived, 1 when it did not within --timeout (with the archiver's last failure), 2 on configuration problems, 5 when PostgreSQL or the repository is unreachable."
  static examples = [
    '<%= config.bin %> wal check',
    '<%= config.bin %> wal check --repo /var/backups/charge-ops --timeout 120 --json',
  ]
  static flags = {
    ...repositoryLocationFlags,
    'database-url': Flags.string({
      description:
        'the server to check (default: CHARGE_OPS_ADMIN_URL when set, else DATABASE_URL); needs pg_switch_wal() rights',
    }),
    timeout: Flags.integer({description: 'seconds to wait for the segment', default: 60}),
  }

  async run(): Promise<WalCheckResult> {
    const {openWalRepository} = await import('../../src/wal/context.js')
    const {checkWalArchiving} = await import('../../src/wal/check.js')
    const {requireSetting} = await import('../../src/config/settings.js')
    const {storage, stack} = await openWalRepository(this.flags, () => this.settings())
    // pg_switch_wal() is a superuser's unless granted: the admin connection when there is one
    const databaseUrl =
      this.flags['database-url'] ??
      this.settings().adminDatabaseUrl ??
      requireSetting(
        this.settings().databaseUrl,
        'DATABASE_URL',
        'Set DATABASE_URL in the .env or pass --database-url.',
      )
    const {READY_BACKLOG_WARNING} = await import('../../src/wal/check.js')
    const result = await checkWalArchiving({
      storage,
      stack,
      databaseUrl,
      timeoutMs: this.flags.timeout * 1000,
      logger: this.logger,
    })
    this.log(
      `ok: ${result.switchedSegment} archived after ${result.arrivedAfterMs} ms (${storage.location}/${result.repositoryKey})`,
    )
    const lag = result.lag
    this.log(
      `archive lag: ${lag.segmentsBehind ?? '?'} segment(s) behind, last archived ${lag.lastArchivedSegment ?? 'never'}${lag.secondsSinceLastArchive === null ? '' : ` ${lag.secondsSinceLastArchive}s ago`}; ${lag.failedCount} failure(s)${lag.lastFailedSegment ? `, last ${lag.lastFailedSegment} at ${lag.lastFailedAt}` : ''}${lag.readyBacklog === null ? '' : `; ${lag.readyBacklog} segment(s) waiting (.ready)`}`,
    )
    if (lag.readyBacklog !== null && lag.readyBacklog >= READY_BACKLOG_WARNING) {
      this.logger.warn(
        `${lag.readyBacklog} WAL segments wait in pg_wal/archive_status (.ready): archiving falls behind, pg_wal grows. Consider archive_command with --async --process-max (docs/pitr.md), and check the repository.`,
      )
    }
    return result
  }
}
