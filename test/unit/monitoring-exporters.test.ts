/**
 * The exporters init writes for compose and k8s, held against what `charge-ops monitoring` scrapes
 * (service names and ports) and against least privilege: postgres_exporter logs in as the
 * pg_monitor-only role, every password reaches the exporters by environment from a 0600 file or a
 * Secret — never in docker-compose.yml, a Deployment's literal env, or argv. The compose
 * node-exporter reads the folder the compose form of the scheduled jobs writes (checked on the file
 * as `docker compose config` resolves it), and Debian's node_exporter accepts its command line and
 * exposes a real backup textfile with it.
 */
import {mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync} from 'node:fs'
import {tmpdir} from 'node:os'
import {dirname, join} from 'node:path'

import {parse, parseAllDocuments, parseDocument} from 'yaml'
import {afterAll, describe, expect, it} from 'vitest'

import {successMetrics, updateMetricsFile} from '../../src/backup/metrics.js'
import {chargeOpsYamlSchema} from '../../src/config/schema.js'
import {planSchedule} from '../../src/schedule/plan.js'
import {requireBinary, runUnchecked, startDaemon} from '../support/index.js'

import {parseAnswers, parseAnswersFile} from '../../src/install/answers.js'
import {MONITOR_ROLE, monitorPassword} from '../../src/install/monitoring-role.js'
import {planInit} from '../../src/install/plan.js'
import type {InitSecrets} from '../../src/install/secrets.js'
import {defaultTargets} from '../../src/monitoring/scrape.js'

const FIXTURES = join(import.meta.dirname, '..', 'fixtures', 'init')
const SECRETS: InitSecrets = {
  secretKey: 'k'.repeat(64),
  postgresPassword: 'p'.repeat(48),
  appDbPassword: 'a'.repeat(48),
  migratorDbPassword: 'm'.repeat(48),
  redisPassword: 'r'.repeat(48),
}
const MONITOR_PASSWORD = monitorPassword(SECRETS.postgresPassword)
const plan = (name: string) => {
  const file = join(FIXTURES, `answers-${name}.yaml`)
  return planInit(parseAnswers(parseAnswersFile(readFileSync(file, 'utf8'), file), file), {
    secrets: SECRETS,
    installDir: '/srv/charge',
    opsVersion: '0.1.0',
  })
}
type Obj = Record<string, any>

describe('exporters in the compose file', () => {
  const files = plan('compose')
  const byPath = new Map(files.map((f) => [f.path, f]))
  const compose = parseDocument(byPath.get('docker-compose.yml')!.content).toJS() as Obj

  it('run under the monitoring profile, at the names and ports `charge-ops monitoring --target compose` scrapes', () => {
    const targets = defaultTargets('compose', {})
    for (const [name, target, port] of [
      ['postgres-exporter', targets.postgresExporter, '9187'],
      ['redis-exporter', targets.redisExporter, '9121'],
    ]) {
      const svc = compose.services[name]
      expect(svc, name).toBeDefined()
      expect(svc.profiles).toEqual(['monitoring'])
      expect(target).toBe(`${name}:${port}`)
      expect(svc.command.join(' ')).toContain(`:${port}`)
      expect(svc.user).toBe('65534:65534')
      expect(svc.healthcheck.test).toBeDefined()
      expect(svc.ports, `${name} is not published`).toBeUndefined()
    }
    expect(compose.services['postgres-exporter'].image).toBe(compose.services.postgres.image)
    expect(compose.services['redis-exporter'].image).toBe(compose.services.redis.image)
    expect(compose.services['postgres-exporter'].environment.DATA_SOURCE_USER).toBe(MONITOR_ROLE)
  })

  it('postgres_exporter logs in as the pg_monitor role created at first start; passwords only in 0600 env files', () => {
    expect(compose.services.postgres.volumes).toContain(
      './postgres/monitoring.sql:/docker-entrypoint-initdb.d/20-monitoring.sql:ro',
    )
    const sql = byPath.get('postgres/monitoring.sql')!.content
    expect(sql).toContain(`GRANT pg_monitor TO "${MONITOR_ROLE}";`)
    expect(sql).toMatch(/NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION/)
    expect(byPath.get('postgres.env')!.content).toContain(`CHARGE_MONITOR_DB_PASSWORD=${MONITOR_PASSWORD}\n`)
    expect(byPath.get('exporters/postgres.env')!.content).toContain(`DATA_SOURCE_PASS=${MONITOR_PASSWORD}\n`)
    expect(byPath.get('exporters/redis.env')!.content).toContain(`REDIS_PASSWORD=${SECRETS.redisPassword}\n`)
    expect(compose.services['postgres-exporter'].env_file).toEqual([{path: 'exporters/postgres.env'}])
    expect(compose.services['redis-exporter'].env_file).toEqual([{path: 'exporters/redis.env'}])
    for (const f of files) {
      if (f.content.includes(MONITOR_PASSWORD)) expect([f.path, f.mode]).toEqual([f.path, 0o600])
    }
    expect(
      files
        .filter((f) => f.content.includes(MONITOR_PASSWORD))
        .map((f) => f.path)
        .sort(),
    ).toEqual(['exporters/postgres.env', 'postgres.env'])
  })
})

