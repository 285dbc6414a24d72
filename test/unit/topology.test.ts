/**
 * One topology, every target: the files init writes are held against the plans and commands that
 * act on them — the compose upgrade plan names only services the compose file has (backend and
 * worker, on the service image), the k8s upgrade plan names exactly the Deployments and containers
 * the manifests declare, the backup CronJobs mount Chroma's data, the Ingress's TLS Secret is
 * named in its header, and charge-ops on the host reaches the compose stack through the ports the
 * compose file publishes on 127.0.0.1.
 */
import {readFileSync} from 'node:fs'
import {join} from 'node:path'
import {parseAllDocuments, parseDocument} from 'yaml'
import {describe, expect, it} from 'vitest'

import {parseAnswers, parseAnswersFile} from '../../src/install/answers.js'
import {planInit} from '../../src/install/plan.js'
import {composeHostView} from '../../src/topology/host.js'
import {judgeContainers, parseComposePs} from '../../src/capacity/containers.js'
import {imageRef, stackTopology, upgradableServices, upgradableWorkloads} from '../../src/topology/index.js'
import {composePlan, k8sPlan} from '../../src/upgrade/plans.js'
import type {InitSecrets} from '../../src/install/secrets.js'
import {chargeOpsYamlSchema} from '../../src/config/schema.js'

const FIXTURES = join(import.meta.dirname, '..', 'fixtures', 'init')
const SECRETS: InitSecrets = {
  secretKey: 'k'.repeat(64),
  postgresPassword: 'p'.repeat(48),
  appDbPassword: 'a'.repeat(48),
  migratorDbPassword: 'm'.repeat(48),
  redisPassword: 'r'.repeat(48),
}
const files = (name: string, extra: Record<string, unknown> = {}) => {
  const file = join(FIXTURES, `answers-${name}.yaml`)
  const answers = parseAnswers({...parseAnswersFile(readFileSync(file, 'utf8'), file), ...extra}, file)
  return new Map(
    planInit(answers, {secrets: SECRETS, installDir: '/srv/charge', opsVersion: '0.1.0'}).map((f) => [
      f.path,
      f.content,
    ]),
  )
}
type Obj = Record<string, any>
const commandLines = (plan: ReturnType<typeof composePlan>) =>
  plan.steps.flatMap((s) => [...s.commands, ...s.undo]).map((c) => [c.file, ...c.args])

