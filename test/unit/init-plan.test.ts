/**
 * init's plan: snapshots of every generated file from fixed answers per target, YAML that
 * parses, Kubernetes objects valid against the API schema (kubernetes-models) with selectors
 * matching labels and probes / resources set, pgtune values against the formulas, reruns.
 */
import {mkdtempSync, readFileSync, statSync, writeFileSync} from 'node:fs'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {parseAllDocuments, parseDocument} from 'yaml'
import {describe, expect, it} from 'vitest'

import {chargeOpsYamlSchema} from '../../src/config/schema.js'
import {parseAnswers, parseAnswersFile, type Answers} from '../../src/install/answers.js'
import {applyPlan} from '../../src/core/fs/file-plan.js'
import {planInit} from '../../src/install/plan.js'
import {formatKb, tunePostgres} from '../../src/install/pgtune.js'
import {readExistingSecrets, resolveSecrets, type InitSecrets} from '../../src/install/secrets.js'

const FIXTURES = join(import.meta.dirname, '..', 'fixtures', 'init')
const SECRETS: InitSecrets = {
  secretKey: '5ec7e7k3y'.padEnd(64, '0'),
  postgresPassword: 'pg5uperu5er'.padEnd(48, '1'),
  appDbPassword: 'app0pa55'.padEnd(48, '2'),
  migratorDbPassword: 'm1grat0r'.padEnd(48, '3'),
  redisPassword: 'red15pa55'.padEnd(48, '4'),
}
const load = (name: string): Answers => {
  const file = join(FIXTURES, `answers-${name}.yaml`)
  return parseAnswers(parseAnswersFile(readFileSync(file, 'utf8'), file), file)
}
const TARGETS = ['compose', 'k8s', 'k8s-managed', 'local'] as const
const plan = (name: string) =>
  planInit(load(name), {secrets: SECRETS, installDir: '/etc/charge-analysis', opsVersion: '0.1.0'})

describe('planInit snapshots', () => {
  for (const target of TARGETS) {
    it(`${target}: every file matches its snapshot`, async () => {
      for (const file of plan(target)) {
        await expect(`# mode ${file.mode.toString(8)}\n${file.content}`).toMatchFileSnapshot(
          join('..', '__snapshots__', 'init', target, `${file.path.replace(/\//g, '__')}.snap`),
        )
      }
    })
  }
})

describe('generated files', () => {
  it('every YAML file parses and charge-ops.yaml satisfies the schema', () => {
    for (const target of TARGETS) {
      for (const file of plan(target).filter((f) => /\.ya?ml$/.test(f.path))) {
        const docs = parseAllDocuments(file.content)
        for (const doc of docs as unknown as Array<{errors: unknown[]}>)
          expect(doc.errors, `${target} ${file.path}`).toEqual([])
      }
      const yaml = plan(target).find((f) => f.path === 'charge-ops.yaml')!
      expect(chargeOpsYamlSchema.safeParse(parseDocument(yaml.content).toJS()).success).toBe(true)
    }
  })

  it('secret-bearing files are 0600 and secrets appear nowhere else', () => {
    for (const target of TARGETS) {
      for (const file of plan(target)) {
        const holds = Object.values(SECRETS).some((s) => file.content.includes(s))
        if (holds) expect(file.mode, `${target} ${file.path}`).toBe(0o600)
      }
    }
  })

  it('compose: databases only on loopback, Redis with requirepass and AOF, healthchecks and restart everywhere', () => {
    const compose = parseDocument(plan('compose').find((f) => f.path === 'docker-compose.yml')!.content).toJS() as {
      services: Record<string, {ports?: string[]; healthcheck?: unknown; restart?: string; profiles?: string[]}>
    }
    for (const [name, svc] of Object.entries(compose.services)) {
      if (svc.profiles || name === 'migrate') continue // the ops profile and the one-off migrate service
      expect(svc.healthcheck, name).toBeDefined()
      expect(svc.restart, name).toBe('unless-stopped')
    }
    expect(compose.services.postgres.ports).toEqual(['127.0.0.1:5432:5432'])
    expect(compose.services.redis.ports).toEqual(['127.0.0.1:6379:6379'])
    expect(JSON.stringify(compose.services.backend.healthcheck)).toContain('/health')
    const redis = plan('compose').find((f) => f.path === 'redis/redis.conf')!.content
    expect(redis).toMatch(new RegExp(`^requirepass ${SECRETS.redisPassword}$`, 'm'))
    expect(redis).toMatch(/^appendonly yes$/m)
    const nginx = plan('compose').find((f) => f.path === 'nginx/nginx.conf')!.content
    for (const needle of [
      'client_max_body_size 100m',
      'Strict-Transport-Security',
      'location /api/',
      'location /ws',
      'proxy_set_header Upgrade',
      'listen 443 ssl',
    ])
      expect(nginx).toContain(needle)
  })
})

