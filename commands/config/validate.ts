import {Args, Flags} from '@oclif/core'

import {BaseCommand} from '../../src/cli/base-command.js'
import {UsageError} from '../../src/errors.js'
import {runValidate, type ValidateCommandResult} from '../../src/config/validate/command.js'
import {tryParseSize} from '../../src/core/units/size.js'

export default class ConfigValidate extends BaseCommand<typeof ConfigValidate> {
  static summary = 'Check every configuration file and the rules between them; report all findings at once.'
  static description = `Validates, in the current folder or the files named: charge-ops.yaml, the backend .env, the frontend .env.production, docker-compose.yml, postgresql.conf, redis.conf and a crontab. Each finding has file:line, key, severity, rule and a fix; values are never printed.

Strict rules (secret strength, no "*" origin, sslmode for remote databases, 0600 secret files, Redis requirepass / protected-mode, archive_mode=on) are errors with --strict or when ENVIRONMENT=production, warnings otherwise. Positional files are validated alone (kind inferred from the name); flags replace the file of one kind and the others are still looked for.

Exit codes: 0 clean (notes and, without --strict, warnings allowed); 1 findings (errors, or warnings under --strict); 2 a file is missing, unreadable, binary, empty, over 1 MiB or not parsable (other findings are still printed); 5 --connect could not reach a dependency.`

  static examples = [
    '<%= config.bin %> config validate',
    '<%= config.bin %> config validate --strict --host-ram 16GB',
    '<%= config.bin %> config validate .env docker-compose.yml redis.conf',
    '<%= config.bin %> config validate --format sarif > charge-ops.sarif',
    '<%= config.bin %> config validate --connect --timeout 3',
  ]

  static strict = false
  static args = {
    files: Args.string({
      description:
        'files to validate (kind from the name: *.env, .env.production, *compose*.yml, charge-ops*.yaml, postgresql*.conf, redis*.conf, crontab/*.cron)',
    }),
  }

  static flags = {
    strict: Flags.boolean({
      description:
        'production rules: strict findings become errors and warnings fail the run (implied by ENVIRONMENT=production)',
    }),
    format: Flags.option({
      options: ['text', 'json', 'sarif'] as const,
      default: 'text',
      description: 'output format (--json is the same as --format json)',
    })(),
    connect: Flags.boolean({
      description:
        'also reach PostgreSQL (SELECT 1, version ≥ 15), Redis (PING, persistence), Chroma (heartbeat) and the S3 bucket',
    }),
    timeout: Flags.integer({description: 'seconds to wait for each dependency with --connect', default: 5, min: 1}),
    'host-ram': Flags.string({
      description: "the database host's RAM for postgresql.conf sizing, e.g. 16GB (default: this machine's)",
    }),
    'frontend-env': Flags.string({description: 'path to the frontend .env.production'}),
    compose: Flags.string({description: 'path to docker-compose.yml'}),
    'postgresql-conf': Flags.string({description: 'path to postgresql.conf'}),
    'redis-conf': Flags.string({description: 'path to redis.conf'}),
    crontab: Flags.string({description: 'path to a crontab file'}),
  }

  async run(): Promise<ValidateCommandResult['report']> {
    const {argv} = await this.parse(ConfigValidate)
    const flags = this.flags
    let hostRamBytes: number | undefined
    if (flags['host-ram']) {
      hostRamBytes = tryParseSize(flags['host-ram'])
      if (!hostRamBytes)
        throw new UsageError(`--host-ram ${flags['host-ram']} is not a size`, {
          hint: 'Write it like 16GB, 8192MB or 32G.',
        })
    }
    const format = this.jsonEnabled() ? 'json' : flags.format
    const result = await runValidate({
      files: {
        'charge-ops-yaml': flags.config,
        'backend-env': flags['env-file'],
        'frontend-env': flags['frontend-env'],
        compose: flags.compose,
        'postgresql-conf': flags['postgresql-conf'],
        'redis-conf': flags['redis-conf'],
        crontab: flags.crontab,
      },
      positional: argv as string[],
      strict: flags.strict,
      hostRamBytes,
      connect: flags.connect ? {timeoutMs: flags.timeout * 1000} : undefined,
      version: this.config.version,
      onProgress: (message) => this.logger.info(message),
    })
    process.exitCode = result.report.exitCode
    if (format === 'sarif') {
      this.log(JSON.stringify(result.sarif, null, 2))
      // --json forces the json format, so this return value is never printed: the report is the contract
      return result.report
    }
    if (format === 'text') this.log(result.text)
    return result.report
  }
}
