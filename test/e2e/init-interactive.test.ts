/**
 * `charge-ops init` on a real terminal: the built CLI runs under a pseudo-terminal
 * (test/fixtures/init/pty-drive.py, python3's pty module), every prompt is answered when its
 * question appears on the screen (no sleeps), and the files written must be byte-for-byte those
 * of the equivalent --non-interactive flag run — secrets aside: each run generates its own, so
 * every secret is replaced by its name (read back with readExistingSecrets) before comparing,
 * and the two runs' secrets must differ. Modes are compared too.
 *
 * Keys: Enter "\r", arrow down "\x1b[B", Ctrl-U (clear the input line) "\x15", Ctrl-C "\x03".
 */
import {spawnSync} from 'node:child_process'
import {existsSync, mkdtempSync, readdirSync, readFileSync, statSync, writeFileSync} from 'node:fs'
import {tmpdir} from 'node:os'
import {join, relative} from 'node:path'
import {describe, expect, it} from 'vitest'

import {monitorPassword} from '../../src/install/monitoring-role.js'
import {readExistingSecrets, SECRET_NAMES} from '../../src/install/secrets.js'

const root = join(import.meta.dirname, '..', '..')
const bin = join(root, 'bin', 'run.js')
const driver = join(root, 'test', 'fixtures', 'init', 'pty-drive.py')
const ENTER = '\r'
const DOWN = '\u001b[B'
const CLEAR_LINE = '\u0015'
const CTRL_C = '\u0003'

/** The environment of both runs: a terminal, colours allowed, no CI, no repository credentials. */
function childEnv(): Record<string, string> {
  const env: Record<string, string> = {}
  for (const [k, v] of Object.entries(process.env)) {
    if (
      v === undefined ||
      k === 'CI' ||
      k === 'NO_COLOR' ||
      k === 'FORCE_COLOR' ||
      k.startsWith('CHARGE_OPS_') ||
      k.startsWith('AWS_')
    )
      continue
    env[k] = v
  }
  return {...env, TERM: 'xterm-256color'}
}

interface Step {
  expect?: string
  send?: string
}
interface DriveResult {
  exitCode: number | null
  signal: number | null
  failedStep: number | null
  reason: string | null
  transcript: string
}

/** Runs `charge-ops <args>` on a pseudo-terminal, answering each prompt as it appears. */
function drive(args: string[], steps: Step[]): DriveResult {
  const script = {
    argv: [process.execPath, bin, ...args],
    cwd: root,
    env: childEnv(),
    cols: 120,
    rows: 40,
    stepTimeout: 90,
    exitTimeout: 90,
    steps,
  }
  const r = spawnSync('python3', [driver, '-'], {
    input: JSON.stringify(script),
    encoding: 'utf8',
    timeout: 240_000,
    maxBuffer: 64 * 1024 * 1024,
  })
  if (r.status !== 0) throw new Error(`pty-drive.py failed (${r.status ?? r.signal}): ${r.stderr}`)
  const result = JSON.parse(r.stdout) as DriveResult
  const where =
    result.failedStep === null ? '' : ` at step ${result.failedStep} (${JSON.stringify(steps[result.failedStep])})`
  expect(result.reason, `${result.reason}${where}\n--- screen ---\n${result.transcript.slice(-3000)}`).toBeNull()
  return result
}

function flagRun(args: string[]) {
  const r = spawnSync(process.execPath, [bin, 'init', '--non-interactive', ...args], {
    cwd: root,
    env: {...childEnv(), CI: 'true'},
    encoding: 'utf8',
    timeout: 120_000,
  })
  expect(r.status, r.stderr).toBe(0)
  return r
}

function listFiles(dir: string): string[] {
  const out: string[] = []
  const walk = (d: string) => {
    for (const entry of readdirSync(d, {withFileTypes: true})) {
      const p = join(d, entry.name)
      if (entry.isDirectory()) walk(p)
      else out.push(relative(dir, p))
    }
  }
  walk(dir)
  return out.sort()
}

/** path → {mode, content with each secret replaced by «name»} */
function snapshotDir(dir: string): Record<string, {mode: string; content: string}> {
  const secrets = readExistingSecrets(dir)
  const out: Record<string, {mode: string; content: string}> = {}
  for (const path of listFiles(dir)) {
    let content = readFileSync(join(dir, path), 'utf8')
    for (const name of SECRET_NAMES) if (secrets[name]) content = content.replaceAll(secrets[name], `«${name}»`)
    // the monitoring role's password is derived from the superuser's, so it differs per run too
    if (secrets.postgresPassword) content = content.replaceAll(monitorPassword(secrets.postgresPassword), '«monitor»')
    // the local target writes absolute paths of its install directory (units, archive_command)
    content = content.replaceAll(dir, '«dir»')
    // compose: each run makes its own self-signed certificate for nginx
    if (path.startsWith('nginx/ssl/'))
      content = content.replace(/-----BEGIN ([A-Z ]+)-----[\s\S]+?-----END \1-----/g, '«$1»')
    out[path] = {mode: (statSync(join(dir, path)).mode & 0o777).toString(8), content}
  }
  return out
}

