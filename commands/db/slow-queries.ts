import {Flags} from '@oclif/core'

import {BaseCommand} from '../../src/cli/base-command.js'
import {requireSetting} from '../../src/config/settings.js'
import {renderTable} from '../../src/output/table.js'
import type {SlowQueriesResult} from '../../src/maintenance/slow-queries.js'

export default class DbSlowQueries extends BaseCommand<typeof DbSlowQueries> {
  static summary = 'The slowest statements from pg_stat_statements (the daily slow-query review).'
  static description = `Reads pg_stat_statements with PostgreSQL 13+ column names (mean_exec_time, total_exec_time; the guide's mean_time no longer exists). When the extension is missing, says how to enable it (shared_preload_libraries + restart + CREATE EXTENSION) and exits 2.

--reset clears the statistics after printing them, so the next review covers one day.`
  static examples = [
    '<%= config.bin %> db slow-queries',
    '<%= config.bin %> db slow-queries --order total --limit 20',
    '<%= config.bin %> db slow-queries --reset --json > slow-$(date +%F).json',
  ]
  static flags = {
    limit: Flags.integer({char: 'n', description: 'how many statements', default: 10, min: 1, max: 1000}),
    order: Flags.string({
      description: 'rank by mean time, total time or calls',
      options: ['mean', 'total', 'calls'],
      default: 'mean',
    }),
    reset: Flags.boolean({description: 'reset pg_stat_statements after reading'}),
    'all-databases': Flags.boolean({description: 'include statements of every database on the server'}),
  }

  async run(): Promise<SlowQueriesResult> {
    const {slowQueries} = await import('../../src/maintenance/slow-queries.js')
    const settings = this.settings()
    const databaseUrl = requireSetting(
      settings.databaseUrl,
      'DATABASE_URL',
      'Set DATABASE_URL in the backend .env or the environment.',
    )
    const result = await slowQueries({
      databaseUrl,
      limit: this.flags.limit,
      order: this.flags.order as 'mean' | 'total' | 'calls',
      reset: this.flags.reset,
      allDatabases: this.flags['all-databases'],
    })
    const oneLine = (q: string) => {
      const s = q.replace(/\s+/g, ' ').trim()
      return s.length > 100 ? `${s.slice(0, 97)}...` : s
    }
    if (result.queries.length === 0) this.log('no statements recorded yet')
    else
      this.log(
        renderTable(
          ['MEAN ms', 'TOTAL ms', 'CALLS', 'ROWS', 'HIT %', 'QUERY'],
          result.queries.map((q) => [
            q.meanMs.toFixed(2),
            q.totalMs.toFixed(1),
            q.calls,
            q.rows,
            q.cacheHitPct ?? '',
            oneLine(q.query),
          ]),
        ),
      )
    this.log(
      `\nordered by ${result.order === 'mean' ? 'mean_exec_time' : result.order === 'total' ? 'total_exec_time' : 'calls'} in ${result.database}${result.statsSince ? `; statistics since ${result.statsSince}` : ''}${result.reset ? '; statistics reset' : ''}`,
    )
    return result
  }
}
