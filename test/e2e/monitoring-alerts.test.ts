/**
 * Alerting end to end, with the real Debian binaries: PostgreSQL, Redis and the service, the
 * exporters (postgres_exporter as the pg_monitor-only role init's postgres/monitoring.sql creates,
 * redis_exporter, node_exporter's textfile collector), Prometheus loading the files the built `charge-ops monitoring` writes (1-2 s scrape
 * and evaluation, 2 s `for:` on the down alerts, a 20 s backup age limit), and Alertmanager
 * delivering to a webhook in this test. Every target is up and the key metrics have samples;
 * stopping Redis fires ChargeOpsRedisDown and ChargeOpsServiceDependencyDown at the webhook,
 * starting it again resolves them; a db backup older than the limit fires ChargeOpsBackupTooOld
 * in Prometheus' /api/v1/alerts and at the webhook, a fresh `backup db` resolves it; stopping
 * PostgreSQL fires ChargeOpsPostgresDown, starting it resolves it; stopping the API process fires
 * ChargeOpsServiceDown (its /metrics target down), starting it resolves it. Everything waits by polling
 * with deadlines; nothing outlives the test. Needs `npm run build`.
 */
import {spawnSync} from 'node:child_process'
import {randomBytes} from 'node:crypto'
import {existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync} from 'node:fs'
import {createServer, type Server} from 'node:http'
import {tmpdir} from 'node:os'
import {join} from 'node:path'

import {afterAll, beforeAll, describe, expect, it} from 'vitest'

import {
  runUnchecked,
  startDaemon,
  startPostgres,
  startRedis,
  waitForExit,
  waitUntil,
  type Daemon,
  type PgCluster,
  type RedisServer,
} from '../support/index.js'
import {startServiceUnderTest, type ServiceUnderTest} from '../integration/service-harness.js'
import {buildMonitoringRoleSql, MONITOR_PASSWORD_ENV, MONITOR_ROLE} from '../../src/install/monitoring-role.js'

const root = join(import.meta.dirname, '..', '..')
const BACKUP_MAX_AGE_S = 20

interface HookAlert {
  status: 'firing' | 'resolved'
  labels: Record<string, string>
  annotations: Record<string, string>
  startsAt: string
}

let dir: string
let pg: PgCluster
let sut: ServiceUnderTest
let redis: RedisServer // the one running now (restarted on the same port)
let redisPassword: string
let serviceDbUrl: string
const daemons: Daemon[] = []
let prometheus: Daemon
let hook: Server
/** every alert Alertmanager delivered, in order */
const delivered: HookAlert[] = []

function cli(args: string[]) {
  const r = spawnSync(process.execPath, [join(root, 'bin/run.js'), ...args], {
    cwd: dir,
    env: {
      ...process.env,
      DATABASE_URL: serviceDbUrl,
      CHARGE_OPS_CONFIG: join(dir, 'charge-ops.yaml'),
      CHARGE_OPS_STATE_DIR: join(dir, 'state'),
      CI: 'true',
    },
    encoding: 'utf8',
    timeout: 60_000,
  })
  return {code: r.status, stdout: r.stdout, stderr: r.stderr}
}

async function promQuery(expr: string): Promise<{metric: Record<string, string>; value: [number, string]}[]> {
  const r = await fetch(`${prometheus.url}/api/v1/query?query=${encodeURIComponent(expr)}`)
  const body = (await r.json()) as {status: string; data: {result: never[]}; error?: string}
  if (body.status !== 'success') throw new Error(`query ${expr}: ${body.error}`)
  return body.data.result
}

async function promAlerts(): Promise<{labels: Record<string, string>; state: string}[]> {
  const body = (await (await fetch(`${prometheus.url}/api/v1/alerts`)).json()) as {
    data: {alerts: {labels: Record<string, string>; state: string}[]}
  }
  return body.data.alerts
}

