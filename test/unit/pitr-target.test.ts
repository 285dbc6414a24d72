import {describe, expect, it} from 'vitest'

import {chooseBaseBackup} from '../../src/restore/pitr.js'
import {parseTarget, postgresTimestamp, recoveryConf} from '../../src/restore/pitr-target.js'
import type {BackupManifest} from '../../src/repository/manifest.js'
import {parseWaldumpCommits, targetMicros} from '../../src/wal/last-commit.js'

describe('recovery targets', () => {
  it('needs exactly one target, and a time zone on times', () => {
    expect(() => parseTarget({})).toThrow(/exactly one/)
    expect(() => parseTarget({latest: true, 'target-lsn': '0/1'})).toThrow(/exactly one/)
    expect(() => parseTarget({'target-time': '2026-11-28 14:03:00'})).toThrow(/no time zone/)
    expect(() => parseTarget({'target-time': 'yesterday+08'})).toThrow(/not a timestamp/)
    expect(() => parseTarget({'target-lsn': 'zz'})).toThrow(/not a WAL position/)
    expect(parseTarget({'target-time': '2026-11-28T14:03:00.123456+08:00'})).toMatchObject({
      kind: 'time',
      text: '2026-11-28T14:03:00.123456+08:00',
    })
    expect(parseTarget({'target-lsn': '0/5000060'})).toEqual({kind: 'lsn', lsn: 0x5000060n})
  })

  it('reads commit times from pg_waldump to the microsecond, and compares targets at that precision', () => {
    const out = [
      'rmgr: Transaction len (rec/tot):     66/    66, tx:        722, lsn: 0/015004B0, prev 0/01500438, desc: COMMIT 2026-12-03 10:52:38.951802 UTC; inval msgs: catcache 21; sync',
      'rmgr: Transaction len (rec/tot):     34/    34, tx:        724, lsn: 0/01500800, prev 0/015006D0, desc: ABORT 2026-12-03 10:52:39.000007 UTC',
      'rmgr: Transaction len (rec/tot):     66/    66, tx:        725, lsn: 0/01500900, prev 0/01500800, desc: PREPARE gid g1: 2026-12-03 10:52:40 UTC',
    ].join('\n')
    const commits = parseWaldumpCommits(out, '000000010000000000000001')
    expect(commits.map((c) => c.text)).toEqual(['2026-12-03 10:52:38.951802+00', '2026-12-03 10:52:39.000007+00'])
    expect(commits[1]).toMatchObject({
      lsn: '0/01500800',
      micros: BigInt(Date.parse('2026-12-03T10:52:39Z')) * 1000n + 7n,
    })
    const t = parseTarget({'target-time': '2026-12-03T10:52:39.000006Z'})
    if (t.kind !== 'time') throw new Error('time target expected')
    expect(targetMicros(t.time, t.text) < commits[1].micros).toBe(true)
    const u = parseTarget({'target-time': '2026-12-03T18:52:39.000007+08:00'})
    if (u.kind !== 'time') throw new Error('time target expected')
    expect(targetMicros(u.time, u.text)).toBe(commits[1].micros)
  })

  it('writes restore_command, the target and promote', () => {
    const conf = recoveryConf({
      target: parseTarget({'target-time': '2026-11-28T06:03:00.5Z'}),
      restoreCommand: "node run.js wal fetch %f %p --repo '/a b'",
      port: 5433,
      archive: 'off',
    })
    expect(conf).toContain(`restore_command = 'node run.js wal fetch %f %p --repo ''/a b'''`)
    expect(conf).toContain(`recovery_target_time = '2026-11-28 06:03:00.5+00'`)
    expect(conf).toContain(`recovery_target_inclusive = on`)
    expect(conf).toContain(`recovery_target_action = 'promote'`)
    expect(conf).toContain(`recovery_target_timeline = 'latest'`)
    expect(conf).toContain('port = 5433')
    expect(conf).toContain('archive_mode = off')
    const latest = recoveryConf({target: {kind: 'latest'}, restoreCommand: 'x'})
    expect(latest).not.toContain('recovery_target_action')
    expect(latest).not.toContain('archive_mode')
    expect(postgresTimestamp('2026-11-28T06:03:00+08:00')).toBe('2026-11-28 06:03:00+08:00')
  })

  it('chooses the newest base backup that finished before the target', () => {
    const base = (id: string, finishedAt: string, stopLsn: string) =>
      ({id, kind: 'base', finishedAt, base: {startLsn: '0/1000000', stopLsn, timeline: 1}}) as unknown as BackupManifest
    const bases = [
      base('20261128T010000Z-base-aaaa', '2026-11-28T01:05:00Z', '0/3000000'),
      base('20261128T020000Z-base-bbbb', '2026-11-28T02:05:00Z', '0/9000000'),
    ]
    expect(chooseBaseBackup(bases, parseTarget({'target-time': '2026-11-28T02:00:00Z'})).id).toBe(
      '20261128T010000Z-base-aaaa',
    )
    expect(chooseBaseBackup(bases, parseTarget({'target-time': '2026-11-28T03:00:00Z'})).id).toBe(
      '20261128T020000Z-base-bbbb',
    )
    expect(chooseBaseBackup(bases, parseTarget({'target-lsn': '0/8000000'})).id).toBe('20261128T010000Z-base-aaaa')
    expect(chooseBaseBackup(bases, {kind: 'latest'}).id).toBe('20261128T020000Z-base-bbbb')
    expect(() => chooseBaseBackup(bases, parseTarget({'target-time': '2026-11-28T00:00:00Z'}))).toThrow(
      /no base backup finished before/,
    )
  })
})
