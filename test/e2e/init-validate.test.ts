/**
 * The built CLI: init for every target from the fixed answers passes `config validate --strict`;
 * bad answers exit 2 with nothing written; a rerun over a local edit is refused and shows a diff.
 */
import {execFileSync, spawnSync} from 'node:child_process'
import {existsSync, mkdtempSync, readdirSync, readFileSync, statSync, writeFileSync} from 'node:fs'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {describe, expect, it} from 'vitest'

import {runCli, runToKillPoint} from '../support/cli.js'

const root = join(import.meta.dirname, '..', '..')
const bin = join(root, 'bin', 'run.js')
const fixtures = join(root, 'test', 'fixtures', 'init')
const env = {...process.env, CI: 'true', NO_COLOR: '1', AWS_ACCESS_KEY_ID: '', AWS_SECRET_ACCESS_KEY: ''}
const cliEnv = {CI: 'true', NO_COLOR: '1', AWS_ACCESS_KEY_ID: '', AWS_SECRET_ACCESS_KEY: ''}
/** every file under `dir` (relative, sorted) */
const filesIn = (dir: string) =>
  (readdirSync(dir, {recursive: true}) as string[]).filter((f) => statSync(join(dir, f)).isFile()).sort()
const cli = (args: string[], cwd = root) =>
  spawnSync(process.execPath, [bin, ...args], {cwd, env, encoding: 'utf8', timeout: 60_000})
const ram: Record<string, string> = {compose: '16GB', k8s: '32GB', 'k8s-managed': '16GB', local: '8GB'}

