/**
 * planInit: answers (+ secrets) → the exact files init writes, with their modes. Pure and
 * deterministic (no clock, no randomness, no file system except reading templates/), which is
 * what makes the snapshot tests and the "rerun changes nothing" guarantee possible.
 */
import {stringify} from 'yaml'

import {chargeOpsYamlSchema} from '../config/schema.js'
import {resolveJobs, schedulesYaml} from '../schedule/jobs.js'
import {DEFAULT_HOST_PATHS, renderSystemd} from '../schedule/render.js'
import {UsageError} from '../errors.js'
import {namesFor, type Answers} from './answers.js'
import type {PlannedFile} from '../core/fs/file-plan.js'
import {planKubernetes, PUSHGATEWAY_SERVICE} from './k8s.js'
import {buildMonitoringRoleSql, MONITOR_ROLE, monitorPassword} from './monitoring-role.js'
import {formatKb, tunePostgres} from './pgtune.js'
import {buildRolesSql} from './roles-sql.js'
import type {InitSecrets, RepositoryCredentials} from './secrets.js'
import {renderTemplateFile, type View} from './template.js'
import {composeImageRef, WORKER_PROBE} from '../topology/index.js'

export interface PlanOptions {
  secrets: InitSecrets
  /** the absolute directory the files will live in on the target host (paths inside units, cron) */
  installDir: string
  credentials?: RepositoryCredentials
  /** the charge-ops version the postgres image installs */
  opsVersion?: string
}

const SECRET = 0o600
const PUBLIC = 0o644