/** Waits until Prometheus evaluated the rule group `group` after `t` (ms). */
async function evaluatedAfter(group: string, t: number) {
  await waitUntil(
    async () => {
      const body = (await (await fetch(`${prometheus.url}/api/v1/rules`)).json()) as {
        data: {groups: {name: string; lastEvaluation: string}[]}
      }
      return Date.parse(body.data.groups.find((g) => g.name === group)!.lastEvaluation) > t
    },
    {timeoutMs: 10_000, intervalMs: 200, what: `an evaluation of ${group}`},
  )
}

const matches = (labels: Record<string, string>, want: Record<string, string>) =>
  Object.entries(want).every(([k, v]) => labels[k] === v)

/** Waits until Alertmanager delivered `want` with `status` at the webhook, after delivery number `since`; returns it. */
async function delivery(
  want: Record<string, string>,
  status: 'firing' | 'resolved',
  since: number,
  timeoutMs = 30_000,
): Promise<HookAlert> {
  let found: HookAlert | undefined
  await waitUntil(
    async () =>
      (found = delivered.slice(since).find((a) => a.status === status && matches(a.labels, want))) !== undefined,
    {
      timeoutMs,
      intervalMs: 200,
      what: `Alertmanager to deliver ${JSON.stringify(want)} ${status}`,
    },
  ).catch((error: Error) => {
    throw new Error(
      `${error.message}; delivered: ${JSON.stringify(delivered.map((a) => [a.labels.alertname, a.status]))}`,
    )
  })
  return found!
}

async function pgCtl(action: 'stop' | 'start') {
  const args =
    action === 'stop'
      ? ['stop', '-D', pg.dataDir, '-m', 'fast', '-w']
      : ['start', '-D', pg.dataDir, '-l', pg.logFile, '-w']
  const r = await runUnchecked(join(pg.binDir, 'pg_ctl'), args, {
    cwd: pg.baseDir,
    uid: pg.osUser?.uid,
    gid: pg.osUser?.gid,
    env: {PATH: process.env.PATH ?? '', LC_ALL: 'C.UTF-8'},
  })
  expect(r.code, `pg_ctl ${action}: ${r.stderr}`).toBe(0)
}