describe('Kubernetes manifests', () => {
  const kinds: Record<string, () => Promise<new (o: unknown) => {validate(): void}>> = {
    'v1/Namespace': async () => (await import('kubernetes-models/v1')).Namespace as never,
    'v1/Secret': async () => (await import('kubernetes-models/v1')).Secret as never,
    'v1/ConfigMap': async () => (await import('kubernetes-models/v1')).ConfigMap as never,
    'v1/Service': async () => (await import('kubernetes-models/v1')).Service as never,
    'v1/PersistentVolumeClaim': async () => (await import('kubernetes-models/v1')).PersistentVolumeClaim as never,
    'apps/v1/StatefulSet': async () => (await import('kubernetes-models/apps/v1')).StatefulSet as never,
    'apps/v1/Deployment': async () => (await import('kubernetes-models/apps/v1')).Deployment as never,
    'autoscaling/v2/HorizontalPodAutoscaler': async () =>
      (await import('kubernetes-models/autoscaling/v2')).HorizontalPodAutoscaler as never,
    'networking.k8s.io/v1/Ingress': async () =>
      (await import('kubernetes-models/networking.k8s.io/v1')).Ingress as never,
    'networking.k8s.io/v1/NetworkPolicy': async () =>
      (await import('kubernetes-models/networking.k8s.io/v1')).NetworkPolicy as never,
    'batch/v1/CronJob': async () => (await import('kubernetes-models/batch/v1')).CronJob as never,
  }

  for (const target of ['k8s', 'k8s-managed']) {
    it(`${target}: every object validates against the API schema; selectors match labels; probes and resources set`, async () => {
      const objects = plan(target)
        .filter((f) => f.path.startsWith('k8s/'))
        .flatMap((f) =>
          (parseAllDocuments(f.content) as unknown as Array<{toJS(): Record<string, any>}>).map((d) => d.toJS()),
        )
      const seen = new Set<string>()
      for (const obj of objects) {
        const key = `${obj.apiVersion}/${obj.kind}`
        seen.add(obj.kind)
        expect(kinds[key], `no validator for ${key}`).toBeDefined()
        const Model = await kinds[key]()
        expect(() => new Model(obj).validate(), `${key} ${obj.metadata?.name}`).not.toThrow()
        const podSpec = obj.kind === 'CronJob' ? obj.spec.jobTemplate.spec.template : obj.spec?.template
        if (obj.spec?.selector?.matchLabels) {
          for (const [k, v] of Object.entries(obj.spec.selector.matchLabels))
            expect(podSpec.metadata.labels[k], `${obj.kind} ${obj.metadata.name} label ${k}`).toBe(v)
        }
        if (obj.kind === 'Deployment' || obj.kind === 'StatefulSet') {
          for (const c of podSpec.spec.containers) {
            expect(c.readinessProbe, `${obj.metadata.name}/${c.name} readiness`).toBeDefined()
            expect(c.livenessProbe, `${obj.metadata.name}/${c.name} liveness`).toBeDefined()
            expect(c.resources?.requests, `${obj.metadata.name}/${c.name} resources`).toBeDefined()
          }
        }
        if (obj.kind === 'CronJob') {
          expect(obj.spec.concurrencyPolicy).toBe('Forbid')
          expect(obj.spec.startingDeadlineSeconds).toBeGreaterThan(0)
          expect(obj.spec.successfulJobsHistoryLimit).toBeGreaterThan(0)
          expect(obj.spec.failedJobsHistoryLimit).toBeGreaterThan(0)
        }
        // Services and NetworkPolicy peers select pods that exist.
        if (obj.kind === 'Service') {
          const pods = objects.filter((o) => o.kind === 'Deployment' || o.kind === 'StatefulSet')
          expect(
            pods.some((p) =>
              Object.entries(obj.spec.selector).every(([k, v]) => p.spec.template.metadata.labels[k] === v),
            ),
            `Service ${obj.metadata.name} selects no pod`,
          ).toBe(true)
        }
      }
      for (const kind of [
        'Namespace',
        'Secret',
        'ConfigMap',
        'Deployment',
        'HorizontalPodAutoscaler',
        'Service',
        'Ingress',
        'NetworkPolicy',
        'CronJob',
        'StatefulSet',
      ])
        expect(seen.has(kind), kind).toBe(true)
      const backup = objects.find((o) => o.kind === 'CronJob' && o.metadata.name === 'charge-ops-backup')!
      expect(backup.spec.jobTemplate.spec.template.spec.containers[0].args.slice(0, 2)).toEqual(['backup', 'all'])
      const creds = backup.spec.jobTemplate.spec.template.spec.containers[0].env.filter((e: any) =>
        e.name.startsWith('AWS_'),
      )
      expect(creds.map((e: any) => e.valueFrom.secretKeyRef.name)).toEqual([
        'charge-analysis-backup-credentials',
        'charge-analysis-backup-credentials',
      ])
      const hpa = objects.find((o) => o.kind === 'HorizontalPodAutoscaler')!
      expect(hpa.spec.metrics.map((m: any) => [m.resource.name, m.resource.target.averageUtilization])).toEqual([
        ['cpu', 60],
        ['memory', 70],
      ])
      const ingress = objects.find((o) => o.kind === 'Ingress')!
      expect(ingress.metadata.annotations['nginx.ingress.kubernetes.io/proxy-body-size']).toBe('100m')
      const statefulSets = objects
        .filter((o) => o.kind === 'StatefulSet')
        .map((o) => o.metadata.name)
        .sort()
      expect(statefulSets).toEqual(target === 'k8s' ? ['chroma', 'postgres', 'redis'] : ['chroma'])
    })
  }
})

