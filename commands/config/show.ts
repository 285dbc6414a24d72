import {BaseCommand} from '../../src/cli/base-command.js'
import {describeSettings, formatSource, type ShowResult} from '../../src/config/show.js'
import {renderTable} from '../../src/output/table.js'

export default class ConfigShow extends BaseCommand<typeof ConfigShow> {
  static summary = 'Print the merged configuration, where each value came from, secrets masked.'
  static description =
    'Precedence: defaults < charge-ops.yaml < .env < environment < flags. Passwords inside URLs and secret values are always masked.'
  static examples = [
    '<%= config.bin %> config show',
    '<%= config.bin %> config show --config /etc/charge-ops/charge-ops.yaml --json',
  ]

  async run(): Promise<ShowResult> {
    const result = describeSettings(this.settings())
    this.log(
      renderTable(
        ['KEY', 'VALUE', 'SOURCE'],
        result.settings.map((s) => [s.key, s.value, formatSource(s.source)]),
      ),
    )
    return result
  }
}
