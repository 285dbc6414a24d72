/** The built binary as a user runs it: exit codes, stdout/stderr split, --json errors, no stack traces. */
import {execa} from 'execa'
import {mkdtempSync, writeFileSync} from 'node:fs'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {describe, expect, it} from 'vitest'

const bin = join(import.meta.dirname, '..', '..', 'bin', 'run.js')
const cli = (args: string[], options: {cwd?: string; env?: Record<string, string>} = {}) =>
  execa('node', [bin, ...args], {
    reject: false,
    cwd: options.cwd ?? mkdtempSync(join(tmpdir(), 'charge-ops-e2e-')),
    env: {CI: 'true', ...options.env},
    stdin: 'ignore',
  })

describe('charge-ops binary', () => {
  it('--version prints the version on stdout and exits 0', async () => {
    const r = await cli(['--version'])
    expect(r.exitCode).toBe(0)
    expect(r.stdout).toMatch(/^charge-ops\/\d+\.\d+\.\d+/)
  })

  it('backup list of a repository directory that does not exist says so (a typo in --repo is not "no backups")', async () => {
    const r = await cli(['backup', 'list', '--repo', '/nonexistent/charge-ops-repo'])
    expect(r.exitCode).toBe(0)
    expect(r.stderr).toMatch(/repository \/nonexistent\/charge-ops-repo does not exist/)
  })

  it('an unknown flag is a usage error: exit 2, message on stderr, no stack', async () => {
    const r = await cli(['config', 'show', '--no-such-flag'])
    expect(r.exitCode).toBe(2)
    expect(r.stderr).toContain('--no-such-flag')
    expect(r.stderr).not.toMatch(/\n\s+at /)
    expect(r.stdout).toBe('')
  })

  it('invalid configuration exits 2 with file:line and a hint; --json puts the error on stdout', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'charge-ops-e2e-'))
    writeFileSync(join(dir, 'charge-ops.yaml'), 'stack: demo\ntarget: mainframe\n')
    writeFileSync(join(dir, '.env'), 'DATABASE_URL=postgresql://app:Sup3rS3cret@db/charge\n')
    const text = await cli(['config', 'show'], {cwd: dir})
    expect(text.exitCode).toBe(2)
    expect(text.stderr).toContain(`${join(dir, 'charge-ops.yaml')}:2`)
    expect(text.stderr).toContain('hint:')
    expect(text.stderr).not.toMatch(/\n\s+at /)

    const json = await cli(['config', 'show', '--json'], {cwd: dir})
    expect(json.exitCode).toBe(2)
    const body = JSON.parse(json.stdout) as {error: {code: string; exitCode: number; message: string}}
    expect(body.error).toMatchObject({code: 'CONFIG_INVALID', exitCode: 2})
  })

  it('config show masks passwords from .env and the environment', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'charge-ops-e2e-'))
    writeFileSync(
      join(dir, '.env'),
      'DATABASE_URL=postgresql://app:Sup3rS3cret@db/charge\nSECRET_KEY=0123456789abcdef0123456789abcdef-key\n',
    )
    const r = await cli(['config', 'show', '--json'], {cwd: dir, env: {REDIS_URL: 'redis://:EnvRedisPw@r:6379/0'}})
    expect(r.exitCode).toBe(0)
    for (const secret of ['Sup3rS3cret', '0123456789abcdef0123456789abcdef-key', 'EnvRedisPw']) {
      expect(r.stdout).not.toContain(secret)
      expect(r.stderr).not.toContain(secret)
    }
    const body = JSON.parse(r.stdout) as {settings: Array<{key: string; value: string; source: {source: string}}>}
    expect(body.settings.find((s) => s.key === 'REDIS_URL')).toMatchObject({
      value: 'redis://:******@r:6379/0',
      source: {source: 'environment'},
    })
    expect(body.settings.find((s) => s.key === 'DATABASE_URL')?.source.source).toBe('.env')
  })
})
