/**
 * `charge-ops upgrade` as a user runs it (the built bin/run.js): a real local upgrade and a rolled
 * back one with --json, `upgrade history`, and the compose / k8s command plans of --dry-run.
 */
import {randomBytes, randomUUID} from 'node:crypto'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'

import {afterAll, beforeAll, describe, expect, it} from 'vitest'

import {cleanEnv, runUnchecked, startRedis, type RedisServer} from '../support/index.js'
import {ROOT} from '../fixtures/upgrade/build-release.js'
import {makeStack, type UpgradeStack} from '../fixtures/upgrade/stack.js'

process.env.CHROMA_COLLECTION = `kb_upgrade_cli_${randomUUID().slice(0, 8)}`
const env = cleanEnv({CI: 'true', CHROMA_COLLECTION: process.env.CHROMA_COLLECTION})
const cli = (cwd: string, ...args: string[]) =>
  runUnchecked(process.execPath, [path.join(ROOT, 'bin/run.js'), ...args], {cwd, env})

let redis: RedisServer
let stack: UpgradeStack | undefined
let empty: string

beforeAll(async () => {
  if (!fs.existsSync(path.join(ROOT, 'dist/commands/upgrade/index.js')))
    throw new Error('run `npm run build` first: this test runs the built CLI')
  redis = await startRedis({password: randomBytes(8).toString('hex')})
  empty = fs.mkdtempSync(path.join(os.tmpdir(), 'charge-upgrade-cli-'))
})

afterAll(async () => {
  await stack?.stop()
  if (stack) fs.rmSync(stack.dir, {recursive: true, force: true})
  await redis?.stop()
  fs.rmSync(empty, {recursive: true, force: true})
})

