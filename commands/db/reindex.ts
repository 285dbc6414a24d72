import {Flags} from '@oclif/core'

import {BaseCommand} from '../../src/cli/base-command.js'
import {requireSetting} from '../../src/config/settings.js'
import {ChecksFailedError, UsageError} from '../../src/errors.js'
import {renderTable} from '../../src/output/table.js'
import type {ReindexResult} from '../../src/maintenance/reindex.js'

export default class DbReindex extends BaseCommand<typeof DbReindex> {
  static summary = 'Rebuild bloated or invalid indexes with REINDEX CONCURRENTLY; drop _ccnew leftovers.'
  static description = `Finds, in one catalog query, invalid indexes (a failed or cancelled CREATE INDEX CONCURRENTLY), the invalid _ccnew / _ccold leftovers of an interrupted REINDEX CONCURRENTLY, and B-tree indexes whose estimated bloat passes --bloat-pct. Leftovers are dropped (DROP INDEX CONCURRENTLY), the others rebuilt with REINDEX INDEX CONCURRENTLY (PostgreSQL ≥ 12): writers are never blocked. A failed rebuild's own leftover is removed so a rerun starts clean.

--blocking uses plain REINDEX (blocks writes to the table; needs --yes).`
  static examples = [
    '<%= config.bin %> db reindex --dry-run',
    '<%= config.bin %> db reindex',
    '<%= config.bin %> db reindex --index public.idx_samples_session',
    '<%= config.bin %> db reindex --table charging_samples --bloat-pct 30',
  ]
  static flags = {
    table: Flags.string({char: 't', description: 'only indexes of this table', exclusive: ['index']}),
    index: Flags.string({
      char: 'i',
      description: 'only this index (rebuilt even when not bloated)',
      exclusive: ['table'],
    }),
    'dry-run': Flags.boolean({description: 'list what would be dropped or rebuilt, and why'}),
    blocking: Flags.boolean({description: 'plain REINDEX (blocks writers; needs --yes)'}),
    'bloat-pct': Flags.integer({
      description: 'estimated bloat % that selects an index (indexes over 8 MB)',
      default: 50,
    }),
    'lock-timeout': Flags.string({description: 'give up when a lock is not granted within this time', default: '60s'}),
  }

  async run(): Promise<ReindexResult> {
    const {reindex} = await import('../../src/maintenance/reindex.js')
    const {formatBytes} = await import('../../src/core/units/size.js')
    const settings = this.settings()
    const databaseUrl = requireSetting(
      settings.databaseUrl,
      'DATABASE_URL',
      'Set DATABASE_URL in the backend .env or the environment.',
    )
    if (this.flags.blocking && !this.flags['dry-run'] && !this.flags.yes) {
      throw new UsageError('--blocking REINDEX blocks writes to the table until it finishes; it only runs with --yes', {
        code: 'CONFIRMATION_REQUIRED',
        hint: 'Drop --blocking (REINDEX CONCURRENTLY does not block writers), or add --yes in a maintenance window.',
      })
    }
    const result = await reindex({
      databaseUrl,
      table: this.flags.table,
      index: this.flags.index,
      dryRun: this.flags['dry-run'],
      blocking: this.flags.blocking,
      bloatPct: this.flags['bloat-pct'],
      lockTimeout: this.flags['lock-timeout'],
      onProgress: (index, text) => this.logger.info(`  ${index}: ${text}`),
    })
    if (result.items.length === 0) {
      this.log('no invalid, leftover or bloated indexes')
      return result
    }
    this.log(
      renderTable(
        ['INDEX', 'TABLE', 'ACTION', 'REASON', 'SIZE', ...(result.dryRun ? [] : ['AFTER', 'RESULT'])],
        result.items.map((i) => [
          i.index,
          i.table,
          i.action === 'drop-leftover' ? 'drop' : result.concurrently ? 'reindex concurrently' : 'reindex',
          i.reason,
          formatBytes(i.bytes),
          ...(result.dryRun
            ? []
            : [
                i.bytesAfter === undefined ? '' : formatBytes(i.bytesAfter),
                i.skipped
                  ? `skipped: ${i.skipped}`
                  : i.ok
                    ? `ok (${((i.durationMs ?? 0) / 1000).toFixed(1)}s)`
                    : `FAILED: ${i.error}`,
              ]),
        ]),
      ),
    )
    if (!result.dryRun)
      this.log(
        `\n${result.items.filter((i) => i.ok).length} of ${result.items.length} done, ${formatBytes(result.reclaimedBytes)} reclaimed`,
      )
    const failed = result.items.filter((i) => i.ok === false)
    if (failed.length > 0)
      throw new ChecksFailedError(`${failed.length} index(es) could not be rebuilt or dropped`, {
        hint: failed.map((i) => `${i.index}: ${i.error}`).join('\n'),
      })
    return result
  }
}
