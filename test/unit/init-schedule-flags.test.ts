/**
 * Every charge-ops command line that init / schedule install write for a machine to run later —
 * cron lines (+ the wrapper's --config), systemd ExecStart, Kubernetes CronJob args, the
 * schedules: block of charge-ops.yaml, PostgreSQL's archive_command — is parsed here with oclif's
 * own parser against the real command class (its flags, base flags and args, strict). A renamed or
 * removed flag, a changed option list or a missing command breaks this test, not a 2 a.m. job.
 */
import {existsSync, readFileSync} from 'node:fs'
import {join} from 'node:path'

import {Parser} from '@oclif/core'
import {parseAllDocuments, parseDocument} from 'yaml'
import {describe, expect, it} from 'vitest'

import {parseAnswers, parseAnswersFile} from '../../src/install/answers.js'
import {planInit} from '../../src/install/plan.js'
import type {InitSecrets} from '../../src/install/secrets.js'
import {DEFAULT_JOBS, resolveJobs, schedulesYaml, splitCommand} from '../../src/schedule/jobs.js'
import {
  DEFAULT_HOST_PATHS,
  jobsForKubernetes,
  renderCron,
  renderCronJobs,
  renderSystemd,
  type HostScheduleContext,
} from '../../src/schedule/render.js'

const root = join(import.meta.dirname, '..', '..')
const FIXTURES = join(root, 'test', 'fixtures', 'init')
const SECRETS: InitSecrets = {
  secretKey: 'k'.repeat(64),
  postgresPassword: 'p'.repeat(48),
  appDbPassword: 'a'.repeat(48),
  migratorDbPassword: 'm'.repeat(48),
  redisPassword: 'r'.repeat(48),
}
const ctx: HostScheduleContext = {
  configPath: '/etc/charge-ops/charge-ops.yaml',
  bin: '/usr/local/bin/charge-ops',
  ...DEFAULT_HOST_PATHS,
  credentialsFile: '/etc/charge-ops/backup.env',
  wrapperPath: '/etc/charge-ops/charge-ops-job',
  user: 'root',
}

interface Invocation {
  source: string
  argv: string[]
}

/** The command a charge-ops argv runs (longest prefix of words that is a command file) and the rest. */
function resolveCommand(argv: string[]): {file: string; id: string; rest: string[]} {
  for (let n = Math.min(3, argv.length); n >= 1; n--) {
    const words = argv.slice(0, n)
    if (words.some((w) => w.startsWith('-'))) continue
    const file = join(root, 'commands', ...words) + '.ts'
    if (existsSync(file)) return {file, id: words.join(' '), rest: argv.slice(n)}
  }
  throw new Error(`no command for "charge-ops ${argv.join(' ')}"`)
}

interface CommandClass {
  flags?: Record<string, unknown>
  baseFlags?: Record<string, unknown>
  args?: Record<string, unknown>
  strict?: boolean
  enableJsonFlag?: boolean
}

/** Parses the argv exactly as the command would (unknown flags, bad option values and extra args throw). */
async function parseWithCommand(argv: string[]) {
  const {file, id, rest} = resolveCommand(argv)
  const Command = (await import(file)).default as CommandClass
  const {Flags} = await import('@oclif/core')
  const flags = {...Command.baseFlags, ...Command.flags, ...(Command.enableJsonFlag ? {json: Flags.boolean()} : {})}
  // the variables a scheduled job's environment may set must not decide whether this passes
  const saved = {...process.env}
  for (const k of Object.keys(process.env)) if (k.startsWith('CHARGE_OPS_')) delete process.env[k]
  try {
    const parsed = await Parser.parse(rest, {
      flags: flags as never,
      args: (Command.args ?? {}) as never,
      strict: Command.strict ?? true,
      context: {} as never,
    })
    return {id, flags: parsed.flags as Record<string, unknown>, args: parsed.args as Record<string, unknown>}
  } finally {
    process.env = saved
  }
}

const load = (name: string) => {
  const file = join(FIXTURES, `answers-${name}.yaml`)
  return parseAnswers(parseAnswersFile(readFileSync(file, 'utf8'), file), file)
}

