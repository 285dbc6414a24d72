/** The compose form of the scheduled jobs and of archive_command (issue 13): pure rendering. */
import {mkdtempSync, rmSync, writeFileSync} from 'node:fs'
import {tmpdir} from 'node:os'
import {join} from 'node:path'

import {afterAll, describe, expect, it} from 'vitest'

import {chargeOpsYamlSchema} from '../../src/config/schema.js'
import {planSchedule, walArchivingOn} from '../../src/schedule/plan.js'
import {containerArchiveCommand, containerRestoreCommand} from '../../src/wal/command-lines.js'

const dir = mkdtempSync(join(tmpdir(), 'charge-ops-schedule-compose-'))
afterAll(() => rmSync(dir, {recursive: true, force: true}))

function settings(target: 'compose' | 'local', archiveMode?: string) {
  writeFileSync(
    join(dir, 'postgresql.conf'),
    archiveMode ? `wal_level = replica\narchive_mode = ${archiveMode}\n` : 'wal_level = replica\n',
  )
  const yaml = chargeOpsYamlSchema.parse({
    stack: 'charge',
    target,
    paths: {composeFile: 'docker-compose.yml', postgresqlConf: 'postgresql.conf'},
    compose: target === 'compose' ? {project: 'charge'} : undefined,
  })
  return {yaml, baseDir: dir, configPath: join(dir, 'charge-ops.yaml'), stack: 'charge'}
}

describe('schedule on a compose deployment', () => {
  it('cron jobs run charge-ops in the ops service, with the config path of the container and the textfile folder mounted', () => {
    const files = planSchedule('cron', {
      settings: settings('compose', 'on'),
      dir: join(dir, 'out'),
      textfileDir: '/var/lib/prom',
    })
    const wrapper = files.find((f) => f.path === 'charge-ops-job')!.content
    expect(wrapper).toContain(
      `flock -n -E 75 "$lock_dir/$job.lock" docker compose -f ${join(dir, 'docker-compose.yml')} -p charge run --rm --no-deps -T -v /var/lib/prom:/var/lib/prom ops "$@" --config /etc/charge-ops/charge-ops.yaml`,
    )
    const cron = files.find((f) => f.path === 'charge-ops.cron')!.content
    // WAL archiving on: a nightly base backup before the logical ones
    expect(cron).toMatch(
      /^0 1 \* \* \* root \S+charge-ops-job backup-base backup base --metrics-file \S+charge_ops_backup_base.prom$/m,
    )
  })

  it('systemd units run the same command; the host form stays the default elsewhere', () => {
    const units = planSchedule('systemd', {settings: settings('compose', 'on'), dir: join(dir, 'out')})
    expect(units.find((f) => f.path === './charge-ops-backup-db.service')!.content).toMatch(
      /^ExecStart=\/usr\/bin\/flock .* docker compose -f \S+ -p charge run --rm --no-deps -T -v \S+ ops backup db --metrics-file \S+ --config \/etc\/charge-ops\/charge-ops.yaml$/m,
    )
    const local = planSchedule('cron', {
      settings: settings('local'),
      dir: join(dir, 'out'),
      bin: '/usr/local/bin/charge-ops',
    })
    expect(local.find((f) => f.path === 'charge-ops-job')!.content).toContain(
      `/usr/local/bin/charge-ops "$@" --config ${join(dir, 'charge-ops.yaml')}`,
    )
    expect(local.find((f) => f.path === 'charge-ops.cron')!.content).not.toContain('backup-base')
    // --runner host on a compose deployment: the host form
    const host = planSchedule('cron', {settings: settings('compose', 'on'), dir: join(dir, 'out'), runner: 'host'})
    expect(host.find((f) => f.path === 'charge-ops-job')!.content).not.toContain('docker compose')
  })

  it('reads archive_mode from the postgresql.conf charge-ops.yaml names', () => {
    expect(walArchivingOn(settings('compose', 'on'))).toBe(true)
    expect(walArchivingOn(settings('compose', "'always'"))).toBe(true)
    expect(walArchivingOn(settings('compose', 'off'))).toBe(false)
    expect(walArchivingOn(settings('compose'))).toBe(false)
  })
})

describe('archive_command of the compose postgres image', () => {
  it('names the engine: native by the mounted config, wal-g on the line', () => {
    expect(containerArchiveCommand()).toBe('charge-ops wal push %p --config /etc/charge-ops/charge-ops.yaml')
    expect(containerArchiveCommand({engine: 'wal-g'})).toBe(
      'charge-ops wal push %p --config /etc/charge-ops/charge-ops.yaml --engine wal-g',
    )
    expect(containerRestoreCommand({engine: 'wal-g'})).toBe(
      'charge-ops wal fetch %f %p --config /etc/charge-ops/charge-ops.yaml --engine wal-g',
    )
  })
})
