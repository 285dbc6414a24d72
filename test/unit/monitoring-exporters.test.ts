/**
 * The exporters init writes for compose and k8s, held against what `charge-ops monitoring` scrapes
 * (service names and ports) and against least privilege: postgres_exporter logs in as the
 * pg_monitor-only role, every password reaches the exporters by environment from a 0600 file or a
 * Secret — never in docker-compose.yml, a Deployment's literal env, or argv.
 */
import {readFileSync} from 'node:fs'
import {join} from 'node:path'

import {parseAllDocuments, parseDocument} from 'yaml'
import {describe, expect, it} from 'vitest'

import {parseAnswers, parseAnswersFile} from '../../src/install/answers.js'
import {MONITOR_ROLE, monitorPassword} from '../../src/install/monitoring-role.js'
import {planInit} from '../../src/install/plan.js'
import type {InitSecrets} from '../../src/install/secrets.js'
import {defaultTargets} from '../../src/monitoring/scrape.js'

const FIXTURES = join(import.meta.dirname, '..', 'fixtures', 'init')
const SECRETS: InitSecrets = {secretKey: 'k'.repeat(64), postgresPassword: 'p'.repeat(48), appDbPassword: 'a'.repeat(48), migratorDbPassword: 'm'.repeat(48), redisPassword: 'r'.repeat(48)}
const MONITOR_PASSWORD = monitorPassword(SECRETS.postgresPassword)
const plan = (name: string) => {
  const file = join(FIXTURES, `answers-${name}.yaml`)
  return planInit(parseAnswers(parseAnswersFile(readFileSync(file, 'utf8'), file), file), {secrets: SECRETS, installDir: '/srv/charge', opsVersion: '0.1.0'})
}
type Obj = Record<string, any>

describe('exporters in the compose file', () => {
  const files = plan('compose')
  const byPath = new Map(files.map((f) => [f.path, f]))
  const compose = parseDocument(byPath.get('docker-compose.yml')!.content).toJS() as Obj

  it('run under the monitoring profile, at the names and ports `charge-ops monitoring --target compose` scrapes', () => {
    const targets = defaultTargets('compose', {})
    for (const [name, target, port] of [['postgres-exporter', targets.postgresExporter, '9187'], ['redis-exporter', targets.redisExporter, '9121']]) {
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
    expect(compose.services.postgres.volumes).toContain('./postgres/monitoring.sql:/docker-entrypoint-initdb.d/20-monitoring.sql:ro')
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
    expect(files.filter((f) => f.content.includes(MONITOR_PASSWORD)).map((f) => f.path).sort()).toEqual(['exporters/postgres.env', 'postgres.env'])
  })
})

describe('exporters in the Kubernetes manifests', () => {
  const files = plan('k8s')
  const objects = files.filter((f) => f.path.startsWith('k8s/')).flatMap((f) => parseAllDocuments(f.content).map((d) => d.toJS() as Obj))
  const find = (kind: string, name: string) => objects.find((o) => o.kind === kind && o.metadata.name === name)

  it('Services at the names `charge-ops monitoring --target k8s` scrapes, a headless one for every API pod', () => {
    const ns = find('Namespace', 'charge')!.metadata.name
    const targets = defaultTargets('k8s', {namespace: ns})
    for (const [name, target] of [['postgres-exporter', targets.postgresExporter], ['redis-exporter', targets.redisExporter]]) {
      const svc = find('Service', name)!
      expect(`${svc.metadata.name}.${ns}.svc:${svc.spec.ports[0].port}`).toBe(target)
      expect(find('Deployment', name)!.spec.template.spec.securityContext.runAsNonRoot).toBe(true)
    }
    // the Pushgateway the CronJobs push to (charge-ops.yaml metrics.pushgatewayUrl) is the one scraped
    const pg = find('Service', 'pushgateway')!
    expect(`${pg.metadata.name}.${ns}.svc:${pg.spec.ports[0].port}`).toBe(targets.pushgateway)
    expect(files.find((f) => f.path === 'charge-ops.yaml')!.content).toContain(`pushgatewayUrl: http://${targets.pushgateway}\n`)
    expect(find('Deployment', 'pushgateway')!.spec.template.spec.containers[0].command).toContain('--persistence.file=/data/pushgateway.db')
    const headless = find('Service', 'backend-metrics')!
    expect(headless.spec.clusterIP).toBe('None')
    expect(headless.spec.selector).toEqual(find('Deployment', 'backend')!.spec.selector.matchLabels)
  })

  it('passwords from the Secrets by secretKeyRef; the role SQL runs at the first start', () => {
    const env = (name: string) => Object.fromEntries(find('Deployment', name)!.spec.template.spec.containers[0].env.map((e: Obj) => [e.name, e.value ?? e.valueFrom.secretKeyRef]))
    expect(env('postgres-exporter')).toMatchObject({DATA_SOURCE_USER: MONITOR_ROLE, DATA_SOURCE_PASS: {name: 'charge-analysis-postgres', key: 'CHARGE_MONITOR_DB_PASSWORD'}})
    expect(env('redis-exporter')).toMatchObject({REDIS_PASSWORD: {name: 'charge-analysis-redis', key: 'REDIS_PASSWORD'}})
    expect(find('Secret', 'charge-analysis-postgres')!.stringData.CHARGE_MONITOR_DB_PASSWORD).toBe(MONITOR_PASSWORD)
    const mounts = find('StatefulSet', 'postgres')!.spec.template.spec.containers[0].volumeMounts
    expect(mounts).toContainEqual({name: 'config', mountPath: '/docker-entrypoint-initdb.d/20-monitoring.sql', subPath: 'monitoring.sql'})
    expect(find('ConfigMap', 'charge-analysis-postgres')!.data['monitoring.sql']).toContain('GRANT pg_monitor')
    expect(files.filter((f) => f.content.includes(MONITOR_PASSWORD)).map((f) => f.path)).toEqual(['k8s/secret.yaml'])
  })

  it('managed PostgreSQL / Redis: no exporters (nothing to run them against in the cluster), the headless API Service stays', () => {
    const managed = plan('k8s-managed').filter((f) => f.path.startsWith('k8s/')).flatMap((f) => parseAllDocuments(f.content).map((d) => d.toJS() as Obj))
    expect(managed.filter((o) => o.kind === 'Deployment').map((o) => o.metadata.name)).not.toContain('postgres-exporter')
    expect(managed.some((o) => o.kind === 'Service' && o.metadata.name === 'backend-metrics')).toBe(true)
  })
})