export function planInit(answers: Answers, options: PlanOptions): PlannedFile[] {
  if (answers.target === 'k8s' && answers.pgbouncer) {
    throw new UsageError('PgBouncer is not generated for the k8s target yet', {code: 'INVALID_ANSWERS', hint: 'Answer pgbouncer: false for k8s (use your managed service\'s pooler, or run PgBouncer from its Helm chart). Nothing was written.'})
  }
  const {secrets} = options
  const names = namesFor(answers)
  const managed = answers.managed
  const target = answers.target
  const dataDir = answers.dataDir
  const files: PlannedFile[] = []
  const add = (path: string, content: string, mode = PUBLIC) => files.push({path, content, mode})

  // ---- where the backend reaches each service: loopback (local), service names (compose),
  // cluster DNS (k8s) or the managed endpoints. Anything not on loopback requires TLS.
  const pgHostLocal = target === 'k8s' ? `postgres.${names.namespace}.svc.cluster.local` : target === 'compose' ? 'postgres' : '127.0.0.1'
  const pgHost = managed ? managed.databaseHost.replace(/:\d+$/, '') : pgHostLocal
  const pgPort = managed ? (/:(\d+)$/.exec(managed.databaseHost)?.[1] ?? '5432') : '5432'
  const sslQuery = target === 'local' && !managed ? '' : '?sslmode=require'
  const pgUrl = (role: string, password: string, host: string, port: string, query: string) => `postgresql://${role}:${password}@${host}:${port}/${names.database}${query}`
  const bouncer = answers.pgbouncer ? (target === 'compose' ? {host: 'pgbouncer', query: ''} : {host: '127.0.0.1', query: ''}) : undefined
  const databaseUrl = bouncer ? pgUrl(names.appRole, secrets.appDbPassword, bouncer.host, '6432', bouncer.query) : pgUrl(names.appRole, secrets.appDbPassword, pgHost, pgPort, sslQuery)
  const migrationDatabaseUrl = pgUrl(names.migratorRole, secrets.migratorDbPassword, pgHost, pgPort, sslQuery)
  const redisHost = managed ? managed.redisHost : target === 'k8s' ? `redis.${names.namespace}.svc.cluster.local:6379` : target === 'compose' ? 'redis:6379' : '127.0.0.1:6379'
  const redisUrl = `${managed ? 'rediss' : 'redis'}://:${secrets.redisPassword}@${redisHost}/0`
  // compose follows the guide: Chroma embedded in the backend (CHROMA_PERSIST_DIRECTORY on a volume)
  const chromaUrl = target === 'k8s' ? `http://chroma.${names.namespace}.svc.cluster.local:8000` : target === 'local' ? 'http://127.0.0.1:8001' : 'http://chroma:8000'
  // compose: the superuser connection the restore drill and the rehearsal need (CREATE DATABASE);
  // elsewhere the operator provides CHARGE_OPS_ADMIN_URL (a managed service's admin role is theirs).
  const adminUrl = target === 'compose' && !managed ? `postgresql://postgres:${secrets.postgresPassword}@postgres:5432/postgres?sslmode=require` : ''
  const imagesVersion = answers.images.version ?? options.opsVersion ?? '0.1.0'
  const localRepo = answers.backup.repository.startsWith('/')

  const envView: View = {
    environment: answers.environment,
    backendHost: target === 'local' ? '127.0.0.1' : '0.0.0.0',
    databaseUrl,
    migrationDatabaseUrl,
    redisUrl,
    secretKey: secrets.secretKey,
    chromaUrl,
    // compose: Chroma is its own service; the ops container and the host find its folder through the compose file / charge-ops.yaml
    chromaDir: target === 'k8s' ? '/data' : target === 'compose' ? '' : `${dataDir}/chromadb_data`,
    adminUrl,
    imagesVersion: target === 'compose' ? imagesVersion : '',
    uploadsDir: target === 'local' ? `${dataDir}/uploads` : '/app/uploads',
    domain: answers.domain,
  }
  add('.env', renderTemplateFile('env/backend.env', envView), SECRET)
  add('.env.production', renderTemplateFile('env/frontend.env', {domain: answers.domain}))
  const chargeOpsYaml = renderChargeOpsYaml(answers, options.installDir)
  add('charge-ops.yaml', chargeOpsYaml)

  // ---- PostgreSQL
  const tuning = tunePostgres({ramBytes: answers.host.ram, cpus: answers.host.cpus, storage: answers.host.storage, connections: answers.host.connections, pgbouncer: answers.pgbouncer})
  const opsConfigPath = target === 'local' ? `${options.installDir}/charge-ops.yaml` : '/etc/charge-ops/charge-ops.yaml'
  const postgresqlConf = managed
    ? undefined
    : renderTemplateFile('postgres/postgresql.conf', {
        ramText: formatKb(Math.floor(answers.host.ram / 1024)),
        cpus: answers.host.cpus,
        storage: answers.host.storage.toUpperCase(),
        connections: answers.host.connections,
        pgbouncer: answers.pgbouncer,
        listenAddresses: target === 'local' ? 'localhost' : '*',
        maxConnections: tuning.maxConnections,
        sslCertFile: '/etc/ssl/certs/ssl-cert-snakeoil.pem',
        sslKeyFile: '/etc/ssl/private/ssl-cert-snakeoil.key',
        sharedBuffers: formatKb(tuning.sharedBuffersKb),
        effectiveCacheSize: formatKb(tuning.effectiveCacheSizeKb),
        maintenanceWorkMem: formatKb(tuning.maintenanceWorkMemKb),
        workMem: formatKb(tuning.workMemKb),
        walBuffers: formatKb(tuning.walBuffersKb),
        minWalSize: formatKb(tuning.minWalSizeMb * 1024),
        maxWalSize: formatKb(tuning.maxWalSizeMb * 1024),
        randomPageCost: tuning.randomPageCost,
        effectiveIoConcurrency: tuning.effectiveIoConcurrency,
        maxWorkerProcesses: tuning.maxWorkerProcesses,
        maxParallelWorkersPerGather: tuning.maxParallelWorkersPerGather,
        maxParallelWorkers: tuning.maxParallelWorkers,
        maxParallelMaintenanceWorkers: tuning.maxParallelMaintenanceWorkers,
        archiveCommand: `charge-ops wal push %p --config ${opsConfigPath}${options.credentials && target === 'local' ? ` --aws-env-file ${options.installDir}/backup.env` : ''}`,
      })
  const bootstrapSql = buildRolesSql({database: names.database, appRole: names.appRole, migratorRole: names.migratorRole, readonlyRole: names.readonlyRole})
  const monitorDbPassword = monitorPassword(secrets.postgresPassword)
  const monitoringSql = buildMonitoringRoleSql()
  const postgresEnv = renderTemplateFile('env/postgres.env', {postgresPassword: secrets.postgresPassword, appDbPassword: secrets.appDbPassword, migratorDbPassword: secrets.migratorDbPassword, monitorDbPassword})
  const redisMaxmemoryMb = Math.max(256, Math.min(1024, Math.floor(answers.host.ram / 1024 ** 2 / 8)))
  const redisConf = managed
    ? undefined
    : renderTemplateFile('redis/redis.conf', {
        redisBind: target === 'local' ? '127.0.0.1 -::1' : '0.0.0.0',
        redisBindText: target === 'local' ? 'the loopback interface' : 'the container network (the port is published on 127.0.0.1 only)',
        redisPassword: secrets.redisPassword,
        redisMaxmemory: `${redisMaxmemoryMb}mb`,
        redisDir: target === 'local' ? '/var/lib/redis' : '/data',
      })

  if (options.credentials && target !== 'k8s') {
    add('backup.env', `# Backup repository credentials — generated by charge-ops init. Mode 0600.\nAWS_ACCESS_KEY_ID=${options.credentials.accessKeyId}\nAWS_SECRET_ACCESS_KEY=${options.credentials.secretAccessKey}\n`, SECRET)
  }

  if (target === 'k8s') {
    files.push(
      ...planKubernetes({answers, secrets, env: {databaseUrl, migrationDatabaseUrl, redisUrl, chromaUrl}, files: {postgresqlConf, redisConf, bootstrapSql, monitoringSql, chargeOpsYaml}, credentials: options.credentials, version: imagesVersion}),
    )
    add('postgres/bootstrap.sql', bootstrapSql)
    add('postgres/monitoring.sql', monitoringSql)
    return files
  }

  add('postgres.env', postgresEnv, SECRET)
  add('postgres/bootstrap.sql', bootstrapSql)
  add('postgres/monitoring.sql', monitoringSql)
  if (postgresqlConf) add(target === 'local' ? 'postgres/charge-ops.conf' : 'postgres/postgresql.conf', postgresqlConf)
  if (redisConf) files.push({path: 'redis/redis.conf', content: redisConf, mode: SECRET, ...(target === 'compose' ? {owner: REDIS_CONTAINER_OWNER} : {})})
  add(
    'nginx/nginx.conf',
    renderTemplateFile('nginx/nginx.conf', {
      domain: answers.domain,
      sslDir: target === 'compose' ? '/etc/nginx/ssl' : `/etc/letsencrypt/live/${answers.domain}`,
      backendUpstream: target === 'compose' ? 'backend:8000' : '127.0.0.1:8000',
      frontendUpstream: 'frontend:80',
      // compose: the nginx image serves the web UI's built files itself (images/nginx)
      frontendRoot: target === 'local' ? '/var/www/charge-analysis' : '/usr/share/nginx/html',
    }),
  )
  if (answers.pgbouncer) {
    add(
      'pgbouncer/pgbouncer.ini',
      renderTemplateFile('pgbouncer/pgbouncer.ini', {
        database: names.database,
        postgresHost: managed ? pgHost : target === 'compose' ? 'postgres' : '127.0.0.1',
        pgbouncerListen: target === 'compose' ? '0.0.0.0' : '127.0.0.1',
        pgbouncerAuthFile: '/etc/pgbouncer/userlist.txt',
        maxClientConn: Math.max(1000, answers.host.connections),
      }),
    )
    add('pgbouncer/userlist.txt', renderTemplateFile('pgbouncer/userlist.txt', {appRole: names.appRole, appDbPassword: secrets.appDbPassword}), SECRET)
  }

  if (target === 'compose') {
    if (!managed) {
      add('redis.env', renderTemplateFile('env/redis.env', {redisPassword: secrets.redisPassword}), SECRET)
      // the exporters' passwords by environment (the exporters read them there), one file each
      add('exporters/postgres.env', `# postgres_exporter's password (role ${MONITOR_ROLE}, pg_monitor only) — generated by charge-ops init. Mode 0600.\nDATA_SOURCE_PASS=${monitorDbPassword}\n`, SECRET)
      add('exporters/redis.env', `# redis_exporter's password — generated by charge-ops init. Mode 0600.\nREDIS_PASSWORD=${secrets.redisPassword}\n`, SECRET)
    }
    const prefix = answers.images.prefix
    const ports = answers.compose.ports
    add(
      'docker-compose.yml',
      renderTemplateFile('compose/docker-compose.yml', {
        domain: answers.domain,
        project: answers.stack,
        managed: Boolean(managed),
        pgbouncer: answers.pgbouncer,
        serviceImage: composeImageRef('service', prefix),
        postgresImage: composeImageRef('postgres', prefix),
        redisImage: composeImageRef('redis', prefix),
        chromaImage: composeImageRef('chroma', prefix),
        nginxImage: composeImageRef('nginx', prefix),
        monitorRole: MONITOR_ROLE,
        workerProbe: JSON.stringify(['CMD', ...WORKER_PROBE]),
        localRepo,
        repoDir: localRepo ? answers.backup.repository : '',
        postgresPort: ports.postgres,
        redisPort: ports.redis,
        chromaPort: ports.chroma,
        backendPort: ports.backend,
        httpPort: ports.http,
        httpsPort: ports.https,
      }),
    )
    return files
  }

  // ---- local: one systemd unit per process, timers for the schedule
  const unitView = {installDir: options.installDir, dataDir, stack: answers.stack}
  add('systemd/charge-analysis-backend.service', renderTemplateFile('systemd/charge-analysis-backend.service', unitView))
  add('systemd/charge-analysis-chroma.service', renderTemplateFile('systemd/charge-analysis-chroma.service', unitView))
  files.push(
    ...renderSystemd(resolveJobs(undefined, {timezone: answers.timezone}), {
      configPath: `${options.installDir}/charge-ops.yaml`,
      bin: '/usr/local/bin/charge-ops',
      ...DEFAULT_HOST_PATHS,
      credentialsFile: `${options.installDir}/backup.env`,
      wrapperPath: `${options.installDir}/charge-ops-job`,
      user: 'root',
    }),
  )
  return files
}

