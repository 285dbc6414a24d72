import {Flags} from '@oclif/core'

import {BaseCommand} from '../../src/cli/base-command.js'
import {PendingMigrationsError} from '../../src/errors.js'
import {connectionFlags, migrateContext} from '../../src/migrate/cli.js'
import {migrationStatus, type StatusResult} from '../../src/migrate/index.js'
import {renderStatus} from '../../src/migrate/render.js'

export default class MigrateStatus extends BaseCommand<typeof MigrateStatus> {
  static summary = 'Show every migration: applied, pending, changed, missing or failed.'
  static description =
    'Read-only: takes no lock and creates nothing. With --exit-code it exits 3 when migrations are pending or the database has drifted (an applied migration edited, missing or failed), for deploy gates and CI.'
  static examples = ['<%= config.bin %> migrate status', '<%= config.bin %> migrate status --exit-code --json']
  static flags = {
    ...connectionFlags,
    'exit-code': Flags.boolean({description: 'exit 3 when migrations are pending or drift is found'}),
  }

  async run(): Promise<StatusResult> {
    const ctx = migrateContext(this.flags, () => this.settings())
    const status = await migrationStatus({...ctx, logger: this.logger})
    if (this.flags['exit-code'] && (status.pending > 0 || status.drift > 0)) {
      if (!this.jsonEnabled()) this.log(renderStatus(status))
      const what = [
        status.pending > 0 ? `${status.pending} pending migration${status.pending === 1 ? '' : 's'}` : '',
        status.drift > 0 ? `${status.drift} drifted` : '',
      ]
        .filter(Boolean)
        .join(' and ')
      throw new PendingMigrationsError(`${what} (database at ${status.current ?? 'none'})`, {
        hint:
          status.drift > 0
            ? 'Run `charge-ops migrate validate` for the fixes.'
            : 'Apply them with `charge-ops migrate up`.',
        data: {
          current: status.current,
          pending: status.pending,
          drift: status.drift,
          migrations: status.migrations,
          problems: status.problems,
        },
      })
    }
    this.log(renderStatus(status))
    return status
  }
}
