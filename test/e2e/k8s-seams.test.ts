/**
 * The k8s deployment's seams through the CLI, as a user runs it in the folder init wrote (no
 * cluster here: the objects are compared as files). `schedule install --target k8s` writes the
 * CronJobs init wrote (same image — the one `images build` tags —, Secrets, PVCs, Chroma's volume),
 * and `upgrade --target k8s --dry-run` with its defaults names exactly init's Deployments and
 * containers, in init's namespace, on init's service image.
 */
import {mkdtempSync, readFileSync, readdirSync, rmSync} from 'node:fs'
import {tmpdir} from 'node:os'
import {join, resolve} from 'node:path'

import {afterAll, beforeAll, describe, expect, it} from 'vitest'
import {parseAllDocuments} from 'yaml'

import {cleanEnv, runUnchecked} from '../support/process.js'

const ROOT = resolve(import.meta.dirname, '../..')
const BIN = join(ROOT, 'bin', 'run.js')
const VERSION = (JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as {version: string}).version
type Obj = Record<string, any>

let dir: string
const cli = (args: string[]) =>
  runUnchecked(process.execPath, [BIN, ...args], {cwd: dir, env: cleanEnv({CI: 'true'}), timeoutMs: 60_000})
const docsOf = (text: string) =>
  parseAllDocuments(text)
    .map((d) => d.toJS() as Obj)
    .filter(Boolean)

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'charge-k8s-seams-'))
  const init = await cli([
    'init',
    '--non-interactive',
    '--target',
    'k8s',
    '--domain',
    'charge.example.com',
    '--repo',
    's3://charge-backups/k8s',
    '--dir',
    dir,
    '--yes',
    '--json',
  ])
  expect(init.code, init.stdout + init.stderr).toBe(0)
})
afterAll(() => rmSync(dir, {recursive: true, force: true}))

describe('k8s: what init wrote against schedule and upgrade', () => {
  it('schedule install --target k8s writes the CronJobs init wrote, on the service image `images build` tags', async () => {
    const r = await cli(['schedule', 'install', '--target', 'k8s', '--dir', 'out', '--json'])
    expect(r.code, r.stderr).toBe(0)
    const scheduled = docsOf(readFileSync(join(dir, 'out', 'cronjobs.yaml'), 'utf8'))
    expect(scheduled.length).toBeGreaterThanOrEqual(4)
    expect(scheduled).toEqual(docsOf(readFileSync(join(dir, 'k8s', 'cronjobs.yaml'), 'utf8')))
    for (const job of scheduled)
      expect(job.spec.jobTemplate.spec.template.spec.containers[0].image, job.metadata.name).toBe(
        `charge-ops/service:${VERSION}`,
      )
  })

  it('upgrade --target k8s --dry-run (defaults) names exactly the Deployments and containers init wrote on the service image, in its namespace', async () => {
    const manifests = readdirSync(join(dir, 'k8s')).flatMap((f) => docsOf(readFileSync(join(dir, 'k8s', f), 'utf8')))
    const service = manifests.filter(
      (d) =>
        d.kind === 'Deployment' &&
        d.spec.template.spec.containers.some((c: Obj) => String(c.image).startsWith('charge-ops/service:')),
    )
    expect(service.map((d) => d.metadata.name).sort()).toEqual(['backend', 'worker'])
    const r = await cli(['upgrade', '--target', 'k8s', '--to', '0.2.0', '--dry-run', '--json'])
    expect(r.code, r.stderr).toBe(0)
    const lines = (
      JSON.parse(r.stdout).commandPlan.steps as Array<{commands: Array<{file: string; args: string[]}>}>
    ).flatMap((s) => s.commands.map((c) => [c.file, ...c.args].join(' ')))
    const named = new Set(lines.flatMap((l) => [...l.matchAll(/deployment\/([a-z0-9-]+)/g)].map((m) => m[1]!)))
    expect([...named].sort()).toEqual(service.map((d) => d.metadata.name).sort())
    for (const d of service) {
      const container = d.spec.template.spec.containers[0]
      expect(lines).toContain(
        `kubectl set image deployment/${d.metadata.name} ${container.name}=charge-ops/service:0.2.0 -n ${d.metadata.namespace}`,
      )
    }
    // the migration pod runs in the same namespace, on the new service image
    expect(lines.find((l) => l.startsWith('kubectl run '))).toContain(
      `--image=charge-ops/service:0.2.0 --restart=Never --rm --attach -n ${service[0]!.metadata.namespace}`,
    )
  })
})