describe('charge-ops init (built binary)', () => {
  for (const target of ['compose', 'k8s', 'k8s-managed', 'local']) {
    it(`${target}: everything written passes config validate --strict`, () => {
      const dir = mkdtempSync(join(tmpdir(), `init-e2e-${target}-`))
      const init = cli([
        'init',
        '--answers',
        join(fixtures, `answers-${target}.yaml`),
        '--dir',
        dir,
        '--non-interactive',
      ])
      expect(init.status, init.stderr).toBe(0)
      expect(init.stdout).toMatch(/created\s+0600\s+\.env/)
      const validate = cli(['config', 'validate', '--strict', '--host-ram', ram[target], '--json'], dir)
      const report = JSON.parse(validate.stdout)
      expect(report.findings?.filter((f: {severity: string}) => f.severity !== 'info') ?? [], validate.stdout).toEqual(
        [],
      )
      expect(validate.status, validate.stdout).toBe(0)
      // a second run changes nothing
      const again = cli([
        'init',
        '--answers',
        join(fixtures, `answers-${target}.yaml`),
        '--dir',
        dir,
        '--non-interactive',
        '--json',
      ])
      expect(again.status, again.stderr).toBe(0)
      expect(JSON.parse(again.stdout).files.every((f: {action: string}) => f.action === 'unchanged')).toBe(true)
    })
  }

  it('bad answers: clear errors, exit 2, nothing written', () => {
    const dir = mkdtempSync(join(tmpdir(), 'init-e2e-bad-'))
    const r = cli([
      'init',
      '--non-interactive',
      '--target',
      'compose',
      '--domain',
      'not a domain',
      '--ram',
      '0',
      '--cpus',
      '4',
      '--repo',
      's3://bucket/x',
      '--dir',
      dir,
    ])
    expect(r.status).toBe(2)
    expect(r.stderr).toMatch(/--domain: is not a valid DNS name/)
    expect(r.stderr).toMatch(/--ram: must be greater than 0/)
    expect(r.stderr).toMatch(/nothing was written/i)
    expect(readdirSync(dir)).toEqual([])
  })

  it('compose from the domain alone: RAM and CPUs detected, a local repository, a self-signed certificate; a missing answer is named as its flag', () => {
    const dir = mkdtempSync(join(tmpdir(), 'init-e2e-defaults-'))
    const missing = cli(['init', '--non-interactive', '--target', 'compose', '--dir', dir, '--yes'])
    expect(missing.status).toBe(2)
    expect(missing.stderr).toMatch(/--domain is required/)
    expect(missing.stderr).not.toMatch(/Invalid input|expected object/)
    expect(readdirSync(dir)).toEqual([])
    const r = cli([
      'init',
      '--non-interactive',
      '--target',
      'compose',
      '--domain',
      'charge.example.com',
      '--dir',
      dir,
      '--yes',
      '--json',
    ])
    expect(r.status, r.stderr).toBe(0)
    expect(readFileSync(join(dir, 'charge-ops.yaml'), 'utf8')).toContain(`repository: ${join(dir, 'backups')}`)
    expect(readFileSync(join(dir, 'postgres', 'postgresql.conf'), 'utf8')).toMatch(/^shared_buffers = \d+/m)
    expect(readFileSync(join(dir, 'nginx', 'ssl', 'fullchain.pem'), 'utf8')).toMatch(/^-----BEGIN CERTIFICATE-----/)
    expect(statSync(join(dir, 'nginx', 'ssl', 'privkey.pem')).mode & 0o777).toBe(0o600)
    for (const folder of ['data/uploads', 'data/chroma', '.charge-ops', 'backups/charge-analysis/wal'])
      expect(statSync(join(dir, folder)).isDirectory(), folder).toBe(true)
    // a rerun keeps the certificate (and every secret): nothing changes
    const again = cli([
      'init',
      '--non-interactive',
      '--target',
      'compose',
      '--domain',
      'charge.example.com',
      '--dir',
      dir,
      '--json',
    ])
    expect(again.status, again.stderr).toBe(0)
    expect(JSON.parse(again.stdout).files.every((f: {action: string}) => f.action === 'unchanged')).toBe(true)
  })

  it('--connect with an unreachable S3 endpoint: exit 5, nothing written', () => {
    const dir = mkdtempSync(join(tmpdir(), 'init-e2e-connect-'))
    const r = cli([
      'init',
      '--answers',
      join(fixtures, 'answers-compose.yaml'),
      '--s3-endpoint',
      'http://127.0.0.1:9',
      '--dir',
      dir,
      '--connect',
      '--non-interactive',
    ])
    expect(r.status, r.stderr).toBe(5)
    expect(r.stderr).toMatch(/S3/)
    expect(readdirSync(dir)).toEqual([])
  })

  it('a local edit: diff shown, refused (exit 2) without --force, file untouched; --force overwrites', () => {
    const dir = mkdtempSync(join(tmpdir(), 'init-e2e-edit-'))
    expect(
      cli(['init', '--answers', join(fixtures, 'answers-compose.yaml'), '--dir', dir, '--non-interactive']).status,
    ).toBe(0)
    const conf = join(dir, 'redis', 'redis.conf')
    const edited = readFileSync(conf, 'utf8').replace('maxmemory-policy noeviction', 'maxmemory-policy allkeys-lru')
    writeFileSync(conf, edited)
    const r = cli(['init', '--answers', join(fixtures, 'answers-compose.yaml'), '--dir', dir, '--non-interactive'])
    expect(r.status).toBe(2)
    expect(r.stderr).toContain('-maxmemory-policy allkeys-lru')
    expect(r.stderr).toContain('+maxmemory-policy noeviction')
    expect(r.stderr).not.toMatch(/requirepass [0-9a-f]{16,}/)
    expect(readFileSync(conf, 'utf8')).toBe(edited)
    const forced = cli([
      'init',
      '--answers',
      join(fixtures, 'answers-compose.yaml'),
      '--dir',
      dir,
      '--non-interactive',
      '--force',
    ])
    expect(forced.status, forced.stderr).toBe(0)
    expect(readFileSync(conf, 'utf8')).toContain('maxmemory-policy noeviction')
    expect(existsSync(join(dir, 'docker-compose.yml'))).toBe(true)
  })

  it('local, killed between two files (kill point files.written.charge-ops.yaml): no temp file, nothing half-written; the rerun completes with the files of an uninterrupted run', async () => {
    const args = (dir: string) => [
      'init',
      '--answers',
      join(fixtures, 'answers-local.yaml'),
      '--dir',
      dir,
      '--non-interactive',
      '--json',
    ]
    const whole = mkdtempSync(join(tmpdir(), 'init-e2e-whole-'))
    const uninterrupted = runCli(args(whole), {env: cliEnv})
    expect(uninterrupted.code, uninterrupted.stderr).toBe(0)
    const planned: string[] = JSON.parse(uninterrupted.stdout).files.map((f: {path: string}) => f.path)

    const dir = mkdtempSync(join(tmpdir(), 'init-e2e-killed-'))
    const faultDir = mkdtempSync(join(tmpdir(), 'init-e2e-faults-'))
    await runToKillPoint('files.written.charge-ops.yaml', args(dir), {env: cliEnv, faultDir})
    // the files before it are whole (.env first: the secrets a rerun reuses), none after it, no temp file
    expect(filesIn(dir)).toEqual(['.env', '.env.production', 'charge-ops.yaml'])
    expect(readFileSync(join(dir, 'charge-ops.yaml'), 'utf8')).toMatch(/\n$/)
    const secretKey = /^SECRET_KEY=(.+)$/m.exec(readFileSync(join(dir, '.env'), 'utf8'))![1]

    const rerun = runCli(args(dir), {env: cliEnv})
    expect(rerun.code, rerun.stderr).toBe(0)
    const result = JSON.parse(rerun.stdout)
    expect(
      result.files.filter((f: {action: string}) => f.action === 'unchanged').map((f: {path: string}) => f.path),
    ).toEqual(['.env', '.env.production', 'charge-ops.yaml'])
    expect(result.reusedSecrets).toContain('secretKey')
    expect(readFileSync(join(dir, '.env'), 'utf8')).toContain(`SECRET_KEY=${secretKey}`)
    // the same files, modes and contents as the uninterrupted run (its directory and fresh secrets aside)
    expect(filesIn(dir)).toEqual(filesIn(whole))
    expect(filesIn(dir)).toEqual([...planned].sort())
    const normalised = (root: string, file: string) =>
      readFileSync(join(root, file), 'utf8')
        .replaceAll(root, '<dir>')
        .replace(/[0-9a-f]{32,}/g, '<secret>')
    for (const file of planned) {
      expect(statSync(join(dir, file)).mode & 0o777, file).toBe(statSync(join(whole, file)).mode & 0o777)
      expect(normalised(dir, file), file).toBe(normalised(whole, file))
    }
    // and a further run changes nothing
    expect(
      JSON.parse(runCli(args(dir), {env: cliEnv}).stdout).files.every(
        (f: {action: string}) => f.action === 'unchanged',
      ),
    ).toBe(true)
  })
})

