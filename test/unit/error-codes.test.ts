import {execFileSync} from 'node:child_process'
import {readdirSync, readFileSync} from 'node:fs'
import {join} from 'node:path'
import {describe, expect, it} from 'vitest'
import {
  ERROR_CODES,
  EXIT_CODE_DOCS,
  ExitCode,
  exitCodesOf,
  renderExitCodeDocs,
  type ErrorCode,
} from '../../src/errors.js'

/**
 * The registry in src/errors.ts is the one place an error code and its exit code are declared.
 * TypeScript already refuses an unregistered code passed to CliError; this test also catches the
 * codes TypeScript cannot see (a `code:` on a plain object, a result's check code) and an exit
 * code that disagrees with the registry at the throw site.
 */

const root = join(import.meta.dirname, '..', '..')

function sources(): Array<{file: string; text: string}> {
  const out: Array<{file: string; text: string}> = []
  const walk = (dir: string) => {
    for (const entry of readdirSync(join(root, dir), {withFileTypes: true})) {
      const rel = join(dir, entry.name)
      if (entry.isDirectory()) walk(rel)
      else if (entry.name.endsWith('.ts')) out.push({file: rel, text: readFileSync(join(root, rel), 'utf8')})
    }
  }
  walk('src')
  walk('commands')
  return out
}

const CLASS_EXIT: Record<string, number> = {
  UsageError: ExitCode.usage,
  ConfigError: ExitCode.usage,
  ChecksFailedError: ExitCode.findings,
  UnreachableError: ExitCode.unreachable,
  RepositoryUnreadableError: ExitCode.usage,
}
// Node's errno codes set on plain Errors so that the shared classifiers recognise them
const ERRNO = /^E[A-Z]+$/

describe('error-code registry', () => {
  const files = sources()

  it('registers every code the sources emit', () => {
    const unregistered: string[] = []
    for (const {file, text} of files) {
      for (const m of text.matchAll(
        /\bcode: '([A-Z][A-Z0-9_]+)'|new CliError\(\s*'([A-Z][A-Z0-9_]+)'|make\('([A-Z][A-Z0-9_]+)'/g,
      )) {
        const code = m[1] ?? m[2] ?? m[3]
        if (ERRNO.test(code)) continue
        if (!(code in ERROR_CODES)) unregistered.push(`${file}: ${code}`)
      }
    }
    expect(unregistered).toEqual([])
  })

  it('throws each code with an exit code the registry declares for it', () => {
    const wrong: string[] = []
    for (const {file, text} of files) {
      for (const m of text.matchAll(/new CliError\(\s*'([A-Z0-9_]+)',\s*ExitCode\.(\w+)/g)) {
        const exit = ExitCode[m[2] as keyof typeof ExitCode]
        if (!exitCodesOf(m[1] as ErrorCode).includes(exit)) wrong.push(`${file}: ${m[1]} thrown with ${exit}`)
      }
      // `new UsageError(…, {code: 'X'})`: the nearest class constructed before the code fixes its exit
      for (const m of text.matchAll(/\bcode: '([A-Z][A-Z0-9_]+)'/g)) {
        const before = text.slice(Math.max(0, m.index - 800), m.index)
        const last = [...before.matchAll(/new (\w+)\(/g)].at(-1)
        // a statement starting in between: the code belongs to something else (an options object)
        if (!last || /\n\s*(const|let|if|return|throw|await|for)\b/.test(before.slice(last.index))) continue
        const cls = last[1]
        const exit = CLASS_EXIT[cls]
        if (exit === undefined || ERRNO.test(m[1])) continue
        if (!exitCodesOf(m[1] as ErrorCode).includes(exit as never))
          wrong.push(`${file}: ${m[1]} thrown as ${cls} (exit ${exit})`)
      }
    }
    expect(wrong).toEqual([])
  })

  it('keeps exit 70 for bugs alone', () => {
    const bug = (Object.keys(ERROR_CODES) as ErrorCode[]).filter((c) => exitCodesOf(c).includes(ExitCode.bug))
    expect(bug).toEqual(['INTERNAL'])
    for (const {file, text} of files)
      expect(`${file}: ${/ExitCode\.bug\b/.test(text) && !/src\/(errors|cli\/base-command)\.ts$/.test(file)}`).toBe(
        `${file}: false`,
      )
  })

  it('has docs/exit-codes.md rendered from the registry (npm run build rewrites it)', () => {
    expect(readFileSync(join(root, 'docs', 'exit-codes.md'), 'utf8')).toBe(renderExitCodeDocs())
  })
})

describe('the registry in --help (src/cli/help.ts, the built CLI)', () => {
  const help = (...args: string[]) =>
    execFileSync(process.execPath, [join(root, 'bin', 'run.js'), ...args], {
      encoding: 'utf8',
      env: {...process.env, NO_COLOR: '1'},
    })
  const squeeze = (text: string) => text.replace(/\s+/g, ' ')

  it('the root --help ends with every exit code and its meaning', () => {
    const out = help('--help')
    const section = squeeze(out.slice(out.indexOf('EXIT CODES')))
    expect(out.indexOf('EXIT CODES')).toBeGreaterThan(out.indexOf('COMMANDS'))
    for (const [exit, meaning] of Object.entries(EXIT_CODE_DOCS))
      expect(section).toContain(`${exit} ${squeeze(meaning)}`)
    expect(out).toContain('charge-ops --help exit-codes')
  })

  it('--help exit-codes lists every registered error code with its exit codes', () => {
    const out = squeeze(help('--help', 'exit-codes'))
    for (const code of Object.keys(ERROR_CODES) as ErrorCode[])
      expect(out).toContain(`${code} exit ${exitCodesOf(code).join(', ')}: ${squeeze(ERROR_CODES[code].meaning)}`)
    expect(squeeze(help('exit-codes', '--help'))).toBe(out)
  })
})