function expectSameDeployment(interactiveDir: string, flagsDir: string) {
  const a = snapshotDir(interactiveDir)
  const b = snapshotDir(flagsDir)
  expect(Object.keys(a)).toEqual(Object.keys(b))
  expect(Object.keys(a).length).toBeGreaterThan(5)
  for (const path of Object.keys(b)) {
    expect(a[path].mode, `${path} mode`).toBe(b[path].mode)
    expect(a[path].content, `${path} content`).toBe(b[path].content)
  }
  // the comparison masked real secrets: every one was found and each run generated its own
  const sa = readExistingSecrets(interactiveDir)
  const sb = readExistingSecrets(flagsDir)
  const written = SECRET_NAMES.filter((name) => sb[name] !== undefined)
  expect(written.length).toBeGreaterThanOrEqual(4) // the superuser's only when PostgreSQL is self-hosted
  expect(SECRET_NAMES.filter((name) => sa[name] !== undefined)).toEqual(written)
  for (const name of written) {
    expect(sa[name], `${name} in the interactive run`).toMatch(/^[0-9a-f]{32,}$/)
    expect(sa[name], name).not.toBe(sb[name])
  }
  return sa
}

const tmp = (name: string) => mkdtempSync(join(tmpdir(), `init-pty-${name}-`))