describe('charge-ops schedule (built binary)', () => {
  it('install --target cron writes the crontab and wrapper; list --json gives three next runs per job', () => {
    const dir = mkdtempSync(join(tmpdir(), 'sched-e2e-'))
    expect(
      cli(['init', '--answers', join(fixtures, 'answers-compose.yaml'), '--dir', dir, '--non-interactive']).status,
    ).toBe(0)
    const out = join(dir, 'sched')
    const r = cli(['schedule', 'install', '--target', 'cron', '--dir', out], dir)
    expect(r.status, r.stderr).toBe(0)
    expect(readFileSync(join(out, 'charge-ops.cron'), 'utf8')).toMatch(
      /^0 2 \* \* \* root .*charge-ops-job backup-db backup db --metrics-file/m,
    )
    const list = cli(['schedule', 'list', '--json'], dir)
    expect(list.status, list.stdout).toBe(0)
    const jobs = JSON.parse(list.stdout).jobs
    // init's PostgreSQL archives WAL (archive_mode on), so the nightly base backup is scheduled too
    expect(jobs.map((j: {name: string}) => j.name)).toEqual([
      'backup-base',
      'backup-db',
      'backup-files',
      'prune',
      'verify',
      'capacity',
    ])
    for (const j of jobs) expect(j.nextRuns).toHaveLength(3)
    const bad = cli(['schedule', 'next', '0 25 * * *'])
    expect(bad.status).toBe(2)
    expect(bad.stderr).toMatch(/hour field "25": 25 is outside 0–23/)
    execFileSync('true')
  })

  it('install killed between two files (systemd: files.written.charge-ops-backup-db.timer; cron: files.written.charge-ops-job): the rerun converges to the set of an uninterrupted install, every job once', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'sched-e2e-kill-'))
    const faultDir = mkdtempSync(join(tmpdir(), 'sched-e2e-faults-'))
    expect(
      cli(['init', '--answers', join(fixtures, 'answers-compose.yaml'), '--dir', dir, '--non-interactive']).status,
    ).toBe(0)
    const install = (target: string, out: string) => [
      'schedule',
      'install',
      '--target',
      target,
      '--dir',
      join(dir, out),
    ]
    for (const [target, point, before] of [
      [
        'systemd',
        'files.written.charge-ops-backup-db.timer',
        [
          'charge-ops-backup-base.service',
          'charge-ops-backup-base.timer',
          'charge-ops-backup-db.service',
          'charge-ops-backup-db.timer',
        ],
      ],
      ['cron', 'files.written.charge-ops-job', ['charge-ops-job']],
    ] as const) {
      const whole = runCli(install(target, `${target}-whole`), {cwd: dir, env: cliEnv})
      expect(whole.code, whole.stderr).toBe(0)
      await runToKillPoint(point, install(target, target), {cwd: dir, env: cliEnv, faultDir})
      // systemd: each timer after its service; cron: the wrapper before the crontab that calls it
      expect(filesIn(join(dir, target))).toEqual([...before])
      const rerun = runCli(install(target, target), {cwd: dir, env: cliEnv})
      expect(rerun.code, rerun.stderr).toBe(0)
      expect(filesIn(join(dir, target))).toEqual(filesIn(join(dir, `${target}-whole`)))
      for (const file of filesIn(join(dir, target))) {
        const text = (out: string) => readFileSync(join(dir, out, file), 'utf8').replaceAll(join(dir, out), '<dir>')
        expect(text(target), file).toBe(text(`${target}-whole`))
      }
    }
    const cron = readFileSync(join(dir, 'cron', 'charge-ops.cron'), 'utf8')
    for (const job of ['backup-base', 'backup-db', 'backup-files', 'prune', 'verify', 'capacity'])
      expect(cron.match(new RegExp(`charge-ops-job ${job} `, 'g')), job).toHaveLength(1)
  })
})
