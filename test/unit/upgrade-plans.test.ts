/** Pure parts of `charge-ops upgrade`: the compose / k8s command plans, preflight helpers, the journal file. */
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'

import {describe, expect, it} from 'vitest'

import {journalFile, newJournal, readJournal, isUnfinished} from '../../src/upgrade/journal.js'
import {writeFileAtomicSync} from '../../src/core/fs/atomic.js'
import {composeHealth, composePlan, k8sPlan, renderPlan, shellQuote} from '../../src/upgrade/plans.js'
import {backupIdOf, defaultAppUrl} from '../../src/upgrade/targets.js'
import {assertPreflight, configHash, parseWithin, tablesTouched} from '../../src/upgrade/preflight.js'
import {
  classifySource,
  declaredVersion,
  migrationsHeadOf,
  switchCurrent,
  currentRelease,
} from '../../src/upgrade/release.js'

const line = (c: {file: string; args: string[]}) => [c.file, ...c.args].join(' ')

describe('verify checks the web UI (guide §12 step 7)', () => {
  it('runs curl -f on the app URL in both plans, and nothing without one', () => {
    const curl = ['curl', '-fsS', '-o', '/dev/null', '--max-time', '15', 'https://app.example.com']
    for (const plan of [
      composePlan({version: '1.4.0', composeFile: 'dc.yml', appUrl: 'https://app.example.com'}),
      k8sPlan({version: '1.4.0', namespace: 'ns', image: 'reg/backend', appUrl: 'https://app.example.com'}),
    ]) {
      const verify = plan.steps.find((s) => s.step === 'verify')!
      expect(verify.commands.map((c) => [c.file, ...c.args])).toContainEqual(curl)
    }
    const none = composePlan({version: '1.4.0', composeFile: 'dc.yml'}).steps.find((s) => s.step === 'verify')!
    expect(none.commands.some((c) => c.file === 'curl')).toBe(false)
  })
  it('takes the first https origin of ALLOWED_ORIGINS (JSON or comma list)', () => {
    expect(defaultAppUrl('["http://localhost:3000","https://app.example.com"]')).toBe('https://app.example.com')
    expect(defaultAppUrl('http://localhost:3000, https://app.example.com/')).toBe('https://app.example.com/')
    expect(defaultAppUrl('["http://localhost:3000"]')).toBeUndefined()
    expect(defaultAppUrl(undefined)).toBeUndefined()
    expect(defaultAppUrl('[not json')).toBeUndefined()
  })
})

