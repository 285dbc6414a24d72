/**
 * The bad-input corpus (test/fixtures/config/bad) through the built binary, as a user runs it:
 * documented exit code, file:line in the output, no stack trace, and never a planted secret.
 */
import {execa} from 'execa'
import {chmodSync, cpSync, mkdtempSync, truncateSync, writeFileSync, statSync} from 'node:fs'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {describe, expect, it} from 'vitest'

const root = join(import.meta.dirname, '..', '..')
const bin = join(root, 'bin', 'run.js')
const fixtures = join(root, 'test', 'fixtures', 'config')
const cli = (args: string[], cwd: string, env: Record<string, string> = {}) =>
  execa('node', [bin, 'config', 'validate', ...args], {
    reject: false,
    cwd,
    env: {CI: 'true', ENVIRONMENT: '', ...env},
    extendEnv: false,
    stdin: 'ignore',
  })

/** Values planted in the corpus that must never be printed. */
const PLANTED = ['Pl4nted-DbPass-7731', 'k3y-Pl4nted-9c1e5f7a2b4d6e8f0a1c3e5b7d9f2a4c', 'REPLACE_ME_Pl4nted']
const STACK_FRAME = /\n\s+at .+[(:]\d+/

function corpusDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'charge-ops-corpus-'))
  cpSync(join(fixtures, 'bad'), dir, {recursive: true})
  // a 20 MB file, sparse: the validator must refuse it by size without reading it
  writeFileSync(join(dir, 'huge.env'), '')
  truncateSync(join(dir, 'huge.env'), 20 * 1024 * 1024)
  return dir
}

const CORPUS: Array<{file: string; exit: number; at: string; mentions: RegExp}> = [
  {file: 'not-key-value.env', exit: 1, at: 'not-key-value.env:3', mentions: /not KEY=VALUE/},
  {file: 'port-not-numeric.env', exit: 1, at: 'port-not-numeric.env:2', mentions: /PORT is not a number/},
  {
    file: 'secret-placeholder.env',
    exit: 1,
    at: 'secret-placeholder.env:4',
    mentions: /SECRET_KEY is a template placeholder/,
  },
  {
    file: 'origins-truncated.env',
    exit: 1,
    at: 'origins-truncated.env:5',
    mentions: /ALLOWED_ORIGINS is not a JSON array/,
  },
  {
    file: 'password-in-url.env',
    exit: 1,
    at: 'password-in-url.env:3',
    mentions: /DATABASE_URL connects to a non-loopback host without requiring TLS/,
  },
  {file: 'syntax-error.charge-ops.yaml', exit: 2, at: 'syntax-error.charge-ops.yaml:4', mentions: /YAML syntax error/},
  {
    file: 'wrong-type.charge-ops.yaml',
    exit: 1,
    at: 'wrong-type.charge-ops.yaml:4',
    mentions: /service\.workers.*expected number/,
  },
  {
    file: 'unknown-key.charge-ops.yaml',
    exit: 1,
    at: 'unknown-key.charge-ops.yaml:5',
    mentions: /unknown key "backup\.retension"/,
  },
  {file: 'invalid.crontab', exit: 1, at: 'invalid.crontab:2', mentions: /invalid cron schedule/},
  {file: 'empty.env', exit: 2, at: 'empty.env:1', mentions: /is empty/},
  {file: 'binary.env', exit: 2, at: 'binary.env:1', mentions: /binary/},
  {file: 'missing.env', exit: 2, at: 'missing.env', mentions: /does not exist/},
  {file: 'huge.env', exit: 2, at: 'huge.env:1', mentions: /20\.0 MiB; config files over 1 MiB are refused/},
]