describe('charge-ops upgrade (built CLI)', () => {
  it('a failing B exits 6 with the failing step (--json), then A → B succeeds (the journal); history lists both', async () => {
    stack = await makeStack(redis, 'cli')
    const bad = await cli(
      stack.dir,
      'upgrade',
      '--to',
      stack.release('b-bad-migration', '2.0.0-bad'),
      '--yes',
      '--json',
      '--stop-timeout',
      '5',
    )
    expect(bad.code, bad.stderr).toBe(6)
    const error = JSON.parse(bad.stdout).error
    expect(error).toMatchObject({code: 'ROLLED_BACK', exitCode: 6})
    expect(error.data.failedStep).toBe('migrate')
    expect(error.message).toContain('division by zero')
    expect((await stack.get('/health')).body.version).toBe('1.0.0-a')

    const ok = await cli(
      stack.dir,
      'upgrade',
      '--to',
      stack.release('b', '2.0.0'),
      '--yes',
      '--json',
      '--stop-timeout',
      '5',
    )
    expect(ok.code, ok.stderr).toBe(0)
    const result = JSON.parse(ok.stdout)
    expect(result.outcome).toBe('succeeded')
    expect(result.journal.steps.map((s: {status: string}) => s.status)).toEqual(Array(7).fill('done'))
    expect(result.journal.to).toMatchObject({version: '2.0.0', schemaHead: '9001'})
    expect(ok.stdout).not.toContain(new URL(stack.databaseUrl).password)
    expect((await stack.get('/api/v1/fleet-notes')).status).toBe(200)

    const noYes = await cli(stack.dir, 'upgrade', '--to', stack.release('b', '2.0.1'))
    expect(noYes.code).toBe(2)
    expect(noYes.stderr).toContain('--yes')

    const history = await cli(stack.dir, 'upgrade', 'history')
    expect(history.code, history.stderr).toBe(0)
    const lines = history.stdout.trim().split('\n')
    expect(lines[0]).toMatch(/id\s+started\s+from\s+to\s+schema\s+duration\s+outcome\s+failed step/)
    expect(lines[2]).toMatch(/1\.0\.0-a\s+2\.0\.0\s+0005 → 9001\s+[\d.]+ s\s+succeeded/)
    expect(lines[3]).toMatch(/1\.0\.0-a\s+2\.0\.0-bad\s+.*rolled-back \(restore\)\s+migrate/)
  })

  it('prints the exact compose and k8s command plans with --dry-run', async () => {
    const compose = await cli(
      empty,
      'upgrade',
      '--target',
      'compose',
      '--to',
      '1.4.0',
      '--image',
      'reg/backend',
      '--dry-run',
      '--json',
    )
    expect(compose.code, compose.stderr).toBe(0)
    const plan = JSON.parse(compose.stdout).commandPlan
    const commands = plan.steps.flatMap((s: {commands: Array<{file: string; args: string[]}>}) =>
      s.commands.map((c) => [c.file, ...c.args].join(' ')),
    )
    expect(commands).toHaveLength(12)
    // the new images are fetched before anything stops: the downtime does not include the pull
    expect(commands[0]).toBe(
      `docker compose -f ${path.join(fs.realpathSync(empty), 'docker-compose.yml')} pull backend worker`,
    )
    const at = (needle: string) => commands.findIndex((c: string) => c.includes(needle))
    expect(at('maintenance on')).toBeGreaterThan(0)
    // backed up once maintenance is on and the worker drained, so a rollback to it loses nothing
    expect(at('stop --timeout 60 worker')).toBeLessThan(at('backup all'))
    expect(at('run --rm --no-deps migrate')).toBeLessThan(at('up -d --no-deps --wait'))
    expect(commands.at(-1)).toBe('charge-ops service maintenance off')

    const k8s = await cli(
      empty,
      'upgrade',
      '--target',
      'k8s',
      '--to',
      '1.4.0',
      '--image',
      'reg/backend',
      '-n',
      'charge',
      '--dry-run',
    )
    expect(k8s.code, k8s.stderr).toBe(0)
    const numbered = k8s.stdout.split('\n').filter((l) => /^\s+\d+\. /.test(l))
    expect(numbered.map((l) => Number(/^\s+(\d+)\./.exec(l)![1]))).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13])
    // writes are accepted again only once the new version is verified
    expect(numbered.at(-1)).toMatch(/13\. charge-ops service maintenance off/)
    expect(k8s.stdout).toContain('kubectl set image deployment/backend backend=reg/backend:1.4.0 -n charge')
    expect(k8s.stdout).toContain('on failure: kubectl rollout undo deployment/backend -n charge')

    // without --image: the service image init's manifests run, in the namespace named after the stack
    const noImage = await cli(empty, 'upgrade', '--target', 'k8s', '--to', '1.4.0', '--dry-run')
    expect(noImage.code, noImage.stderr).toBe(0)
    expect(noImage.stdout).toContain(
      'kubectl set image deployment/backend backend=charge-ops/service:1.4.0 -n charge-analysis',
    )
  })

  it('needs docker compose / kubectl to run a plan: exit 5 with the install hint', async () => {
    const bin = fs.mkdtempSync(path.join(os.tmpdir(), 'charge-upgrade-path-'))
    fs.symlinkSync(process.execPath, path.join(bin, 'node'))
    const run = await runUnchecked(
      process.execPath,
      [path.join(ROOT, 'bin/run.js'), 'upgrade', '--target', 'k8s', '--to', '1.4.0', '--image', 'r/b', '--yes'],
      {cwd: empty, env: {...env, PATH: bin}},
    )
    expect(run.code, run.stderr).toBe(5)
    expect(run.stderr).toContain('kubectl')
    expect(run.stderr).toContain('hint:')
    fs.rmSync(bin, {recursive: true, force: true})
  })

  it('a damaged upgrade journal: exit 1 UPGRADE_JOURNAL_UNREADABLE naming the file, no stack trace (not 70, not "no journal")', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'charge-upgrade-journal-'))
    fs.mkdirSync(path.join(dir, 'state', 'upgrade'), {recursive: true})
    fs.writeFileSync(path.join(dir, 'state', 'upgrade', 'journal.json'), '{"formatVersion":1,"id":')
    const run = await runUnchecked(
      process.execPath,
      [path.join(ROOT, 'bin/run.js'), 'upgrade', '--target', 'compose', '--to', '0.2.0', '--dry-run', '--json'],
      {cwd: dir, env: {...env, CHARGE_OPS_STATE_DIR: path.join(dir, 'state')}},
    )
    expect(run.code, run.stderr).toBe(1)
    expect(JSON.parse(run.stdout).error.code).toBe('UPGRADE_JOURNAL_UNREADABLE')
    expect(run.stdout + run.stderr).toContain(path.join(dir, 'state', 'upgrade', 'journal.json'))
    expect(run.stdout + run.stderr).not.toMatch(/\n\s+at /)
    fs.rmSync(dir, {recursive: true, force: true})
  })

  it('upgrade history on a fresh stack: empty, --json too', async () => {
    const text = await cli(empty, 'upgrade', 'history')
    expect(text.code).toBe(0)
    expect(text.stdout.trim()).toBe('no upgrades recorded')
    expect(JSON.parse((await cli(empty, 'upgrade', 'history', '--json')).stdout)).toEqual({upgrades: []})
  })
})