describe('compose plan', () => {
  it('lists every command in order, with pull when an image is given and the rollback commands', () => {
    const plan = composePlan({
      version: '1.4.0',
      composeFile: '/srv/charge/docker-compose.yml',
      image: 'reg/backend',
      previousVersion: '1.3.0',
    })
    // images first (no downtime for them); the backup once writes are refused and the worker drained
    expect(plan.steps.flatMap((s) => s.commands.map(line))).toEqual([
      'docker compose -f /srv/charge/docker-compose.yml pull backend worker',
      'charge-ops service maintenance on --reason upgrade to 1.4.0',
      'docker compose -f /srv/charge/docker-compose.yml stop --timeout 60 worker',
      'charge-ops backup all --json',
      'charge-ops backup verify latest',
      'docker compose -f /srv/charge/docker-compose.yml stop --timeout 60 backend',
      'docker compose -f /srv/charge/docker-compose.yml run --rm --no-deps migrate',
      'docker compose -f /srv/charge/docker-compose.yml up -d --no-deps --wait --wait-timeout 120 backend worker',
      'docker compose -f /srv/charge/docker-compose.yml exec -T nginx nginx -s reload',
      'docker compose -f /srv/charge/docker-compose.yml ps --format json backend worker',
      'charge-ops migrate status --exit-code',
      'charge-ops service maintenance off',
    ])
    expect(plan.steps.find((s) => s.step === 'start')!.undo.map(line)).toEqual([
      'docker compose -f /srv/charge/docker-compose.yml stop --timeout 60 worker backend',
    ])
    expect(plan.steps.find((s) => s.step === 'stop')!.undo.map(line)[0]).toContain('up -d --no-deps --wait')
    // the images' tag is the compose project's CHARGE_OPS_VERSION: the new one for the new containers, the previous one to go back
    const envOf = (step: string, undo = false) =>
      (undo ? plan.steps.find((s) => s.step === step)!.undo[0] : plan.steps.find((s) => s.step === step)!.commands[0])!
        .env
    expect(envOf('migrate')).toEqual({CHARGE_OPS_VERSION: '1.4.0'})
    expect(envOf('start')).toEqual({CHARGE_OPS_VERSION: '1.4.0'})
    expect(envOf('stop', true)).toEqual({CHARGE_OPS_VERSION: '1.3.0'})
    // the migrations are undone with the pre-upgrade backup (its id filled in at run time), only when they moved the head
    const migrateUndo = plan.steps.find((s) => s.step === 'migrate')!.undo
    expect(migrateUndo.map(line)).toEqual(['charge-ops restore db <step-1 backup> --clean --yes'])
    expect(migrateUndo[0]!.when).toBe('schema-moved')
    expect(renderPlan(plan)).toContain(
      "on failure, if the schema head moved: charge-ops restore db '<step-1 backup>' --clean --yes",
    )
  })

  it('finds the step-1 backup id in `backup all --json`, bare or in an envelope', () => {
    expect(backupIdOf('{"id":"20261203T120000Z-all-1a2b","kind":"all"}')).toBe('20261203T120000Z-all-1a2b')
    expect(backupIdOf('{"ok":true,"data":{"id":"x-all"}}')).toBe('x-all')
    expect(backupIdOf('backup x complete')).toBeUndefined()
  })

  it('builds the images from this charge-ops instead of pulling without an image; -p for a project', () => {
    const plan = composePlan({version: '2.0.0', composeFile: 'dc.yml', project: 'charge', buildArgs: ['--base', 'b']})
    expect(plan.steps.find((s) => s.step === 'fetch')!.commands.map(line)).toEqual([
      'charge-ops images build --version 2.0.0 --base b',
    ])
    expect(plan.steps.find((s) => s.step === 'start')!.commands.map(line)).toEqual([
      'docker compose -f dc.yml -p charge up -d --no-deps --wait --wait-timeout 120 backend worker',
      'docker compose -f dc.yml -p charge exec -T nginx nginx -s reload',
    ])
  })

  it('renders numbered lines with shell quoting', () => {
    const text = renderPlan(composePlan({version: '1.4.0', composeFile: 'dc.yml'}))
    expect(text).toContain(" 2. charge-ops service maintenance on --reason 'upgrade to 1.4.0'")
    expect(text).toContain('on failure:')
    expect(shellQuote(['a b', "it's", 'plain'])).toBe(`'a b' 'it'\\''s' plain`)
  })

  it('reads docker compose ps --format json (lines or array)', () => {
    expect(
      composeHealth(
        '{"Service":"backend","State":"running","Health":"healthy"}\n{"Service":"worker","State":"running","Health":""}',
      ).ok,
    ).toBe(true)
    expect(composeHealth('[{"Service":"backend","State":"running","Health":"unhealthy"}]')).toEqual({
      ok: false,
      problems: ['backend: running (unhealthy)'],
    })
    expect(composeHealth('').ok).toBe(false)
  })
})

describe('k8s plan', () => {
  it('sets the image, waits for the rollout, and undoes the rollout on failure', () => {
    const plan = k8sPlan({version: '1.4.0', namespace: 'charge', image: 'reg/backend'})
    const commands = plan.steps.flatMap((s) => s.commands.map(line))
    // as on compose: the backup once writes are refused and the worker drained (a rollback to it loses nothing)
    expect(commands).toEqual([
      'charge-ops service maintenance on --reason upgrade to 1.4.0',
      'kubectl scale deployment/worker --replicas=0 -n charge',
      'kubectl rollout status deployment/worker -n charge --timeout=300s',
      'charge-ops backup all --json',
      'charge-ops backup verify latest',
      'kubectl run charge-ops-migrate-1-4-0 --image=reg/backend:1.4.0 --restart=Never --rm --attach -n charge -- charge-ops migrate up --lock-wait 60s',
      'kubectl set image deployment/backend backend=reg/backend:1.4.0 -n charge',
      'kubectl set image deployment/worker worker=reg/backend:1.4.0 -n charge',
      'kubectl rollout status deployment/backend -n charge --timeout=300s',
      'kubectl rollout status deployment/worker -n charge --timeout=300s',
      'charge-ops migrate status --exit-code',
      'kubectl get deployment/backend -n charge -o jsonpath={.status.readyReplicas}/{.status.replicas}',
      'charge-ops service maintenance off',
    ])
    expect(plan.steps.find((s) => s.step === 'start')!.undo.map(line)).toEqual([
      'kubectl rollout undo deployment/backend -n charge',
      'kubectl rollout undo deployment/worker -n charge',
      'kubectl rollout status deployment/backend -n charge --timeout=300s',
    ])
  })

  it('applies manifests instead of set image when given', () => {
    const plan = k8sPlan({version: '1.4.0', namespace: 'n', image: 'i', manifests: 'k8s/', rolloutTimeout: '60s'})
    expect(plan.steps.find((s) => s.step === 'start')!.commands.map(line)[0]).toBe('kubectl apply -f k8s/ -n n')
  })
})

