/**
 * The base every charge-ops command extends: the global flags, the error → exit code mapping,
 * redaction of everything printed, and the run context (settings, logger, progress, prompts).
 *
 * This folder is the only part of src/ that knows about oclif; the domains below it take plain
 * arguments and return typed results.
 */
import {Command, Flags, type Interfaces} from '@oclif/core'

import type {BackupContext} from '../backup/context.js'
import type {Settings} from '../config/settings.js'
import {CliError, describeError, ExitCode, UsageError} from '../errors.js'
import {createLogger, type Logger} from '../output/logger.js'
import {createProgress, type Progress} from '../output/progress.js'
import {redact, redactValue} from '../output/redact.js'

export type BaseFlags<T extends typeof Command> = Interfaces.InferredFlags<
  (typeof BaseCommand)['baseFlags'] & T['flags']
>
export type BaseArgs<T extends typeof Command> = Interfaces.InferredArgs<T['args']>

const truthy = (value: string | undefined) =>
  value !== undefined && value !== '' && value !== '0' && value.toLowerCase() !== 'false'

type SettingsModule = typeof import('../config/settings.js')

export abstract class BaseCommand<T extends typeof Command> extends Command {
  static enableJsonFlag = true

  /**
   * Whether the configuration stack (zod schemas, yaml, .env parsing) is loaded before run().
   * Commands on PostgreSQL's hot path (`wal push` / `wal fetch`, forked once per 16 MB segment)
   * set it to false and call `await this.loadSettings()` only when their flags don't say enough.
   */
  static preloadConfig = true

  static baseFlags = {
    config: Flags.string({
      description: 'path to charge-ops.yaml (default: ./charge-ops.yaml when present)',
      env: 'CHARGE_OPS_CONFIG',
      helpGroup: 'GLOBAL',
    }),
    'env-file': Flags.string({
      description: "path to the backend .env (default: charge-ops.yaml's paths.envFile, else ./.env)",
      env: 'CHARGE_OPS_ENV_FILE',
      helpGroup: 'GLOBAL',
    }),
    quiet: Flags.boolean({
      char: 'q',
      description: 'only warnings and errors on stderr (for cron)',
      env: 'CHARGE_OPS_QUIET',
      helpGroup: 'GLOBAL',
    }),
    verbose: Flags.boolean({
      description: 'debug output and stack traces',
      env: 'CHARGE_OPS_VERBOSE',
      helpGroup: 'GLOBAL',
    }),
    yes: Flags.boolean({
      char: 'y',
      description: 'assume yes for confirmations (required for destructive work when not interactive)',
      env: 'CHARGE_OPS_YES',
      helpGroup: 'GLOBAL',
    }),
  }

  protected flags!: BaseFlags<T>
  protected args!: BaseArgs<T>
  private cachedSettings?: Settings
  private cachedLogger?: Logger
  private settingsModule?: SettingsModule

  public override async init(): Promise<void> {
    await super.init()
    const {args, flags} = await this.parse({
      flags: this.ctor.flags,
      baseFlags: (super.ctor as typeof BaseCommand).baseFlags,
      enableJsonFlag: this.ctor.enableJsonFlag,
      args: this.ctor.args,
      strict: this.ctor.strict,
    })
    this.flags = flags as BaseFlags<T>
    this.args = args as BaseArgs<T>
    // Every command with a repository (src/cli/flags.ts repositoryLocationFlags) takes S3 credentials
    // from a 0600 file: loaded here, once, before run() opens the repository — so a cron line or a
    // systemd unit never needs the keys in its environment or argv
    const awsEnvFile = (flags as {'aws-env-file'?: string})['aws-env-file']
    if (awsEnvFile) await (await import('../wal/context.js')).loadAwsEnvFile(awsEnvFile)
    if ((this.ctor as unknown as typeof BaseCommand).preloadConfig)
      this.settingsModule = await import('../config/settings.js')
  }

  public override jsonEnabled(): boolean {
    return super.jsonEnabled() || (this.ctor.enableJsonFlag === true && truthy(process.env.CHARGE_OPS_JSON))
  }

  /** No prompts, spinners or colours when not on a TTY, with --json, in CI or with NO_COLOR. */
  protected get interactive(): boolean {
    return (
      Boolean(process.stdin.isTTY && process.stderr.isTTY) &&
      !this.jsonEnabled() &&
      !truthy(process.env.CI) &&
      process.env.NO_COLOR === undefined
    )
  }