describe('postgresql.conf sizing (pgtune web profile)', () => {
  const GB = 1024 ** 3
  const cases = [
    {ram: 4 * GB, cpus: 2, storage: 'hdd' as const, connections: 100},
    {ram: 16 * GB, cpus: 8, storage: 'ssd' as const, connections: 200},
    {ram: 64 * GB, cpus: 16, storage: 'san' as const, connections: 400},
  ]
  for (const c of cases) {
    it(`${c.ram / GB}GB / ${c.cpus} CPUs / ${c.storage}`, () => {
      const t = tunePostgres({
        ramBytes: c.ram,
        cpus: c.cpus,
        storage: c.storage,
        connections: c.connections,
        pgbouncer: false,
      })
      const ramKb = c.ram / 1024
      expect(t.sharedBuffersKb).toBe(ramKb / 4)
      expect(t.effectiveCacheSizeKb).toBe((ramKb * 3) / 4)
      expect(t.maintenanceWorkMemKb).toBe(Math.min(ramKb / 16, 2 * 1024 * 1024))
      const workers = c.cpus >= 4 ? c.cpus : 8
      expect(t.maxWorkerProcesses).toBe(workers)
      expect(t.workMemKb).toBe(Math.max(Math.floor((ramKb - ramKb / 4) / ((c.connections + workers) * 3)), 4096))
      expect(t.walBuffersKb).toBe(
        Math.min(Math.floor((ramKb / 4) * 0.03), 16 * 1024) > 14 * 1024 ? 16 * 1024 : Math.floor((ramKb / 4) * 0.03),
      )
      expect(t.randomPageCost).toBe(c.storage === 'hdd' ? 4 : 1.1)
      expect(t.effectiveIoConcurrency).toBe({hdd: 2, ssd: 200, san: 300}[c.storage])
      expect(t.checkpointCompletionTarget).toBe(0.9)
      expect(t.maxParallelWorkersPerGather).toBe(Math.min(Math.ceil(c.cpus / 2), 4))
    })
  }
  it('the exact values written for 16GB / 8 CPUs / SSD / 200 connections', () => {
    const conf = plan('compose').find((f) => f.path === 'postgres/postgresql.conf')!.content
    const get = (k: string) => new RegExp(`^${k} = ([^\\s#]+)`, 'm').exec(conf)?.[1]
    expect(get('shared_buffers')).toBe('4GB')
    expect(get('effective_cache_size')).toBe('12GB')
    expect(get('maintenance_work_mem')).toBe('1GB')
    expect(get('work_mem')).toBe(formatKb(Math.floor((12 * 1024 * 1024) / ((200 + 8) * 3)))) // 20164kB
    expect(get('wal_buffers')).toBe('16MB')
    expect(get('random_page_cost')).toBe('1.1')
    expect(get('effective_io_concurrency')).toBe('200')
    expect(get('max_connections')).toBe('200')
    expect(get('archive_mode')).toBe('on')
    expect(get('archive_command')).toBe("'charge-ops")
    expect(conf).toContain("archive_command = 'charge-ops wal push %p --config /etc/charge-ops/charge-ops.yaml'")
  })
  it('PgBouncer lowers max_connections to 100 (the guide)', () => {
    expect(
      tunePostgres({ramBytes: 8 * GB, cpus: 2, storage: 'hdd', connections: 500, pgbouncer: true}).maxConnections,
    ).toBe(100)
  })
})