describe('preflight helpers', () => {
  it('finds the tables a migration rewrites or indexes', () => {
    expect(
      tablesTouched(
        `ALTER TABLE analyses ADD COLUMN x int;\nCREATE INDEX CONCURRENTLY IF NOT EXISTS i ON uploads (a);\nUPDATE findings SET x = 1;\nCREATE TABLE t (id int);`,
      ),
    ).toEqual(['analyses', 'uploads', 'findings'])
  })

  it('parses --require-verified-within', () => {
    expect(parseWithin('24h')).toBe(86_400_000)
    expect(parseWithin('90m')).toBe(5_400_000)
    expect(parseWithin('7d')).toBe(7 * 86_400_000)
    expect(() => parseWithin('soon')).toThrow(/not a duration/)
  })

  it('maps failed checks to one error: lock > unreachable > usage > findings, every failure listed', () => {
    expect(() =>
      assertPreflight([
        {name: 'a', status: 'ok', detail: ''},
        {name: 'b', status: 'warning', detail: ''},
      ]),
    ).not.toThrow()
    try {
      assertPreflight([
        {name: 'migrate lint', status: 'failed', detail: 'x', exitCode: 1},
        {name: 'redis', status: 'failed', detail: 'refused', exitCode: 5, hint: 'start redis'},
      ])
      expect.unreachable()
    } catch (error) {
      expect((error as {exitCode: number}).exitCode).toBe(5)
      expect((error as Error).message).toContain('✗ migrate lint: x')
      expect((error as Error).message).toContain('✗ redis: refused')
    }
  })

  it('hashes the configuration files, not their names only', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'upg-unit-'))
    const env = path.join(dir, '.env')
    fs.writeFileSync(env, 'A=1\n')
    const one = configHash({envFilePath: env})
    fs.writeFileSync(env, 'A=2\n')
    expect(configHash({envFilePath: env})).not.toBe(one)
    fs.rmSync(dir, {recursive: true})
  })
})

describe('releases and journal', () => {
  it('classifies --to, reads versions and migration heads, switches the current link atomically', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'upg-unit-'))
    expect(classifySource(dir).kind).toBe('directory')
    fs.writeFileSync(path.join(dir, 'x.tgz'), '')
    expect(classifySource(path.join(dir, 'x.tgz')).kind).toBe('tarball')
    fs.writeFileSync(path.join(dir, 'x.txt'), '')
    expect(() => classifySource(path.join(dir, 'x.txt'))).toThrow(/not a .tar.gz/)
    expect(classifySource('v1.2.0', dir)).toEqual({kind: 'git', path: 'v1.2.0'})

    fs.writeFileSync(path.join(dir, 'version.js'), "export const SERVICE_VERSION = '3.1.4';\n")
    expect(declaredVersion(dir)).toBe('3.1.4')
    fs.mkdirSync(path.join(dir, 'm'))
    for (const f of ['0001_a.sql', '0010_b.sql', '0002_c.sql', 'README.md'])
      fs.writeFileSync(path.join(dir, 'm', f), '')
    expect(migrationsHeadOf(path.join(dir, 'm'))).toBe('0010')

    const settings = {stateDir: path.join(dir, 'state')}
    expect(currentRelease(settings)).toBeNull()
    fs.mkdirSync(path.join(dir, 'state/releases/1.0.0'), {recursive: true})
    switchCurrent(settings, path.join(dir, 'state/releases/1.0.0'))
    expect(fs.readlinkSync(path.join(dir, 'state/releases/current'))).toBe('1.0.0')
    expect(currentRelease(settings)).toBe(path.join(dir, 'state/releases/1.0.0'))
    switchCurrent(settings, null)
    expect(currentRelease(settings)).toBeNull()
    fs.rmSync(dir, {recursive: true})
  })

  it('writes the journal atomically and tells unfinished runs apart', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'upg-unit-'))
    const settings = {stateDir: dir}
    const journal = newJournal({
      stack: 's',
      target: 'local',
      from: {
        version: '1',
        release: null,
        schemaHead: '0005',
        migrationsDir: '/m',
        serviceRunning: true,
        maintenanceWasOn: false,
      },
      to: {source: 'x', version: '2', release: '/r', schemaHead: null, migrationsDir: '/r/m'},
      configHash: 'h',
    })
    expect(journal.steps.map((s) => s.name)).toEqual([
      'backup',
      'stop',
      'fetch',
      'install',
      'migrate',
      'start',
      'verify',
    ])
    expect(journal.id).toMatch(/^\d{8}T\d{6}Z-upgrade-[0-9a-f]{6}$/)
    writeFileAtomicSync(journalFile(settings), JSON.stringify(journal), {mode: 0o644})
    expect(readJournal(settings)).toEqual(journal)
    expect(isUnfinished(readJournal(settings))).toBe(true)
    expect(isUnfinished({...journal, status: 'rolled-back'})).toBe(false)
    expect(fs.readdirSync(path.join(dir, 'upgrade'))).toEqual(['journal.json']) // no temp file left
    fs.rmSync(dir, {recursive: true})
  })
})
