/**
 * oclif's help with the exit-code registry of src/errors.ts (package.json `oclif.helpClass`): the
 * root `--help` ends with the exit codes, and `charge-ops --help exit-codes` lists every error
 * code with its exit code and meaning — the same table docs/exit-codes.md is rendered from, so the
 * three never disagree. oclif loads this class only to show help: no command's start-up pays for it.
 */
import {Help} from '@oclif/core'

import {ERROR_CODES, EXIT_CODE_DOCS, exitCodesOf, type ErrorCode} from '../errors.js'

/** The help subject that shows the whole registry (`--help exit-codes`, `exit-codes --help`). */
export const EXIT_CODES_SUBJECT = 'exit-codes'

export default class ChargeOpsHelp extends Help {
  async showHelp(argv: string[]): Promise<void> {
    if (argv.includes(EXIT_CODES_SUBJECT)) {
      this.log(this.formatExitCodes())
      return
    }
    await super.showHelp(argv)
  }

  /** oclif's root help (topics, commands), then the exit codes. */
  protected async showRootHelp(): Promise<void> {
    await super.showRootHelp()
    this.log(this.section('EXIT CODES', this.exitCodeRows()))
    this.log('')
    this.log('Every failure prints "error [CODE]: message" and a hint on stderr (error.code with --json).')
    this.log(`Every code and its exit code: ${this.config.bin} --help ${EXIT_CODES_SUBJECT} (also docs/exit-codes.md)`)
  }

  /** Both tables of docs/exit-codes.md, as help sections. */
  formatExitCodes(): string {
    const codes = (Object.keys(ERROR_CODES) as ErrorCode[]).sort()
    return [
      this.section('EXIT CODES', this.exitCodeRows()),
      this.section(
        'ERROR CODES',
        codes.map((code) => [code, `exit ${exitCodesOf(code).join(', ')}: ${ERROR_CODES[code].meaning}`]),
      ),
      'Also in docs/exit-codes.md. Exit 70 means a bug in charge-ops: rerun with --verbose and report the output.',
    ].join('\n\n')
  }

  private exitCodeRows(): [string, string][] {
    return Object.entries(EXIT_CODE_DOCS).map(([exit, meaning]) => [exit, meaning])
  }
}
