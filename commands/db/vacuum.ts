import {Flags} from '@oclif/core'

import {BaseCommand} from '../../src/cli/base-command.js'
import {requireSetting} from '../../src/config/settings.js'
import {ChecksFailedError, UsageError} from '../../src/errors.js'
import {renderTable} from '../../src/output/table.js'
import type {VacuumResult} from '../../src/maintenance/vacuum.js'

export default class DbVacuum extends BaseCommand<typeof DbVacuum> {
  static summary = 'VACUUM (ANALYZE) the tables that need it; VACUUM FULL with --full --yes.'
  static description = `Picks tables whose dead-tuple ratio (default ≥ 20% and ≥ 1000 dead rows) or estimated bloat (≥ 40%) passes the threshold, in one catalog query, and runs VACUUM (ANALYZE) on each, with progress from pg_stat_progress_vacuum and a summary of dead tuples removed and space returned to the OS.

--full runs VACUUM (FULL, ANALYZE): it rewrites the table under an ACCESS EXCLUSIVE lock (reads and writes wait) and needs free disk equal to the table's size; it only runs with --yes, and lock_timeout makes it give up instead of queueing behind long transactions.`
  static examples = [
    '<%= config.bin %> db vacuum --dry-run',
    '<%= config.bin %> db vacuum',
    '<%= config.bin %> db vacuum --table charging_samples --full --yes',
  ]
  static flags = {
    table: Flags.string({char: 't', description: 'only this table (schema-qualified if needed)'}),
    full: Flags.boolean({
      description: 'VACUUM (FULL, ANALYZE): returns space to the OS, blocks the table (needs --yes)',
    }),
    'dry-run': Flags.boolean({description: 'list the tables that would be vacuumed and why'}),
    'dead-ratio': Flags.string({description: 'dead-tuple ratio that selects a table', default: '0.2'}),
    'bloat-pct': Flags.integer({description: 'estimated bloat % that selects a table', default: 40}),
    'lock-timeout': Flags.string({
      description: 'give up on a table when its lock is not granted within this time',
      default: '5s',
    }),
  }

  async run(): Promise<VacuumResult> {
    const {vacuum} = await import('../../src/maintenance/vacuum.js')
    const {formatBytes} = await import('../../src/core/units/size.js')
    const settings = this.settings()
    const databaseUrl = requireSetting(
      settings.databaseUrl,
      'DATABASE_URL',
      'Set DATABASE_URL in the backend .env or the environment.',
    )
    const deadRatio = Number(this.flags['dead-ratio'])
    if (!(deadRatio > 0 && deadRatio <= 1))
      throw new UsageError('--dead-ratio must be between 0 and 1', {hint: 'e.g. --dead-ratio 0.2'})
    const base = {
      databaseUrl,
      table: this.flags.table,
      full: this.flags.full,
      deadRatio,
      bloatPct: this.flags['bloat-pct'],
      lockTimeout: this.flags['lock-timeout'],
    }

    if (this.flags.full && !this.flags['dry-run']) {
      const plan = await vacuum({...base, dryRun: true})
      if (plan.tables.length > 0) {
        const total = plan.tables.reduce((s, t) => s + t.bytes, 0)
        this.logger.warn(
          `VACUUM FULL takes an ACCESS EXCLUSIVE lock on each table (every read and write waits until it finishes) and needs free disk equal to the table's size (${formatBytes(total)} in total for: ${plan.tables.map((t) => `${t.table} ${formatBytes(t.bytes)}`).join(', ')}).`,
        )
        if (!this.flags.yes)
          throw new UsageError('VACUUM FULL only runs with --yes', {
            code: 'CONFIRMATION_REQUIRED',
            hint: 'Run it in a maintenance window with --yes, or drop --full (plain VACUUM does not block).',
          })
      }
    }
    const result = await vacuum({
      ...base,
      dryRun: this.flags['dry-run'],
      onProgress: (table, text) => this.logger.info(`  ${table}: ${text}`),
    })
    if (result.tables.length === 0) {
      this.log('no table needs vacuuming (dead-tuple ratio and estimated bloat are under the thresholds)')
      return result
    }
    this.log(
      renderTable(
        ['TABLE', 'REASON', 'SIZE', ...(result.dryRun ? [] : ['AFTER', 'RECLAIMED', 'DEAD AFTER', 'RESULT'])],
        result.tables.map((t) => [
          t.table,
          t.reason,
          formatBytes(t.bytes),
          ...(result.dryRun
            ? []
            : [
                t.bytesAfter === undefined ? '' : formatBytes(t.bytesAfter),
                t.reclaimedBytes === undefined ? '' : formatBytes(t.reclaimedBytes),
                t.deadTuplesAfter ?? '',
                t.ok ? `ok (${((t.durationMs ?? 0) / 1000).toFixed(1)}s)` : `FAILED: ${t.error}`,
              ]),
        ]),
      ),
    )
    if (result.dryRun) {
      this.log(`\n${result.tables.length} table(s) would get VACUUM (${result.mode === 'full' ? 'FULL, ' : ''}ANALYZE)`)
      return result
    }
    this.log(
      `\nVACUUM (${result.mode === 'full' ? 'FULL, ' : ''}ANALYZE) of ${result.tables.length} table(s): ${result.deadTuplesRemoved} dead tuples removed, ${formatBytes(result.reclaimedBytes)} returned to the operating system${result.mode === 'full' ? '' : ' (plain VACUUM returns only empty pages at the end of a table; the rest is reused by new rows)'}`,
    )
    const failed = result.tables.filter((t) => !t.ok)
    if (failed.length > 0)
      throw new ChecksFailedError(`${failed.length} table(s) could not be vacuumed`, {
        hint: failed.map((t) => `${t.table}: ${t.error}`).join('\n'),
      })
    return result
  }
}