/** How charge-ops on the host reaches the compose stack (charge-ops.yaml `compose`, read by settings). */
function composeAccess(answers: Answers) {
  const p = answers.compose.ports
  return {
    project: answers.stack,
    hostPorts: {...(answers.managed ? {} : {postgres: p.postgres, redis: p.redis}), chroma: p.chroma, backend: p.backend, https: p.https, http: p.http},
    volumes: {uploads: COMPOSE_DIRS.uploads.path, chroma: COMPOSE_DIRS.chroma.path},
  }
}

/** The bind-mounted data folders of the compose stack and the uid each container writes them as (images/). */
export const COMPOSE_DIRS = {
  uploads: {path: 'data/uploads', owner: {uid: 10_001, gid: 10_001}},
  chroma: {path: 'data/chroma', owner: {uid: 10_002, gid: 10_002}},
  state: {path: '.charge-ops', owner: {uid: 10_001, gid: 10_001}},
} as const

/** The postgres image's uid (images/postgres): archive_command writes the repository's wal/ as it. */
export const POSTGRES_CONTAINER_OWNER = {uid: 999, gid: 999}

/** The redis image (images/redis) runs as redis, uid/gid 998: the 0600 redis.conf must belong to it. */
export const REDIS_CONTAINER_OWNER = {uid: 998, gid: 998}