describe('node-exporter in the compose file reads what the scheduled jobs write', () => {
  const dir = mkdtempSync(join(tmpdir(), 'charge-ops-node-exporter-'))
  afterAll(() => rmSync(dir, {recursive: true, force: true}))
  const file = join(FIXTURES, 'answers-compose.yaml')
  const files = planInit(parseAnswers(parseAnswersFile(readFileSync(file, 'utf8'), file), file), {
    secrets: SECRETS,
    installDir: dir,
    opsVersion: '0.1.0',
  })
  for (const f of files) {
    mkdirSync(dirname(join(dir, f.path)), {recursive: true})
    writeFileSync(join(dir, f.path), f.content, {mode: f.mode})
  }
  /** the compose file as Compose itself resolves it (relative paths, profiles, interpolation) */
  let resolved: Obj
  const textfileFlag = (svc: Obj) =>
    (svc.command as string[]).find((a) => a.startsWith('--collector.textfile.directory='))!.split('=')[1]!

  it('docker compose config accepts the file; node-exporter is a monitoring-profile service of the redis image, at the name and port `--target compose` scrapes', async () => {
    const docker = requireBinary('docker', 'apt-get install -y docker.io (scripts/install-system-deps)')
    const r = await runUnchecked(
      docker,
      ['compose', '--profile', 'monitoring', '--profile', 'ops', 'config', '--format', 'json'],
      {cwd: dir, env: {PATH: process.env.PATH ?? '', HOME: dir}, timeoutMs: 30_000},
    )
    expect(r.code, r.stderr).toBe(0)
    resolved = JSON.parse(r.stdout) as Obj
    const svc = resolved.services['node-exporter']
    expect(svc.profiles).toEqual(['monitoring'])
    expect(svc.image).toBe(resolved.services.redis.image)
    expect(svc.user).toBe('65534:65534')
    expect(svc.ports, 'node-exporter is not published').toBeUndefined()
    expect(defaultTargets('compose', {}).nodeExporter).toBe('node-exporter:9100')
    expect(svc.command).toContain('--web.listen-address=:9100')
    expect(svc.command).toContain('--collector.textfile')
    // every mount read-only
    expect((svc.volumes as Obj[]).every((v) => v.read_only === true)).toBe(true)
  })

  it('the compose form of every job with a textfile writes into the host folder mounted as its textfile directory', () => {
    const svc = resolved.services['node-exporter']
    const mount = (svc.volumes as Obj[]).find((v) => v.target === textfileFlag(svc))!
    expect(mount.type).toBe('bind')
    expect(mount.source).toBe(join(dir, 'data', 'textfiles'))
    const yaml = chargeOpsYamlSchema.parse(parse(readFileSync(join(dir, 'charge-ops.yaml'), 'utf8')))
    const schedule = planSchedule('cron', {
      settings: {yaml, baseDir: dir, configPath: join(dir, 'charge-ops.yaml'), stack: yaml.stack},
      dir: join(dir, 'schedule'),
    })
    expect(schedule.find((f) => f.path === 'charge-ops-job')!.content).toContain(
      ` run --rm --no-deps -T -v ${mount.source}:${mount.source} ops "$@"`,
    )
    const lines = schedule
      .find((f) => f.path === 'charge-ops.cron')!
      .content.split('\n')
      .filter((l) => /^[0-9*]/.test(l))
    const written = lines.flatMap((l) => [...l.matchAll(/(?:--metrics-file|--output) (\S+)/g)].map((m) => m[1]!))
    // backup-base (init's compose postgresql.conf archives WAL), db, files, verify, capacity
    expect(written.map((p) => p.slice(p.lastIndexOf('/') + 1)).sort()).toEqual([
      'charge_ops_backup_base.prom',
      'charge_ops_backup_db.prom',
      'charge_ops_backup_files.prom',
      'charge_ops_capacity.prom',
      'charge_ops_verify.prom',
    ])
    for (const path of written) expect(dirname(path)).toBe(mount.source)
  })

  it("Debian's node_exporter runs with the service's command and exposes a backup textfile; the container's own mounts are left out", async () => {
    const svc = resolved.services['node-exporter']
    const textfiles = join(dir, 'data', 'textfiles')
    mkdirSync(textfiles, {recursive: true})
    await updateMetricsFile(
      join(textfiles, 'charge_ops_backup_db.prom'),
      successMetrics('charge', 'db', new Date(1_700_000_000_000), 1234, 5678),
    )
    // the same flags; only the listen address (a free loopback port) and the folder (the host path of the mount) differ
    const args = (svc.command as string[]).map((a) =>
      a.startsWith('--collector.textfile.directory=') ? `--collector.textfile.directory=${textfiles}` : a,
    )
    const exporter = await startDaemon({
      name: 'node_exporter',
      bin: svc.entrypoint[0],
      args: (port) => [
        ...args.filter((a) => !a.startsWith('--web.listen-address=')),
        `--web.listen-address=127.0.0.1:${port}`,
      ],
    })
    try {
      const text = await (await fetch(`${exporter.url}/metrics`)).text()
      expect(text).toContain('charge_ops_backup_last_success_timestamp_seconds{kind="db",stack="charge"} 1.7e+09')
      expect(text).toMatch(/^node_textfile_scrape_error 0$/m)
      const mountpoints = [...text.matchAll(/^node_filesystem_avail_bytes\{[^}]*mountpoint="([^"]+)"/gm)].map(
        (m) => m[1]!,
      )
      expect(mountpoints.filter((m) => /^\/(dev|proc|run|sys|mnt|media|etc)\b/.test(m))).toEqual([])
      // the default collectors are off: no CPU / memory of whatever host runs the container
      expect(text).not.toMatch(/^node_cpu_seconds_total/m)
    } finally {
      await exporter.stop()
    }
  })
})