describe('compose: the generated file against the upgrade plan, schedule and host access', () => {
  const generated = files('compose', {backup: {repository: '/srv/charge/backups'}})
  const compose = parseDocument(generated.get('docker-compose.yml')!).toJS() as Obj
  const env = Object.fromEntries(
    generated
      .get('.env')!
      .split('\n')
      .filter((l) => /^[A-Z_]+=/.test(l))
      .map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]),
  )

  it('runs every topology service with the image and health check the topology gives', () => {
    for (const s of stackTopology().services) {
      const svc = compose.services[s.name]
      expect(svc, s.name).toBeDefined()
      const image = String(svc.image)
      expect(image.startsWith(`charge-ops/${s.image}:`), `${s.name} → ${image}`).toBe(true)
      if (s.health && !s.job) expect(svc.healthcheck?.test, `${s.name} health`).toBeDefined()
      if (s.command) expect(svc.command, `${s.name} command`).toEqual(s.command)
      if (s.name === 'ops') expect(svc.profiles, 'ops is never started by up').toEqual(['ops'])
      if (s.name === 'migrate')
        expect(compose.services.backend.depends_on.migrate.condition).toBe('service_completed_successfully')
    }
    // the images' version comes from the compose project's .env, which init writes
    expect(env.CHARGE_OPS_VERSION).toBe('0.1.0')
    expect(compose.services.backend.image).toBe(
      'charge-ops/service:${CHARGE_OPS_VERSION:?set CHARGE_OPS_VERSION in .env}',
    )
  })

  it("with PgBouncer (the guide recommends it): every image, PgBouncer's included, is one `images build` makes; its userlist belongs to the image's postgres user", () => {
    const planned = (() => {
      const file = join(FIXTURES, 'answers-compose.yaml')
      const answers = parseAnswers(
        {
          ...parseAnswersFile(readFileSync(file, 'utf8'), file),
          backup: {repository: '/srv/charge/backups'},
          pgbouncer: true,
        },
        file,
      )
      return planInit(answers, {secrets: SECRETS, installDir: '/srv/charge', opsVersion: '0.1.0'})
    })()
    const withBouncer = parseDocument(planned.find((f) => f.path === 'docker-compose.yml')!.content).toJS() as Obj
    const images = Object.entries(withBouncer.services as Record<string, Obj>).map(([name, svc]) => [
      name,
      String(svc.image),
    ])
    expect(images.map(([name]) => name)).toContain('pgbouncer')
    for (const [name, image] of images)
      expect(image, name).toMatch(/^charge-ops\/(service|postgres|chroma|redis|nginx):\$\{CHARGE_OPS_VERSION/)
    // PgBouncer refuses to run as root: the postgres image's user, which must read the 0600 userlist
    expect(withBouncer.services.pgbouncer).toMatchObject({
      user: 'postgres',
      entrypoint: ['pgbouncer'],
      command: ['/etc/pgbouncer/pgbouncer.ini'],
    })
    expect(planned.find((f) => f.path === 'pgbouncer/userlist.txt')).toMatchObject({
      mode: 0o600,
      owner: {uid: 999, gid: 999},
    })
    expect(withBouncer.services.backend.depends_on.pgbouncer.condition).toBe('service_healthy')
    // the app's DATABASE_URL names pgbouncer:6432; charge-ops on the host reaches it where the file publishes it
    const yaml = chargeOpsYamlSchema.parse(
      parseDocument(planned.find((f) => f.path === 'charge-ops.yaml')!.content).toJS(),
    )
    const bouncerEnv = Object.fromEntries(
      planned
        .find((f) => f.path === '.env')!
        .content.split('\n')
        .filter((l) => /^[A-Z_]+=/.test(l))
        .map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]),
    )
    expect(new URL(bouncerEnv.DATABASE_URL!).host).toBe('pgbouncer:6432')
    expect(withBouncer.services.pgbouncer.ports).toEqual([`127.0.0.1:${yaml.compose!.hostPorts.pgbouncer}:6432`])
    expect(new URL(composeHostView(yaml, bouncerEnv, {})!.env.DATABASE_URL!).host).toBe(
      `127.0.0.1:${yaml.compose!.hostPorts.pgbouncer}`,
    )
  })

  it('the upgrade plan stops, fetches and starts only services of the file, and they run the service image', () => {
    const plan = composePlan({
      version: '0.2.0',
      composeFile: '/srv/charge/docker-compose.yml',
      image: 'charge-ops/service',
    })
    const named = new Set<string>()
    const execIn = new Set<string>()
    for (const argv of commandLines(plan)) {
      if (argv[0] !== 'docker') continue
      // `exec -T <service> <command…>`: only the service is a name of the file
      const exec = argv.indexOf('exec')
      if (exec > 0) {
        const service = argv.slice(exec + 1).find((a) => !a.startsWith('-'))!
        expect(compose.services, argv.join(' ')).toHaveProperty(service)
        execIn.add(service)
        continue
      }
      const verb = argv.findIndex((a) => ['stop', 'up', 'pull', 'build', 'ps', 'run'].includes(a))
      const rest = argv.slice(verb + 1)
      const services = rest.filter(
        (a, i) => !a.startsWith('-') && !['--timeout', '--format', '--wait-timeout'].includes(rest[i - 1]!),
      )
      for (const arg of services) {
        expect(compose.services, `${argv.join(' ')}: ${arg}`).toHaveProperty(arg)
        named.add(arg)
      }
      // the version to run comes in the command's environment (it wins over the .env's)
      if (['up', 'run', 'pull'].includes(argv[verb]!))
        expect(
          plan.steps
            .flatMap((s) => [...s.commands, ...s.undo])
            .some((c) => c.args === argv.slice(1) || c.env?.CHARGE_OPS_VERSION),
        ).toBe(true)
    }
    expect([...named].sort()).toEqual(['backend', 'migrate', 'worker'])
    // nginx re-resolves the recreated backend (its upstream name is resolved when its configuration loads)
    expect([...execIn]).toEqual(['nginx'])
    for (const name of named) expect(compose.services[name].image).toBe(compose.services.backend.image)
    expect(
      upgradableServices(stackTopology())
        .map((s) => s.name)
        .sort(),
    ).toEqual(['backend', 'worker'])
  })

  it('publishes PostgreSQL, Redis, Chroma and the API on 127.0.0.1 only, at the ports charge-ops.yaml records', () => {
    const yaml = chargeOpsYamlSchema.parse(parseDocument(generated.get('charge-ops.yaml')!).toJS())
    const ports = yaml.compose!.hostPorts
    for (const [service, port] of [
      ['postgres', ports.postgres],
      ['redis', ports.redis],
      ['chroma', ports.chroma],
      ['backend', ports.backend],
    ] as const) {
      expect(compose.services[service].ports, service).toEqual([
        `127.0.0.1:${port}:${service === 'postgres' ? 5432 : service === 'redis' ? 6379 : 8000}`,
      ])
    }
    // on the host the .env's in-network names become those ports; in a container (the image sets the variable) nothing changes
    const view = composeHostView(yaml, env, {})!
    expect(new URL(view.env.DATABASE_URL!).host).toBe(`127.0.0.1:${ports.postgres}`)
    expect(new URL(view.env.CHARGE_OPS_ADMIN_URL!).host).toBe(`127.0.0.1:${ports.postgres}`)
    expect(new URL(view.env.REDIS_URL!).host).toBe(`127.0.0.1:${ports.redis}`)
    expect(view.env.CHROMA_URL).toBe(`http://127.0.0.1:${ports.chroma}/`)
    expect(view.uploadsDir).toBe('data/uploads')
    expect(compose.services.backend.volumes).toContain(`./${view.uploadsDir}:/app/uploads`)
    expect(compose.services.chroma.volumes).toContain(`./${view.chromaDir}:/data`)
    expect(composeHostView(yaml, env, {CHARGE_OPS_IN_CONTAINER: '1'})).toBeUndefined()
  })

  it('the ops and postgres containers see a local repository at the path charge-ops.yaml names', () => {
    const yaml = parseDocument(generated.get('charge-ops.yaml')!).toJS() as Obj
    expect(yaml.backup.repository).toBe('/srv/charge/backups')
    for (const s of ['ops', 'postgres'])
      expect(compose.services[s].volumes, s).toContain('/srv/charge/backups:/srv/charge/backups')
    // the restore drill's admin connection is generated (the superuser of the postgres container)
    expect(env.CHARGE_OPS_ADMIN_URL).toMatch(/^postgresql:\/\/postgres:p+@postgres:5432\/postgres\?sslmode=require$/)
  })
})