function splitWords(line: string): string[] {
  return splitCommand(line.replace(/"/g, "'"))
}

function collectInvocations(): Invocation[] {
  const out: Invocation[] = []
  // walArchiving: the backup-base job too (compose, where init turns WAL archiving on)
  const jobs = resolveJobs(undefined, {timezone: 'UTC', walArchiving: true})
  expect(jobs.map((j) => j.name)).toContain('backup-base')
  // cron: "<cron 5 fields> <user> <wrapper> <job> ARGS…"; the wrapper appends --config PATH
  const [wrapper, crontab] = renderCron(jobs, ctx)
  for (const line of crontab.content.split('\n').filter((l) => l.includes(ctx.wrapperPath) && !l.startsWith('#'))) {
    const words = splitWords(line)
    out.push({
      source: `cron: ${line}`,
      argv: [...words.slice(words.indexOf(ctx.wrapperPath) + 2), '--config', ctx.configPath],
    })
  }
  // the wrapper really does append --config
  expect(crontab.content).toBeDefined()
  expect(wrapper.content).toContain(`"$@" --config ${ctx.configPath}`)
  // systemd: ExecStart=/usr/bin/flock … BIN ARGS…
  const execStarts = (files: Array<{path: string; content: string}>, bin: string, source: string) => {
    for (const f of files.filter((x) => x.path.endsWith('.service'))) {
      const line = /^ExecStart=(.*)$/m.exec(f.content)?.[1]
      if (!line || !line.includes(bin)) continue
      const words = splitWords(line)
      out.push({source: `${source} ${f.path}: ${line}`, argv: words.slice(words.indexOf(bin) + 1)})
    }
  }
  execStarts(renderSystemd(jobs, ctx), ctx.bin, 'systemd')
  // Kubernetes CronJobs (backup db + files merged into backup all)
  const cronJobs = (text: string, source: string) => {
    for (const doc of parseAllDocuments(text) as unknown as Array<{toJS(): any}>) {
      const obj = doc.toJS()
      if (obj?.kind !== 'CronJob') continue
      out.push({
        source: `${source} ${obj.metadata.name}`,
        argv: obj.spec.jobTemplate.spec.template.spec.containers[0].args,
      })
    }
  }
  cronJobs(
    renderCronJobs(jobsForKubernetes(jobs), {
      namespace: 'charge',
      stack: 'charge-analysis',
      image: 'charge-ops:1',
      envSecret: 'e',
      credentialsSecret: 'c',
      configMap: 'm',
      uploadsPath: '/app/uploads',
    }),
    'k8s',
  )
  // jobs an operator adds or changes in charge-ops.yaml get the metrics flag only where it exists
  const custom = resolveJobs({
    schedules: {
      'backup-db': {cron: '0 1 * * *', command: 'charge-ops backup all', enabled: true},
      'prune-daily': {cron: '0 6 * * *', command: 'charge-ops backup prune --yes --keep-last 3', enabled: true},
      'verify-weekly': {cron: '0 8 * * 0', command: 'charge-ops backup verify latest', enabled: true},
    },
  } as never)
  for (const f of renderSystemd(custom, ctx))
    if (f.path.endsWith('.service')) execStarts([f], ctx.bin, 'custom schedules')
  // charge-ops.yaml schedules:
  for (const [name, entry] of Object.entries(schedulesYaml('UTC')))
    out.push({source: `schedules.${name}: ${entry.command}`, argv: splitCommand(entry.command)})

  // what init itself writes, per target
  for (const target of ['compose', 'k8s', 'k8s-managed', 'local']) {
    const files = planInit(load(target), {
      secrets: SECRETS,
      installDir: '/etc/charge-analysis',
      credentials: {accessKeyId: 'AKIAEXAMPLE', secretAccessKey: 's'.repeat(40)},
    })
    execStarts(files, '/usr/local/bin/charge-ops', `init ${target}`)
    for (const f of files.filter((x) => x.path.startsWith('k8s/'))) cronJobs(f.content, `init ${target} ${f.path}`)
    const yaml = parseDocument(files.find((f) => f.path === 'charge-ops.yaml')!.content).toJS() as {
      schedules: Record<string, {command: string}>
    }
    for (const [name, entry] of Object.entries(yaml.schedules))
      out.push({source: `init ${target} charge-ops.yaml schedules.${name}`, argv: splitCommand(entry.command)})
    for (const f of files.filter((x) => /postgresql\.conf$|charge-ops\.conf$/.test(x.path))) {
      const archive = /^archive_command = '(.*)'/m.exec(f.content)?.[1]
      expect(archive, `${target} ${f.path} archive_command`).toBeDefined()
      out.push({
        source: `init ${target} ${f.path} archive_command`,
        argv: splitCommand(archive!.replace('%p', 'pg_wal/000000010000000000000001')),
      })
    }
  }
  return out
}

describe('scheduled command lines match the real commands', () => {
  const invocations = collectInvocations()

  it('covers every job of the table, backup all and wal push, on every renderer', () => {
    const ids = new Set(invocations.map((i) => resolveCommand(i.argv).id))
    expect([...ids].sort()).toEqual([
      'backup all',
      'backup base',
      'backup db',
      'backup files',
      'backup prune',
      'backup verify',
      'capacity',
      'wal push',
    ])
    for (const job of DEFAULT_JOBS)
      expect(
        invocations.some((i) => i.argv.join(' ').startsWith(job.args.join(' '))),
        job.name,
      ).toBe(true)
    expect(invocations.length).toBeGreaterThan(30)
  })

  it('every flag, option value and argument is accepted by the command class (strict parse)', async () => {
    const failures: string[] = []
    for (const inv of invocations) {
      try {
        await parseWithCommand(inv.argv)
      } catch (error) {
        failures.push(`${inv.source}\n    → ${(error as Error).message.split('\n').slice(0, 3).join(' ')}`)
      }
    }
    expect(failures, failures.join('\n')).toEqual([])
  })

  it('the parsed values are the intended ones (metrics file, config, prune confirmation, capacity format)', async () => {
    const cron = invocations.filter((i) => i.source.startsWith('cron:'))
    const parsed = await Promise.all(cron.map((i) => parseWithCommand(i.argv)))
    const byId = Object.fromEntries(parsed.map((p) => [p.id, p]))
    expect(byId['backup db'].flags['metrics-file']).toBe(`${DEFAULT_HOST_PATHS.textfileDir}/charge_ops_backup_db.prom`)
    expect(byId['backup files'].flags['metrics-file']).toBe(
      `${DEFAULT_HOST_PATHS.textfileDir}/charge_ops_backup_files.prom`,
    )
    expect(byId['backup prune'].flags.yes).toBe(true)
    expect(byId['backup verify'].args.id).toBe('latest')
    expect(byId['backup verify'].flags['restore-drill']).toBe(true)
    expect(byId.capacity.flags.format).toBe('prometheus')
    expect(byId.capacity.flags.output).toBe(`${DEFAULT_HOST_PATHS.textfileDir}/charge_ops_capacity.prom`)
    for (const p of parsed) expect(p.flags.config, p.id).toBe(ctx.configPath)
  })

  it('jobs from charge-ops.yaml get --metrics-file only on commands that have it', () => {
    const custom = invocations.filter((i) => i.source.startsWith('custom schedules')).map((i) => i.argv.join(' '))
    expect(custom.find((a) => a.startsWith('backup all'))).toContain(
      '--metrics-file /var/lib/prometheus/node-exporter/charge_ops_backup_db.prom',
    )
    expect(custom).toContain('backup prune --yes --keep-last 3 --config /etc/charge-ops/charge-ops.yaml')
    for (const a of custom.filter((x) => x.startsWith('backup prune'))) expect(a).not.toContain('--metrics-file')
    expect(custom).toContain(
      'backup verify latest --metrics-file /var/lib/prometheus/node-exporter/charge_ops_verify_weekly.prom --config /etc/charge-ops/charge-ops.yaml',
    )
  })

  it('a renamed flag would be caught: the checker rejects an unknown flag and a bad option value', async () => {
    await expect(parseWithCommand(['backup', 'db', '--metrics-fil', '/x.prom'])).rejects.toThrow(/Nonexistent flag/)
    await expect(parseWithCommand(['capacity', '--format', 'prom'])).rejects.toThrow(
      /Expected --format=prom to be one of/,
    )
    await expect(parseWithCommand(['backup', 'verify', 'latest', 'extra'])).rejects.toThrow(/Unexpected argument/)
  })
})