describe("local: the jobs' textfiles go where Debian's node_exporter looks", () => {
  it("init's systemd jobs write into the textfile folder Debian's node_exporter reads by default, which --target local scrapes on its default port", async () => {
    const help = await runUnchecked(
      requireBinary('prometheus-node-exporter', 'apt-get install -y prometheus-node-exporter'),
      ['--help'],
      {timeoutMs: 10_000},
    )
    const text = `${help.stdout}${help.stderr}`
    const folder = /--collector\.textfile\.directory="([^"]+)"/.exec(text)?.[1]
    const port = /--web\.listen-address=:(\d+)/.exec(text)?.[1]
    expect(folder, text).toBeDefined()
    expect(defaultTargets('local', {}).nodeExporter).toBe(`127.0.0.1:${port}`)
    const written = plan('local')
      .filter((f) => f.path.endsWith('.service'))
      .flatMap((f) => [...f.content.matchAll(/(?:--metrics-file|--output) (\S+)/g)].map((m) => m[1]!))
    expect(written.length).toBe(4) // backup-db, backup-files, verify, capacity
    for (const path of written) expect(dirname(path)).toBe(folder)
  })
})

describe('exporters in the Kubernetes manifests', () => {
  const files = plan('k8s')
  const objects = files
    .filter((f) => f.path.startsWith('k8s/'))
    .flatMap((f) => parseAllDocuments(f.content).map((d) => d.toJS() as Obj))
  const find = (kind: string, name: string) => objects.find((o) => o.kind === kind && o.metadata.name === name)

  it('Services at the names `charge-ops monitoring --target k8s` scrapes, a headless one for every API pod', () => {
    const ns = find('Namespace', 'charge')!.metadata.name
    const targets = defaultTargets('k8s', {namespace: ns})
    for (const [name, target] of [
      ['postgres-exporter', targets.postgresExporter],
      ['redis-exporter', targets.redisExporter],
    ]) {
      const svc = find('Service', name)!
      expect(`${svc.metadata.name}.${ns}.svc:${svc.spec.ports[0].port}`).toBe(target)
      expect(find('Deployment', name)!.spec.template.spec.securityContext.runAsNonRoot).toBe(true)
    }
    // the Pushgateway the CronJobs push to (charge-ops.yaml metrics.pushgatewayUrl) is the one scraped
    const pg = find('Service', 'pushgateway')!
    expect(`${pg.metadata.name}.${ns}.svc:${pg.spec.ports[0].port}`).toBe(targets.pushgateway)
    expect(files.find((f) => f.path === 'charge-ops.yaml')!.content).toContain(
      `pushgatewayUrl: http://${targets.pushgateway}\n`,
    )
    expect(find('Deployment', 'pushgateway')!.spec.template.spec.containers[0].command).toContain(
      '--persistence.file=/data/pushgateway.db',
    )
    const headless = find('Service', 'backend-metrics')!
    expect(headless.spec.clusterIP).toBe('None')
    expect(headless.spec.selector).toEqual(find('Deployment', 'backend')!.spec.selector.matchLabels)
  })

  it('passwords from the Secrets by secretKeyRef; the role SQL runs at the first start', () => {
    const env = (name: string) =>
      Object.fromEntries(
        find('Deployment', name)!.spec.template.spec.containers[0].env.map((e: Obj) => [
          e.name,
          e.value ?? e.valueFrom.secretKeyRef,
        ]),
      )
    expect(env('postgres-exporter')).toMatchObject({
      DATA_SOURCE_USER: MONITOR_ROLE,
      DATA_SOURCE_PASS: {name: 'charge-analysis-postgres', key: 'CHARGE_MONITOR_DB_PASSWORD'},
    })
    expect(env('redis-exporter')).toMatchObject({
      REDIS_PASSWORD: {name: 'charge-analysis-redis', key: 'REDIS_PASSWORD'},
    })
    expect(find('Secret', 'charge-analysis-postgres')!.stringData.CHARGE_MONITOR_DB_PASSWORD).toBe(MONITOR_PASSWORD)
    const mounts = find('StatefulSet', 'postgres')!.spec.template.spec.containers[0].volumeMounts
    expect(mounts).toContainEqual({
      name: 'config',
      mountPath: '/docker-entrypoint-initdb.d/20-monitoring.sql',
      subPath: 'monitoring.sql',
    })
    expect(find('ConfigMap', 'charge-analysis-postgres')!.data['monitoring.sql']).toContain('GRANT pg_monitor')
    expect(files.filter((f) => f.content.includes(MONITOR_PASSWORD)).map((f) => f.path)).toEqual(['k8s/secret.yaml'])
  })

  it('managed PostgreSQL / Redis: no exporters (nothing to run them against in the cluster), the headless API Service stays', () => {
    const managed = plan('k8s-managed')
      .filter((f) => f.path.startsWith('k8s/'))
      .flatMap((f) => parseAllDocuments(f.content).map((d) => d.toJS() as Obj))
    expect(managed.filter((o) => o.kind === 'Deployment').map((o) => o.metadata.name)).not.toContain(
      'postgres-exporter',
    )
    expect(managed.some((o) => o.kind === 'Service' && o.metadata.name === 'backend-metrics')).toBe(true)
  })
})