export function renderChargeOpsYaml(answers: Answers, installDir?: string): string {
  const managed = answers.managed
  void installDir
  const config = {
    stack: answers.stack,
    target: answers.target,
    environment: answers.environment,
    paths: {
      stateDir: '.charge-ops',
      envFile: '.env',
      frontendEnvFile: '.env.production',
      ...(answers.target === 'compose' ? {composeFile: 'docker-compose.yml'} : {}),
      ...(managed || answers.target === 'k8s' ? {} : {postgresqlConf: answers.target === 'local' ? 'postgres/charge-ops.conf' : 'postgres/postgresql.conf', redisConf: 'redis/redis.conf'}),
    },
    service: {
      workers: 2,
      poolSize: 10,
      ...(answers.pgbouncer ? {pgbouncer: {defaultPoolSize: 50, maxClientConn: Math.max(1000, answers.host.connections)}} : {}),
    },
    backup: {
      repository: answers.backup.repository,
      ...(answers.backup.endpoint || answers.backup.region ? {s3: {...(answers.backup.endpoint ? {endpoint: answers.backup.endpoint, forcePathStyle: true} : {}), ...(answers.backup.region ? {region: answers.backup.region} : {})}} : {}),
      retention: {keepLast: 7, keepDays: 30, daily: 7, weekly: 4, monthly: 6},
    },
    // k8s: the CronJobs' pods are gone before any scrape, so they push (k8s/exporters.yaml runs it)
    ...(answers.target === 'k8s' ? {metrics: {pushgatewayUrl: `http://${PUSHGATEWAY_SERVICE}.${namesFor(answers).namespace}.svc:9091`}} : {}),
    schedules: schedulesYaml(answers.timezone),
    ...(answers.target === 'compose' ? {compose: composeAccess(answers)} : {}),
  }
  // What init writes must load: a schema change that breaks it fails here, not on a user's host.
  chargeOpsYamlSchema.parse(config)
  return `# charge-ops configuration for ${answers.domain} — generated by charge-ops init.\n# Reference: docs/init.md. Secrets are not kept here (see .env).\n${stringify(config, {lineWidth: 0})}`
}