describe('answers', () => {
  const base = {
    target: 'compose',
    domain: 'charge.example.com',
    host: {ram: '16GB', cpus: 4},
    backup: {repository: 's3://bucket/prefix'},
  }
  it('rejects an invalid domain, RAM 0 and a bad repository with every reason at once', () => {
    let message = ''
    try {
      parseAnswers({
        ...base,
        domain: 'https://charge.example.com/',
        host: {ram: 0, cpus: 4},
        backup: {repository: 'bucket'},
      })
    } catch (error) {
      message = (error as Error).message
      expect((error as {exitCode: number}).exitCode).toBe(2)
    }
    // given as flags, each answer is named by its flag
    expect(message).toMatch(/--domain: must be a host name without a scheme/)
    expect(message).toMatch(/--ram: must be greater than 0/)
    expect(message).toMatch(/--repo: must be s3:\/\/BUCKET\/PREFIX/)
  })
  it('names a missing answer as the flag that gives it, never as a schema path', () => {
    expect(() =>
      parseAnswers({target: 'compose', host: {ram: '1GB', cpus: 1}, backup: {repository: '/backups'}}),
    ).toThrow(/^invalid answers \(flags\):\n {2}--domain is required$/)
    expect(() => parseAnswers({domain: 'charge.example.com'})).toThrow(
      /--target is required[\s\S]*--ram is required[\s\S]*--cpus is required[\s\S]*--repo is required/,
    )
    // a local repository directory is an answer (compose, local); k8s pods share none
    expect(parseAnswers({...base, backup: {repository: '/backups'}}).backup.repository).toBe('/backups')
    expect(() => parseAnswers({...base, target: 'k8s', backup: {repository: '/backups'}})).toThrow(
      /--repo: must be s3:\/\/BUCKET\/PREFIX for k8s/,
    )
  })
  it('accepts the minimal answers with defaults', () => {
    const a = parseAnswers(base)
    expect(a.host.ram).toBe(16 * 1024 ** 3)
    expect(a.environment).toBe('production')
    expect(a.host.connections).toBe(200)
  })
  it('an answers file with a typo names the line', () => {
    expect(() => parseAnswersFile('target: compose\ndomian: x.example.com\n', 'a.yaml')).toThrow(
      /a\.yaml:2: unknown key "domian"/,
    )
  })
})

describe('applyPlan reruns', () => {
  it('unchanged files are left alone; a local edit is shown as a diff and not overwritten without --force; secrets are reused', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'init-rerun-'))
    const answers = load('compose')
    const first = resolveSecrets(dir)
    await applyPlan(planInit(answers, {secrets: first.secrets, installDir: dir}), dir)
    expect(statSync(join(dir, '.env')).mode & 0o777).toBe(0o600)
    const again = resolveSecrets(dir)
    expect(again.secrets).toEqual(first.secrets)
    expect(again.reused.sort()).toEqual([
      'appDbPassword',
      'migratorDbPassword',
      'postgresPassword',
      'redisPassword',
      'secretKey',
    ])
    const second = await applyPlan(planInit(answers, {secrets: again.secrets, installDir: dir}), dir)
    expect(second.files.every((f) => f.action === 'unchanged')).toBe(true)

    const nginx = join(dir, 'nginx', 'nginx.conf')
    const edited = readFileSync(nginx, 'utf8').replace('client_max_body_size 100m;', 'client_max_body_size 500m;')
    writeFileSync(nginx, edited)
    const plan3 = planInit(answers, {secrets: again.secrets, installDir: dir})
    await expect(applyPlan(plan3, dir)).rejects.toMatchObject({code: 'WOULD_OVERWRITE', exitCode: 2})
    expect(readFileSync(nginx, 'utf8')).toBe(edited)
    const dry = await applyPlan(plan3, dir, {dryRun: true})
    const changed = dry.files.find((f) => f.path === 'nginx/nginx.conf')!
    expect(changed.action).toBe('update')
    expect(changed.diff).toContain('-client_max_body_size 500m;')
    expect(changed.diff).toContain('+client_max_body_size 100m;')
    // interactively declined: kept
    const kept = await applyPlan(plan3, dir, {confirm: async () => false})
    expect(kept.files.find((f) => f.path === 'nginx/nginx.conf')!.action).toBe('kept')
    expect(readFileSync(nginx, 'utf8')).toBe(edited)
    await applyPlan(plan3, dir, {force: true})
    expect(readFileSync(nginx, 'utf8')).toContain('client_max_body_size 100m;')
    expect(readExistingSecrets(dir).secretKey).toBe(first.secrets.secretKey)
  })
})
