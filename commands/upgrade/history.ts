import {Flags} from '@oclif/core'

import {BaseCommand} from '../../src/cli/base-command.js'
import type {UpgradeJournal} from '../../src/upgrade/journal.js'

export default class UpgradeHistory extends BaseCommand<typeof UpgradeHistory> {
  static summary = 'Past upgrades: versions, schema heads, durations, outcome and the failing step.'
  static description =
    'Read from <stateDir>/upgrade (the journal files) merged with the charge_ops_upgrades table of the database. --json prints every journal in full.'
  static examples = ['<%= config.bin %> upgrade history', '<%= config.bin %> upgrade history --limit 5 --json']
  static flags = {
    limit: Flags.integer({description: 'show at most this many (newest first)', default: 20, min: 1}),
  }

  async run(): Promise<{upgrades: UpgradeJournal[]}> {
    const {listUpgrades} = await import('../../src/upgrade/journal.js')
    const {renderHistory} = await import('../../src/upgrade/render.js')
    const {upgrades} = await listUpgrades(this.settings(), this.logger)
    const shown = upgrades.slice(0, this.flags.limit)
    this.log(renderHistory(shown))
    return {upgrades: shown}
  }
}