describe('config validate: the bad-input corpus', () => {
  const dir = corpusDir()

  it('the 20 MB file really is 20 MB', () => expect(statSync(join(dir, 'huge.env')).size).toBe(20 * 1024 * 1024))

  it.each(CORPUS)('$file → exit $exit, names $at', async ({file, exit, at, mentions}) => {
    const text = await cli([file], dir)
    expect(text.exitCode, text.stdout + text.stderr).toBe(exit)
    expect(text.stdout).toContain(at)
    expect(text.stdout).toMatch(mentions)
    const json = await cli([file, '--json'], dir)
    expect(json.exitCode).toBe(exit)
    const body = JSON.parse(json.stdout) as {exitCode: number; findings: Array<{file: string; line?: number}>}
    expect(body.exitCode).toBe(exit)
    expect(body.findings.map((f) => (f.line ? `${f.file}:${f.line}` : f.file))).toContain(at)
    const sarif = await cli([file, '--format', 'sarif'], dir)
    expect(sarif.exitCode).toBe(exit)
    expect(JSON.parse(sarif.stdout).version).toBe('2.1.0')
    for (const r of [text, json, sarif]) {
      const all = r.stdout + r.stderr
      expect(all).not.toMatch(STACK_FRAME)
      for (const secret of PLANTED) expect(all).not.toContain(secret)
    }
  })

  it('all of the corpus at once: every finding is reported, exit 2 wins', async () => {
    const r = await cli([...CORPUS.map((c) => c.file)], dir)
    expect(r.exitCode).toBe(2)
    for (const c of CORPUS) expect(r.stdout).toContain(c.at)
    for (const secret of PLANTED) expect(r.stdout + r.stderr).not.toContain(secret)
    expect(r.stdout).not.toMatch(STACK_FRAME)
  })

  it('files named by flags are checked as that kind even with an odd name', async () => {
    const r = await cli(['--env-file', 'port-not-numeric.env', '--crontab', 'invalid.crontab'], dir)
    expect(r.exitCode).toBe(1)
    expect(r.stdout).toContain('port-not-numeric.env:2')
    expect(r.stdout).toContain('invalid.crontab:2')
  })

  it('an unknown file kind and a bad --host-ram are usage errors (exit 2)', async () => {
    const unknown = await cli(['notes.txt'], dir)
    expect(unknown.exitCode).toBe(2)
    expect(unknown.stdout).toContain('notes.txt')
    const ram = await cli(['--host-ram', 'lots'], dir)
    expect(ram.exitCode).toBe(2)
    expect(ram.stderr).toContain('--host-ram lots is not a size')
    expect(ram.stderr).not.toMatch(STACK_FRAME)
  })
})

describe('config validate: a deployment folder', () => {
  it('the good folder passes (exit 0); loosening .env to 0644 fails under production rules (exit 1)', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'charge-ops-good-'))
    cpSync(join(fixtures, 'good'), dir, {recursive: true})
    chmodSync(join(dir, '.env'), 0o600)
    chmodSync(join(dir, 'redis.conf'), 0o600)
    const ok = await cli(['--host-ram', '16GB'], dir)
    expect(ok.exitCode, ok.stdout).toBe(0)
    expect(ok.stdout).toMatch(/0 errors, 0 warnings, 0 notes in 7 files \(strict: ENVIRONMENT=production in \.env\)/)
    chmodSync(join(dir, '.env'), 0o644)
    const loose = await cli(['--host-ram', '16GB'], dir)
    expect(loose.exitCode).toBe(1)
    expect(loose.stdout).toContain('chmod 600 .env')
  })

  it("the guide's examples: text names every cross-file problem, values stay hidden", async () => {
    const dir = mkdtempSync(join(tmpdir(), 'charge-ops-guide-'))
    cpSync(join(fixtures, 'guide'), dir, {recursive: true})
    writeFileSync(
      join(dir, 'redis.conf'),
      'requirepass Gu1de-Pl4nted-redis-pass\nappendonly yes\nprotected-mode yes\n',
      {mode: 0o600},
    )
    const r = await cli(['--host-ram', '32GB'], dir)
    expect(r.exitCode).toBe(1)
    expect(r.stdout).toContain('.env:6: error [REDIS_URL] REDIS_URL has no password but redis.conf:1 sets requirepass')
    expect(r.stdout).toContain('.env:9: error [CHROMA_PERSIST_DIRECTORY]')
    expect(r.stdout + r.stderr).not.toContain('Gu1de-Pl4nted-redis-pass')
  })
})
