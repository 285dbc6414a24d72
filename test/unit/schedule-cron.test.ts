import {execFileSync} from 'node:child_process'
import {existsSync} from 'node:fs'
import {describe, expect, it} from 'vitest'

import {cronProblem, cronToOnCalendar, findOverlaps, nextRuns} from '../../src/schedule/cron.js'
import {DEFAULT_JOBS, resolveJobs} from '../../src/schedule/jobs.js'
import {renderCron, renderSystemd} from '../../src/schedule/render.js'

const from = new Date('2024-03-30T12:00:00Z')
const host = {
  configPath: '/etc/charge/charge-ops.yaml',
  bin: '/usr/local/bin/charge-ops',
  lockDir: '/run/lock/charge-ops',
  logDir: '/var/log/charge-ops',
  textfileDir: '/var/lib/node-exporter',
  credentialsFile: '/etc/charge/backup.env',
  wrapperPath: '/etc/charge/charge-ops-job',
  user: 'root',
}

describe('cron expressions', () => {
  it('next three runs honour the time zone across a DST change', () => {
    const runs = nextRuns('0 2 * * *', {timezone: 'Europe/Berlin', from}).map((d) => d.toISOString())
    // 31 March 2024: 02:00 does not exist in Berlin (clocks jump to 03:00)
    expect(runs[0]).toBe('2024-03-31T01:00:00.000Z')
    expect(runs.slice(1)).toEqual(['2024-04-01T00:00:00.000Z', '2024-04-02T00:00:00.000Z'])
  })
  it('rejects invalid expressions with the reason', () => {
    expect(cronProblem('61 2 * * *')).toMatch(/minute field "61": 61 is outside 0–59/)
    expect(cronProblem('0 2 * *')).toMatch(/expected 5 fields/)
    expect(cronProblem('0 2 * * * *')).toMatch(/expected 5 fields/)
    expect(cronProblem('@daily')).toMatch(/not portable/)
    expect(cronProblem('0 5-2 * * *')).toMatch(/runs backwards/)
    expect(cronProblem('*/0 * * * *')).toMatch(/step of 0/)
    expect(cronProblem('0 2 * * *', 'Mars/Olympus')).toMatch(/not an IANA time zone/)
    expect(cronProblem('0 2 * * mon-fri')).toBeUndefined()
  })
  it("flags jobs scheduled into each other's window, not jobs apart", () => {
    const jobs = resolveJobs(undefined, {timezone: 'UTC'})
    expect(findOverlaps(jobs, {from})).toEqual([])
    const slow = resolveJobs(undefined, {timezone: 'UTC', windows: {'backup-db': 90}})
    const overlaps = findOverlaps(slow, {from})
    expect(overlaps.map((o) => [o.a, o.b])).toEqual([['backup-db', 'backup-files']])
    expect(overlaps[0].at).toBe('2024-03-31T03:00:00.000Z')
    // weekly prune at 04:00 Sunday against a files backup that takes 70 minutes
    const weekly = findOverlaps(resolveJobs(undefined, {timezone: 'UTC', windows: {'backup-files': 70}}), {from})
    expect(weekly.map((o) => `${o.a}/${o.b}`)).toEqual(['backup-files/prune'])
  })
  it('translates to systemd OnCalendar exactly (checked with systemd-analyze when present)', () => {
    expect(cronToOnCalendar('0 2 * * *', 'UTC')).toBe('*-*-* 02:00:00 UTC')
    expect(cronToOnCalendar('0 4 * * 0')).toBe('Sun *-*-* 04:00:00')
    expect(cronToOnCalendar('*/15 9-11 * * 1-5')).toBe('Mon,Tue,Wed,Thu,Fri *-*-* 09,10,11:00,15,30,45:00')
    expect(() => cronToOnCalendar('0 2 1 * 1')).toThrow(/both day-of-month and day-of-week/)
    if (!existsSync('/usr/bin/systemd-analyze')) return
    for (const job of DEFAULT_JOBS) {
      const cal = cronToOnCalendar(job.cron, 'UTC')
      const out = execFileSync('systemd-analyze', ['calendar', '--iterations=3', cal], {
        encoding: 'utf8',
        env: {...process.env, TZ: 'UTC', SYSTEMD_COLORS: '0'},
      })
      const elapses = [...out.matchAll(/(?:Next elapse|Iter\. #\d+):\s+\w+ (\d{4}-\d\d-\d\d \d\d:\d\d:\d\d) UTC/g)].map(
        (m) => m[1],
      )
      const ours = nextRuns(job.cron, {timezone: 'UTC', count: 3}).map((d) =>
        d.toISOString().replace('T', ' ').slice(0, 19),
      )
      expect(elapses, job.name).toEqual(ours)
    }
  })
})

describe('renderers', () => {
  const jobs = resolveJobs(undefined, {timezone: 'UTC'})
  it('cron: one line per job through the locking wrapper, with metrics files and a final newline', () => {
    const [wrapper, cron] = renderCron(jobs, host)
    const lines = cron.content.split('\n').filter((l) => /^\S+ \S+ \S+ \S+ \S+ root /.test(l))
    expect(lines).toHaveLength(5)
    expect(lines[0]).toBe(
      '0 2 * * * root /etc/charge/charge-ops-job backup-db backup db --metrics-file /var/lib/node-exporter/charge_ops_backup_db.prom',
    )
    expect(lines[4]).toContain('capacity --format prometheus --output /var/lib/node-exporter/charge_ops_capacity.prom')
    expect(cron.content.endsWith('\n')).toBe(true)
    expect(wrapper.mode).toBe(0o755)
    expect(wrapper.content).toContain('flock -n -E 75')
  })
  it('the wrapper really skips a run while the previous one holds the lock, and logs both', async () => {
    const {mkdtempSync, writeFileSync, readFileSync, chmodSync, existsSync} = await import('node:fs')
    const {join} = await import('node:path')
    const {tmpdir} = await import('node:os')
    const {spawn, spawnSync} = await import('node:child_process')
    const dir = mkdtempSync(join(tmpdir(), 'sched-wrapper-'))
    const fake = join(dir, 'fake-charge-ops')
    writeFileSync(fake, '#!/bin/sh\necho "ran $*"\nsleep "${SLEEP:-0}"\n')
    chmodSync(fake, 0o755)
    const [wrapper] = renderCron(jobs, {
      ...host,
      bin: fake,
      lockDir: join(dir, 'lock'),
      logDir: join(dir, 'log'),
      credentialsFile: join(dir, 'none.env'),
      wrapperPath: join(dir, 'job'),
    })
    const script = join(dir, 'job')
    writeFileSync(script, wrapper.content)
    chmodSync(script, 0o755)
    const first = spawn(script, ['backup-db', 'backup', 'db'], {env: {...process.env, SLEEP: '2'}})
    // the first run holds the lock once its job printed "ran …" into the log: wait for that line
    const logFile = join(dir, 'log', 'backup-db.log')
    for (
      const deadline = Date.now() + 30_000;
      !(existsSync(logFile) && readFileSync(logFile, 'utf8').includes('ran backup db'));
    ) {
      if (Date.now() > deadline) throw new Error('the first run never started')
      await new Promise((r) => setTimeout(r, 20))
    }
    const second = spawnSync(script, ['backup-db', 'backup', 'db'])
    expect(second.status).toBe(75)
    await new Promise((r) => first.on('exit', r))
    const log = readFileSync(join(dir, 'log', 'backup-db.log'), 'utf8')
    expect(log).toContain('ran backup db --config /etc/charge/charge-ops.yaml')
    expect(log).toMatch(/skipped backup-db: the previous run still holds/)
    expect(log).toMatch(/end backup-db exit=0/)
  })
  it('systemd: a oneshot service and a Persistent timer with RandomizedDelaySec per job', () => {
    const files = renderSystemd(jobs, host)
    expect(files.map((f) => f.path)).toContain('systemd/charge-ops-backup-db.timer')
    const timer = files.find((f) => f.path === 'systemd/charge-ops-prune.timer')!.content
    expect(timer).toContain('OnCalendar=Sun *-*-* 04:00:00 UTC')
    expect(timer).toContain('Persistent=true')
    expect(timer).toMatch(/RandomizedDelaySec=\d+/)
    const service = files.find((f) => f.path === 'systemd/charge-ops-backup-db.service')!.content
    expect(service).toContain('Type=oneshot')
    expect(service).toContain(
      'ExecStart=/usr/bin/flock -n -E 75 /run/lock/charge-ops/backup-db.lock /usr/local/bin/charge-ops backup db --metrics-file /var/lib/node-exporter/charge_ops_backup_db.prom --config /etc/charge/charge-ops.yaml',
    )
    expect(service).toContain('StandardOutput=append:/var/log/charge-ops/backup-db.log')
  })
  it('charge-ops.yaml schedules override the defaults', () => {
    const jobs2 = resolveJobs({
      schedules: {
        'backup-db': {
          cron: '30 1 * * *',
          command: 'charge-ops backup db --jobs 2',
          timezone: 'Asia/Shanghai',
          enabled: true,
        },
      },
    })
    const db = jobs2.find((j) => j.name === 'backup-db')!
    expect(db).toMatchObject({
      cron: '30 1 * * *',
      args: ['backup', 'db', '--jobs', '2'],
      timezone: 'Asia/Shanghai',
      metricsFlag: '--metrics-file',
    })
  })
})