beforeAll(async () => {
  expect(existsSync(join(root, 'dist/commands/monitoring.js')), 'run `npm run build` first').toBe(true)
  dir = mkdtempSync(join(tmpdir(), 'monitoring-e2e-'))
  const textfiles = join(dir, 'textfiles')
  mkdirSync(textfiles)

  // a cluster of our own (this test stops it), the exporter's least-privilege role on it
  pg = await startPostgres({name: 'monitoring'})
  // created by the postgres/monitoring.sql init ships, through psql, the password by environment
  const monitorPassword = randomBytes(12).toString('hex')
  writeFileSync(join(dir, 'monitoring.sql'), buildMonitoringRoleSql())
  for (let i = 0; i < 2; i++) {
    // twice: a second run converges
    const r = await runUnchecked(
      join(pg.binDir, 'psql'),
      ['-X', '-q', '-d', 'postgres', '-f', join(dir, 'monitoring.sql')],
      {env: {...pg.env(), PATH: process.env.PATH ?? '', [MONITOR_PASSWORD_ENV]: monitorPassword}},
    )
    expect(r.code, r.stderr).toBe(0)
  }
  const [role] = await pg.query<{super: boolean; login: boolean; monitor: boolean}>(
    `SELECT rolsuper AS super, rolcanlogin AS login, pg_has_role(oid, 'pg_monitor', 'member') AS monitor FROM pg_roles WHERE rolname = '${MONITOR_ROLE}'`,
  )
  expect(role).toEqual({super: false, login: true, monitor: true})

  // the service (API) on that cluster, with its own Redis
  redisPassword = randomBytes(8).toString('hex')
  sut = await startServiceUnderTest({name: 'monitoring', postgres: pg})
  redis = sut.redis
  redisPassword = redis.password!
  serviceDbUrl = sut.databaseUrl
  await sut.startApi()

  // Alertmanager → the webhook in this test
  hook = createServer((req, res) => {
    let body = ''
    req.on('data', (d) => (body += d))
    req.on('end', () => {
      delivered.push(...(JSON.parse(body) as {alerts: HookAlert[]}).alerts)
      res.end('ok')
    })
  })
  await new Promise<void>((resolve) => hook.listen(0, '127.0.0.1', resolve))
  const hookPort = (hook.address() as {port: number}).port
  writeFileSync(
    join(dir, 'alertmanager.yml'),
    `route:\n  receiver: test\n  group_by: [alertname, dependency, kind]\n  group_wait: 1s\n  group_interval: 1s\n  repeat_interval: 1h\nreceivers:\n  - name: test\n    webhook_configs:\n      - url: http://127.0.0.1:${hookPort}/hook\n        send_resolved: true\n`,
  )

  const [pgExporter, redisExporter, nodeExporter, alertmanager] = await Promise.all([
    // the password by environment (DATA_SOURCE_PASS / REDIS_PASSWORD, as init's compose and k8s files give it), never argv
    startDaemon({
      name: 'postgres_exporter',
      bin: 'prometheus-postgres-exporter',
      args: (port) => [`--web.listen-address=127.0.0.1:${port}`, '--log.level=warn'],
      env: {
        DATA_SOURCE_URI: `127.0.0.1:${pg.port}/postgres?sslmode=disable`,
        DATA_SOURCE_USER: MONITOR_ROLE,
        DATA_SOURCE_PASS: monitorPassword,
      },
    }),
    startDaemon({
      name: 'redis_exporter',
      bin: 'prometheus-redis-exporter',
      args: (port) => [`-web.listen-address=127.0.0.1:${port}`, `-redis.addr=redis://127.0.0.1:${redis.port}`],
      env: {REDIS_PASSWORD: redisPassword},
    }),
    startDaemon({
      name: 'node_exporter',
      bin: 'prometheus-node-exporter',
      args: (port) => [
        `--web.listen-address=127.0.0.1:${port}`,
        '--collector.disable-defaults',
        '--collector.textfile',
        `--collector.textfile.directory=${textfiles}`,
        '--log.level=warn',
      ],
    }),
    startDaemon({
      name: 'alertmanager',
      bin: 'prometheus-alertmanager',
      args: (port) => [
        `--config.file=${join(dir, 'alertmanager.yml')}`,
        `--storage.path=${join(dir, 'am')}`,
        `--web.listen-address=127.0.0.1:${port}`,
        '--cluster.listen-address=',
        '--log.level=warn',
      ],
      readyPath: '/-/ready',
    }),
  ])
  daemons.push(pgExporter, redisExporter, nodeExporter, alertmanager)

  // the monitoring files, written by the built CLI for these addresses, with short intervals
  writeFileSync(join(dir, 'charge-ops.yaml'), 'stack: mon\nbackup:\n  repository: ./repo\n')
  const m = cli([
    'monitoring',
    '--target',
    'local',
    '--dir',
    join(dir, 'prom'),
    '--service',
    new URL(sut.baseUrl).host,
    '--postgres-exporter',
    `127.0.0.1:${pgExporter.port}`,
    '--redis-exporter',
    `127.0.0.1:${redisExporter.port}`,
    '--node-exporter',
    `127.0.0.1:${nodeExporter.port}`,
    '--alertmanager',
    `127.0.0.1:${alertmanager.port}`,
    '--scrape-interval',
    '2s',
    '--evaluation-interval',
    '1s',
    '--down-for',
    '2s',
    '--pending-for',
    '2s',
    '--backup-max-age',
    `db=${BACKUP_MAX_AGE_S}s`,
  ])
  expect(m.code, m.stderr).toBe(0)

  prometheus = await startDaemon({
    name: 'prometheus',
    bin: 'prometheus',
    // resend-delay: a still-firing alert is re-sent every second, not every minute
    args: (port) => [
      `--config.file=${join(dir, 'prom', 'prometheus.yml')}`,
      `--storage.tsdb.path=${join(dir, 'tsdb')}`,
      `--web.listen-address=127.0.0.1:${port}`,
      '--rules.alert.resend-delay=1s',
      '--log.level=warn',
    ],
    readyPath: '/-/ready',
  })
  daemons.push(prometheus)
}, 120_000)

