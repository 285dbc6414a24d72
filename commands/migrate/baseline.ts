import {Flags} from '@oclif/core'

import {BaseCommand} from '../../src/cli/base-command.js'
import {connectionFlags, migrateContext} from '../../src/migrate/cli.js'
import {baselineMigrations, type BaselineResult} from '../../src/migrate/index.js'

export default class MigrateBaseline extends BaseCommand<typeof MigrateBaseline> {
  static summary = 'Mark an existing schema as migrated up to a version, without running anything.'
  static description =
    'For a database whose schema was created before charge-ops managed it (e.g. by the guide\'s Alembic setup): records every migration up to --version as applied (kind "baseline") so that `migrate up` runs only the later ones. Only allowed while the history is empty.'
  static examples = ['<%= config.bin %> migrate baseline --version 0003 --yes']
  static flags = {
    ...connectionFlags,
    version: Flags.string({description: 'the version the existing schema corresponds to', required: true}),
    'dry-run': Flags.boolean({description: 'show what would be marked; change nothing'}),
  }

  async run(): Promise<BaselineResult> {
    const ctx = migrateContext(this.flags, () => this.settings())
    if (!ctx.dryRun)
      await this.confirm(
        `Mark the schema as already at ${this.flags.version} (migrations up to it will never run here)?`,
      )
    const result = await baselineMigrations({...ctx, version: this.flags.version, logger: this.logger})
    this.log(
      `${ctx.dryRun ? 'would mark' : 'marked'} ${result.marked.length} migration${result.marked.length === 1 ? '' : 's'} as applied (baseline ${result.version}): ${result.marked.map((m) => m.version).join(', ')}`,
    )
    return result
  }
}