  protected get logger(): Logger {
    this.cachedLogger ??= createLogger({
      quiet: Boolean(this.flags?.quiet) || this.jsonEnabled(),
      verbose: Boolean(this.flags?.verbose),
      color: this.interactive,
    })
    return this.cachedLogger
  }

  /** The merged configuration (read on first use: commands that need none never read files). */
  protected settings(overrides: {repository?: string; stack?: string} = {}): Settings {
    if (!this.settingsModule) throw new Error(`${this.id}: preloadConfig is false; use await this.loadSettings()`)
    if (!this.cachedSettings || overrides.repository || overrides.stack) {
      this.cachedSettings = this.settingsModule.loadSettings({
        configPath: this.flags.config,
        envFile: this.flags['env-file'],
        repository: overrides.repository,
        stack: overrides.stack,
      })
    }
    return this.cachedSettings
  }

  /** The merged configuration, importing the configuration stack on first use (for preloadConfig = false). */
  protected async loadSettings(overrides: {repository?: string; stack?: string} = {}): Promise<Settings> {
    this.settingsModule ??= await import('../config/settings.js')
    return this.settings(overrides)
  }

  /** The backup domain's context for the configured repository (or --repo). */
  protected async backupContext(
    options: {repo?: string; stack?: string; encrypt?: string; metricsFile?: string; pingUrl?: string} = {},
  ): Promise<BackupContext> {
    const {openBackupContext} = await import('../backup/context.js')
    return openBackupContext({
      settings: this.settings({repository: options.repo, stack: options.stack}),
      logger: this.logger,
      progress: (label, total) => this.progress(label, total),
      encryptKeyFile: options.encrypt,
      metricsFile: options.metricsFile,
      pingUrl: options.pingUrl,
    })
  }

  protected progress(label: string, totalBytes?: number): Progress {
    return createProgress({
      label,
      totalBytes,
      logger: this.logger,
      tty: this.interactive,
      enabled: !this.flags.quiet && !this.jsonEnabled(),
    })
  }

  /**
   * Asks before destructive work. With --yes it proceeds; without a TTY (cron, CI, --json) it
   * refuses with exit 2 rather than hang on a prompt nobody can answer.
   */
  protected async confirm(question: string): Promise<void> {
    if (this.flags.yes) return
    if (!this.interactive) {
      throw new UsageError(`${question} — refusing without confirmation`, {
        code: 'CONFIRMATION_REQUIRED',
        hint: 'Rerun with --yes to confirm.',
      })
    }
    const {confirm} = await import('@inquirer/prompts')
    const ok = await confirm({message: question, default: false}, {output: process.stderr})
    if (!ok) throw new UsageError('cancelled', {code: 'CANCELLED'})
  }

  /** stdout, redacted; suppressed under --json (the returned result is printed instead). */
  public override log(message = '', ...args: unknown[]): void {
    super.log(redact(message), ...args)
  }

  protected override toSuccessJson(result: unknown): unknown {
    return redactValue(result)
  }

  protected override async catch(error: Error & {exitCode?: number}): Promise<void> {
    const described = describeError(error)
    // oclif's --help / --version arrive as exit "errors" with code 0.
    if ((error as {oclif?: {exit?: number}}).oclif?.exit === 0) return
    process.exitCode = described.exitCode
    if (this.jsonEnabled()) {
      const body = {
        error: {
          code: described.code,
          exitCode: described.exitCode,
          message: described.message,
          hint: described.hint,
          ...(described.data ? {data: described.data} : {}),
        },
      }
      process.stdout.write(JSON.stringify(redactValue(body), null, 2) + '\n')
    } else {
      const log = createLogger({color: Boolean(process.stderr.isTTY) && process.env.NO_COLOR === undefined})
      log.error(described.message)
      if (described.hint) log.write(`  hint: ${described.hint}\n`)
    }
    const verbose = this.flags?.verbose ?? process.argv.includes('--verbose')
    if (verbose && error?.stack) process.stderr.write(redact(error.stack) + '\n')
    if (described.exitCode === ExitCode.bug && !verbose)
      process.stderr.write('  (rerun with --verbose for the stack trace)\n')
  }
}

export {CliError}