afterAll(async () => {
  for (const d of daemons.reverse()) await d.stop()
  hook?.close()
  await sut?.stopAll() // the API, its first Redis
  if (redis && redis !== sut?.redis) await redis.stop()
  await pg?.stop()
  if (dir) rmSync(dir, {recursive: true, force: true})
})

describe('alerts from the generated rules reach Alertmanager', {timeout: 90_000}, () => {
  it('every target is up and the key metrics have samples', async () => {
    // some API traffic, so the request counter and the latency histogram have series
    for (const url of ['/health', '/api/v1/analyses/00000000-0000-4000-8000-000000000000'])
      expect((await sut.request('GET', url)).status).toBeLessThan(500)
    await waitUntil(
      async () => {
        const up = await promQuery('up')
        return up.length === 4 && up.every((s) => s.value[1] === '1')
      },
      {timeoutMs: 20_000, intervalMs: 250, what: 'every target (charge-analysis, postgres, redis, node) up'},
    )
    const key = [
      'charge_analysis_http_requests_total', // request rate
      'charge_analysis_http_request_duration_seconds_bucket', // latency
      'charge_analysis_queue_depth', // queue depth
      'charge_analysis_active_analyses',
      'charge_analysis_db_cache_hit_ratio',
      'charge_analysis_dependency_up',
      'pg_up == 1',
      'pg_stat_activity_count',
      'pg_settings_max_connections',
      'pg_database_size_bytes',
      'redis_up == 1',
      'redis_memory_used_bytes',
      'redis_connected_clients',
    ]
    await waitUntil(async () => (await Promise.all(key.map(promQuery))).every((r) => r.length > 0), {
      timeoutMs: 10_000,
      intervalMs: 250,
      what: 'samples of the key metrics',
    })
    // nothing pages on a healthy stack (ChargeOpsServiceDown's absent() may fire for the moment
    // before the first scrape of the API with this test's 2 s for:, so: until nothing is left)
    let left: unknown[] = []
    await waitUntil(async () => (left = await promAlerts()).length === 0, {
      timeoutMs: 10_000,
      intervalMs: 250,
      what: 'no alert on a healthy stack',
    }).catch((error: Error) => {
      throw new Error(`${error.message}; still there: ${JSON.stringify(left)}`)
    })
  })

  it('a db backup: quiet while fresh; older than the limit fires; a fresh backup resolves it; Redis stopped fires and resolves meanwhile', async () => {
    const textfile = join(dir, 'textfiles', 'charge_ops_backup_db.prom')
    const backup = () => {
      const r = cli(['backup', 'db', '--metrics-file', textfile])
      expect(r.code, r.stderr).toBe(0)
      return Number(
        /charge_ops_backup_last_success_timestamp_seconds\{kind="db",stack="mon"\} (\d+)/.exec(
          readFileSync(textfile, 'utf8'),
        )![1],
      )
    }
    const scraped = (ts: number) =>
      waitUntil(
        async () =>
          (await promQuery('charge_ops_backup_last_success_timestamp_seconds{kind="db"}')).some(
            (s) => Number(s.value[1]) === ts,
          ),
        {
          timeoutMs: 10_000,
          intervalMs: 200,
          what: `Prometheus to scrape the backup timestamp ${ts} through node_exporter`,
        },
      )
    const backupAlert = async () =>
      (await promAlerts()).find((a) => a.labels.alertname === 'ChargeOpsBackupTooOld' && a.labels.kind === 'db')

    const first = backup()
    await scraped(first)
    // evaluated while fresh → quiet
    await evaluatedAfter('charge-ops-backups', Date.now())
    expect(Date.now() / 1000 - first).toBeLessThan(BACKUP_MAX_AGE_S - 3)
    expect(await backupAlert()).toBeUndefined()

    // meanwhile Redis goes away: the exporter and the API both notice
    const redisPort = redis.port
    let since = delivered.length
    await redis.stop()
    await delivery({alertname: 'ChargeOpsRedisDown', severity: 'critical'}, 'firing', since)
    const dep = await delivery({alertname: 'ChargeOpsServiceDependencyDown', dependency: 'redis'}, 'firing', since)
    expect(dep.annotations.description).toContain('charge-ops doctor')
    // the API itself stays scrapeable: its store probes are bounded below the scrape timeout
    expect((await promAlerts()).map((a) => a.labels.alertname)).not.toContain('ChargeOpsServiceDown')
    since = delivered.length
    redis = await startRedis({password: redisPassword, args: ['--port', String(redisPort)]})
    await delivery({alertname: 'ChargeOpsRedisDown'}, 'resolved', since)
    await delivery({alertname: 'ChargeOpsServiceDependencyDown', dependency: 'redis'}, 'resolved', since)

    // no new backup for longer than the limit: firing in Prometheus and at the webhook
    await waitUntil(async () => (await backupAlert())?.state === 'firing', {
      timeoutMs: 30_000,
      intervalMs: 250,
      what: 'ChargeOpsBackupTooOld{kind="db"} firing in /api/v1/alerts',
    })
    const fired = await delivery({alertname: 'ChargeOpsBackupTooOld', kind: 'db'}, 'firing', 0)
    expect(fired.annotations.summary).toMatch(/^No successful db backup of mon for /)
    expect(fired.annotations.runbook_url).toMatch(/docs\/monitoring\.md#chargeopsbackuptooold$/)
    since = delivered.length
    const second = backup()
    expect(second).toBeGreaterThan(first)
    await waitUntil(async () => (await backupAlert()) === undefined, {
      timeoutMs: 15_000,
      intervalMs: 250,
      what: 'ChargeOpsBackupTooOld gone from /api/v1/alerts after a fresh backup',
    })
    await delivery({alertname: 'ChargeOpsBackupTooOld', kind: 'db'}, 'resolved', since)
  })

  it('PostgreSQL stopped fires ChargeOpsPostgresDown (and the API notices); started again, both resolve', async () => {
    let since = delivered.length
    await pgCtl('stop')
    const down = await delivery({alertname: 'ChargeOpsPostgresDown', severity: 'critical'}, 'firing', since)
    expect(down.annotations.description).toContain('`charge-ops doctor`')
    await delivery({alertname: 'ChargeOpsServiceDependencyDown', dependency: 'postgres'}, 'firing', since)
    expect((await promAlerts()).map((a) => a.labels.alertname)).not.toContain('ChargeOpsServiceDown')
    since = delivered.length
    await pgCtl('start')
    await delivery({alertname: 'ChargeOpsPostgresDown'}, 'resolved', since)
    await delivery({alertname: 'ChargeOpsServiceDependencyDown', dependency: 'postgres'}, 'resolved', since)
  })

  it('the API process stopped fires ChargeOpsServiceDown (its /metrics target down); started again on its port, resolved', async () => {
    const serviceDown = async () => (await promAlerts()).find((a) => a.labels.alertname === 'ChargeOpsServiceDown')
    expect(await serviceDown()).toBeUndefined()
    let since = delivered.length
    const api = sut.api!
    api.kill('SIGTERM')
    expect(await waitForExit(api, 10_000), 'the API exits on SIGTERM').toBe(true)
    await waitUntil(async () => (await serviceDown())?.state === 'firing', {
      timeoutMs: 20_000,
      intervalMs: 250,
      what: 'ChargeOpsServiceDown firing in /api/v1/alerts',
    })
    const [target] = await promQuery('up{job="charge-analysis"}')
    expect(target!.value[1]).toBe('0')
    const down = await delivery({alertname: 'ChargeOpsServiceDown', severity: 'critical'}, 'firing', since)
    expect(down.labels.instance).toBe(new URL(sut.baseUrl).host)
    expect(down.annotations.description).toContain('`charge-ops service status`')
    expect(down.annotations.runbook_url).toMatch(/docs\/monitoring\.md#chargeopsservicedown$/)
    since = delivered.length
    await sut.startApi() // the same PORT: the scrape target Prometheus has
    await waitUntil(async () => (await serviceDown()) === undefined, {
      timeoutMs: 20_000,
      intervalMs: 250,
      what: 'ChargeOpsServiceDown gone from /api/v1/alerts after the API started',
    })
    await delivery({alertname: 'ChargeOpsServiceDown'}, 'resolved', since)
  })
})