describe('k8s: the manifests against the upgrade plan and the CronJobs', () => {
  const generated = files('k8s')
  const docs = [...generated.entries()]
    .filter(([p]) => p.startsWith('k8s/'))
    .flatMap(([, text]) => parseAllDocuments(text).map((d) => d.toJS() as Obj))
    .filter(Boolean)
  const deployments = docs.filter((d) => d.kind === 'Deployment')

  it('the upgrade plan names exactly the Deployments (and containers) init wrote that run the service image', () => {
    const plan = k8sPlan({version: '0.2.0', namespace: 'charge', image: 'charge-ops/service'})
    const text = commandLines(plan).map((a) => a.join(' '))
    const named = new Set(text.flatMap((l) => [...l.matchAll(/deployment\/([a-z0-9-]+)/g)].map((m) => m[1]!)))
    const serviceDeployments = deployments.filter((d) =>
      d.spec.template.spec.containers.some((c: Obj) => String(c.image).startsWith('charge-ops/service:')),
    )
    expect([...named].sort()).toEqual(serviceDeployments.map((d) => d.metadata.name).sort())
    for (const d of serviceDeployments) {
      const container = d.spec.template.spec.containers[0]
      expect(text, d.metadata.name).toContain(
        `kubectl set image deployment/${d.metadata.name} ${container.name}=charge-ops/service:0.2.0 -n charge`,
      )
    }
    expect(
      upgradableWorkloads(stackTopology())
        .map((w) => w.name)
        .sort(),
    ).toEqual(['backend', 'worker'])
  })

  it('has a worker Deployment on the service image, running the worker entry', () => {
    const worker = deployments.find((d) => d.metadata.name === 'worker')!
    expect(worker.spec.template.spec.containers[0].image).toBe(imageRef('service', '0.1.0'))
    expect(worker.spec.template.spec.containers[0].command.join(' ')).toMatch(/worker\.js$/)
  })

  it('every image is one `charge-ops images build` makes', () => {
    const images = docs.flatMap((d) =>
      (d.spec?.template?.spec?.containers ?? d.spec?.jobTemplate?.spec?.template?.spec?.containers ?? []).map(
        (c: Obj) => String(c.image),
      ),
    )
    expect(images.length).toBeGreaterThan(5)
    for (const image of images) expect(image).toMatch(/^charge-ops\/(service|postgres|chroma|redis|nginx):0\.1\.0$/)
  })

  it("the backup CronJob mounts Chroma's volume on Chroma's node and names it CHROMA_PERSIST_DIRECTORY", () => {
    const cron = docs.find(
      (d) =>
        d.kind === 'CronJob' &&
        d.spec.jobTemplate.spec.template.spec.containers[0].args.slice(0, 2).join(' ') === 'backup all',
    )!
    expect(cron).toBeDefined()
    const pod = cron.spec.jobTemplate.spec.template.spec
    const chromaSet = docs.find((d) => d.kind === 'StatefulSet' && d.metadata.name === 'chroma')!
    const claim = `${chromaSet.spec.volumeClaimTemplates[0].metadata.name}-chroma-0`
    expect(pod.volumes.find((v: Obj) => v.name === 'chroma').persistentVolumeClaim.claimName).toBe(claim)
    expect(pod.containers[0].env).toContainEqual({name: 'CHROMA_PERSIST_DIRECTORY', value: '/chroma'})
    expect(
      pod.affinity.podAffinity.requiredDuringSchedulingIgnoredDuringExecution[0].labelSelector.matchLabels,
    ).toEqual(chromaSet.spec.selector.matchLabels)
  })

  it('the Ingress names its TLS Secret, and the file says how to create it', () => {
    const ingress = docs.find((d) => d.kind === 'Ingress')!
    const secret = ingress.spec.tls[0].secretName
    expect(generated.get('k8s/ingress.yaml')!.split('\n')[0]).toContain(`create secret tls ${secret}`)
  })
})

describe('container state', () => {
  it('judges compose ps rows: running+healthy, one-off migrate exited 0; names the fix', () => {
    const rows = parseComposePs(
      [
        '{"Service":"backend","State":"running","Health":"healthy"}',
        '{"Service":"migrate","State":"exited","Health":"","ExitCode":0}',
        '{"Service":"worker","State":"exited","Health":"","ExitCode":1}',
        '{"Service":"redis","State":"running","Health":"unhealthy"}',
      ].join('\n'),
    )
    const judged = judgeContainers(rows, 'docker compose -f f -p p')
    expect(judged.map((j) => [j.service, j.ok])).toEqual([
      ['backend', true],
      ['migrate', true],
      ['worker', false],
      ['redis', false],
    ])
    expect(judged[2]!.remedy).toContain('docker compose -f f -p p up -d worker')
    expect(judged[3]!.remedy).toContain('logs redis')
  })
})