// generous: each step may wait 90 s for its prompt on a loaded 2-core machine
describe('charge-ops init on a pseudo-terminal (built binary)', {timeout: 300_000}, () => {
  it('compose: an invalid answer is re-asked with the reason; defaults by Enter; same files as the flags', () => {
    const dir = tmp('compose')
    const r = drive(
      ['init', '--dir', dir],
      [
        {expect: 'Where will the stack run?', send: ENTER}, // compose is first
        {expect: 'Public domain name', send: `https://charge.example.com${ENTER}`},
        {expect: 'must be a host name without a scheme', send: `${CLEAR_LINE}charge.example.com${ENTER}`},
        {expect: 'Environment:', send: ENTER}, // production (default)
        {expect: "Database host's RAM", send: ENTER}, // 16GB (default)
        {expect: "Database host's CPUs", send: `0${ENTER}`},
        {expect: 'enter a whole number from 1 to 256', send: `${CLEAR_LINE}8${ENTER}`},
        {expect: 'Database storage:', send: ENTER}, // ssd (default)
        {expect: 'Expected client connections:', send: ENTER}, // 200 (default)
        {expect: 'S3 backup repository', send: `charge-backups${ENTER}`},
        {expect: 'must be s3://BUCKET/PREFIX', send: `${CLEAR_LINE}s3://charge-backups/prod${ENTER}`},
        {expect: 'Put PgBouncer in front of PostgreSQL?', send: ENTER}, // no (default)
        {expect: 'Use managed PostgreSQL and Redis', send: ENTER}, // no (default)
        {expect: 'compose deployment in'},
      ],
    )
    expect(r.exitCode, r.transcript).toBe(0)
    expect(r.transcript).toMatch(/created\s+0600\s+\.env/)
    const flags = tmp('compose-flags')
    flagRun([
      '--dir',
      flags,
      '--target',
      'compose',
      '--domain',
      'charge.example.com',
      '--ram',
      '16GB',
      '--cpus',
      '8',
      '--repo',
      's3://charge-backups/prod',
    ])
    const secrets = expectSameDeployment(dir, flags)
    for (const value of Object.values(secrets)) expect(r.transcript).not.toContain(value)
  })

  it('k8s with managed services: arrow-key choices, typed values, no PgBouncer question; same files as the flags', () => {
    const dir = tmp('k8s')
    const r = drive(
      ['init', '--dir', dir],
      [
        {expect: 'Where will the stack run?', send: DOWN},
        {expect: '❯ k8s', send: ENTER},
        {expect: 'Public domain name', send: `charge.staging.example.com${ENTER}`},
        {expect: 'Environment:', send: DOWN},
        {expect: '❯ staging', send: ENTER},
        {expect: "Database host's RAM", send: `32GB${ENTER}`},
        {expect: "Database host's CPUs", send: `16${ENTER}`},
        {expect: 'Database storage:', send: DOWN},
        {expect: '❯ HDD', send: ENTER},
        {expect: 'Expected client connections:', send: `400${ENTER}`},
        {expect: 'S3 backup repository', send: `s3://charge-backups/staging${ENTER}`},
        {expect: 'Use managed PostgreSQL and Redis', send: `y${ENTER}`},
        {expect: 'Managed PostgreSQL endpoint', send: `pg.internal.example.com:5433${ENTER}`},
        {expect: 'Managed Redis endpoint', send: `redis.internal.example.com:6380${ENTER}`},
        {expect: 'k8s deployment in'},
      ],
    )
    expect(r.exitCode, r.transcript).toBe(0)
    expect(r.transcript).not.toContain('PgBouncer')
    const flags = tmp('k8s-flags')
    flagRun([
      '--dir',
      flags,
      '--target',
      'k8s',
      '--domain',
      'charge.staging.example.com',
      '--environment',
      'staging',
      '--ram',
      '32GB',
      '--cpus',
      '16',
      '--storage',
      'hdd',
      '--connections',
      '400',
      '--repo',
      's3://charge-backups/staging',
      '--managed-db-host',
      'pg.internal.example.com:5433',
      '--managed-redis-host',
      'redis.internal.example.com:6380',
    ])
    expectSameDeployment(dir, flags)
    expect(existsSync(join(dir, 'k8s', 'secret.yaml'))).toBe(true)
  })

  it('local: answers given as flags are not asked again; PgBouncer yes, SAN storage; same files as the flags', () => {
    const dir = tmp('local')
    const r = drive(
      ['init', '--dir', dir, '--target', 'local', '--ram', '8GB'],
      [
        {expect: 'Public domain name', send: `ops.example.org${ENTER}`},
        {expect: 'Environment:', send: ENTER},
        {expect: "Database host's CPUs", send: `2${ENTER}`},
        {expect: 'Database storage:', send: `${DOWN}${DOWN}`},
        {expect: '❯ SAN', send: ENTER},
        {expect: 'Expected client connections:', send: `150${ENTER}`},
        {expect: 'S3 backup repository', send: `s3://ops-backups/local${ENTER}`},
        {expect: 'Put PgBouncer in front of PostgreSQL?', send: `y${ENTER}`},
        {expect: 'Use managed PostgreSQL and Redis', send: `n${ENTER}`},
        {expect: 'local deployment in'},
      ],
    )
    expect(r.exitCode, r.transcript).toBe(0)
    expect(r.transcript).not.toContain('Where will the stack run?')
    expect(r.transcript).not.toContain("Database host's RAM")
    const flags = tmp('local-flags')
    flagRun([
      '--dir',
      flags,
      '--target',
      'local',
      '--domain',
      'ops.example.org',
      '--ram',
      '8GB',
      '--cpus',
      '2',
      '--storage',
      'san',
      '--connections',
      '150',
      '--repo',
      's3://ops-backups/local',
      '--pgbouncer',
    ])
    expectSameDeployment(dir, flags)
    expect(existsSync(join(dir, 'pgbouncer', 'userlist.txt'))).toBe(true)
  })

  it('Ctrl-C at a prompt: exit 2 "cancelled", nothing written, no bug report', () => {
    const dir = tmp('cancel')
    const r = drive(
      ['init', '--dir', dir],
      [
        {expect: 'Where will the stack run?', send: ENTER},
        {expect: 'Public domain name', send: CTRL_C},
        {expect: 'cancelled'},
      ],
    )
    expect(r.exitCode, r.transcript).toBe(2)
    expect(r.transcript).toMatch(/init cancelled at the prompt; nothing was written/)
    expect(r.transcript).not.toMatch(/bug|stack trace/i)
    expect(readdirSync(dir)).toEqual([])
  })

  it('a rerun over a local edit shows the diff (secrets masked) and asks: "no" keeps the edit, "yes" overwrites', () => {
    const dir = tmp('rerun')
    const args = [
      '--dir',
      dir,
      '--target',
      'compose',
      '--domain',
      'charge.example.com',
      '--environment',
      'production',
      '--ram',
      '16GB',
      '--cpus',
      '4',
      '--storage',
      'ssd',
      '--connections',
      '200',
      '--repo',
      's3://charge-backups/prod',
      '--no-pgbouncer',
    ]
    flagRun(args)
    const conf = join(dir, 'redis', 'redis.conf')
    const original = readFileSync(conf, 'utf8')
    const edited = original.replace('maxmemory-policy noeviction', 'maxmemory-policy allkeys-lru')
    expect(edited).not.toBe(original)
    writeFileSync(conf, edited)
    const redisPassword = readExistingSecrets(dir).redisPassword!
    const questions: Step[] = [{expect: 'Use managed PostgreSQL and Redis', send: ENTER}]

    const keep = drive(
      ['init', ...args],
      [
        ...questions,
        {expect: 'redis/redis.conf differs from what init would write', send: `n${ENTER}`},
        {expect: 'compose deployment in'},
      ],
    )
    expect(keep.exitCode, keep.transcript).toBe(0)
    expect(keep.transcript).toContain('-maxmemory-policy allkeys-lru')
    expect(keep.transcript).toContain('+maxmemory-policy noeviction')
    expect(keep.transcript).toMatch(/kept \(your version\)\s+0600\s+redis\/redis\.conf/)
    expect(keep.transcript).not.toContain(redisPassword)
    expect(readFileSync(conf, 'utf8')).toBe(edited)

    const overwrite = drive(
      ['init', ...args],
      [
        ...questions,
        {expect: 'redis/redis.conf differs from what init would write', send: `y${ENTER}`},
        {expect: 'compose deployment in'},
      ],
    )
    expect(overwrite.exitCode, overwrite.transcript).toBe(0)
    expect(overwrite.transcript).toMatch(/updated\s+0600\s+redis\/redis\.conf/)
    expect(readFileSync(conf, 'utf8')).toBe(original)
  })
})
