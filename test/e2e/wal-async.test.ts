/**
 * The asynchronous forms of `wal fetch` (--prefetch) and `wal push` (--async), run as PostgreSQL
 * runs them (the built bin/run.js and dist/src/wal/fetch-main.js) on synthetic 16 MB segments:
 * the spool serves later segments without reading the repository, a prefetch worker killed
 * mid-segment (named kill point) leaves nothing that is ever served, push-ahead records only what
 * the repository confirmed and a record never speaks for other content.
 * The real-cluster side (recovery through restore_command, archiving with the repository down)
 * is test/integration/wal-async-pitr.test.ts.
 */
import {spawnSync} from 'node:child_process'
import {randomBytes} from 'node:crypto'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'

import {afterAll, beforeAll, describe, expect, it} from 'vitest'

import {decodeWal} from '../../src/wal/codec.js'
import {spoolDir} from '../../src/wal/spool.js'

const ROOT = path.resolve(import.meta.dirname, '../..')
const ENTRY = path.join(ROOT, 'bin/run.js')
const FETCH = path.join(ROOT, 'dist/src/wal/fetch-main.js')
const SYSID = 7_311_234_567_890_999_001n
let dir: string
let repo: string

const seg = (n: number) => `00000001000000000000${n.toString(16).toUpperCase().padStart(4, '0')}`

function segment(name: string, fill = 0): Buffer {
  const data = Buffer.alloc(16 * 1024 * 1024)
  for (let off = 8192; off < data.length; off += 8192) randomBytes(256).copy(data, off + 64)
  data.fill(fill, 40, 64)
  data.writeUInt16LE(0xd110, 0)
  data.writeUInt16LE(0x0002, 2)
  data.writeUInt32LE(1, 4)
  data.writeBigUInt64LE(SYSID, 24)
  data.writeUInt32LE(16 * 1024 * 1024, 32)
  data.writeUInt32LE(8192, 36)
  fs.mkdirSync(path.join(dir, 'pg_wal', 'archive_status'), {recursive: true})
  fs.writeFileSync(path.join(dir, 'pg_wal', name), data)
  return data
}

function run(file: string, args: string[], env: Record<string, string> = {}) {
  const r = spawnSync(process.execPath, [file, ...args], {cwd: dir, encoding: 'utf8', env: {PATH: process.env.PATH, HOME: dir, NO_COLOR: '1', ...env}, timeout: 60_000})
  return {code: r.status, stdout: r.stdout, stderr: r.stderr}
}
const loc = () => ['--repo', repo, '--stack', 'prod']
const fetchSpool = () => spoolDir('fetch', {repository: repo, stack: 'prod'}, path.join(dir, 'charge-ops-spool'))
const pushSpool = () => spoolDir('push', {repository: repo, stack: 'prod'}, path.join(dir, 'charge-ops-spool'))
const stored = (name: string) => path.join(repo, 'prod', 'wal', '00000001', `${name}.zst`)
const originals = new Map<string, Buffer>()

beforeAll(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'charge-ops-wal-async-'))
  repo = path.join(dir, 'repo')
  // 1..12 archived the plain way
  for (let n = 1; n <= 12; n++) {
    originals.set(seg(n), segment(seg(n)))
    const r = run(ENTRY, ['wal', 'push', `pg_wal/${seg(n)}`, ...loc()])
    expect(r.stderr).toBe('')
  }
}, 120_000)
afterAll(() => fs.rmSync(dir, {recursive: true, force: true}))

describe('wal fetch --prefetch', () => {
  it('spools the next segments and serves them without the repository', () => {
    const r = run(FETCH, [seg(1), 'pg_wal/RECOVERYXLOG', ...loc(), '--prefetch', '4'])
    expect(r.stderr).toBe('')
    expect(r.code).toBe(0)
    expect(fs.readFileSync(path.join(dir, 'pg_wal', 'RECOVERYXLOG')).equals(originals.get(seg(1))!)).toBe(true)
    expect(fs.readdirSync(fetchSpool()).sort()).toEqual([seg(2), seg(3), seg(4), seg(5)])
    // the repository gone: 2 and 3 still come, from the spool, byte for byte
    fs.renameSync(repo, `${repo}.away`)
    try {
      for (const n of [2, 3]) {
        const got = run(FETCH, [seg(n), 'pg_wal/RECOVERYXLOG', ...loc(), '--prefetch', '4'])
        expect(got.stderr).toBe('')
        expect(got.code).toBe(0)
        expect(fs.readFileSync(path.join(dir, 'pg_wal', 'RECOVERYXLOG')).equals(originals.get(seg(n))!)).toBe(true)
      }
    } finally {
      fs.renameSync(`${repo}.away`, repo)
    }
    // consumed and older ones are cleaned once a later one is served
    expect(fs.readdirSync(fetchSpool()).filter((f) => f <= seg(3))).toEqual([])
  }, 60_000)

  it('a worker killed mid-segment leaves a temp file that is never served', () => {
    fs.rmSync(path.join(dir, 'charge-ops-spool'), {recursive: true, force: true})
    const faults = fs.mkdtempSync(path.join(dir, 'faults-'))
    const r = run(FETCH, [seg(6), 'pg_wal/RECOVERYXLOG', ...loc(), '--prefetch', '2', '--process-max', '1'], {CHARGE_OPS_KILL_AT: 'wal.prefetch.mid-segment', CHARGE_OPS_FAULT_DIR: faults})
    // PostgreSQL still gets the segment it asked for
    expect(r.code).toBe(0)
    expect(fs.readFileSync(path.join(dir, 'pg_wal', 'RECOVERYXLOG')).equals(originals.get(seg(6))!)).toBe(true)
    expect(r.stderr).toMatch(/prefetch worker ended by SIGKILL; the next segments are fetched directly/)
    const reached = JSON.parse(fs.readFileSync(path.join(faults, 'wal.prefetch.mid-segment.reached'), 'utf8'))
    expect(reached.name).toBe(seg(7))
    // it died with half of 7 under a temp name; the fetch that started it removed that temp once
    // the worker was gone, and nothing is under a segment's name
    expect(path.dirname(reached.temp)).toBe(fetchSpool())
    expect(path.basename(reached.temp)).toMatch(new RegExp(`^\\.${seg(7)}\\.\\d+\\.[0-9a-f]+\\.tmp$`))
    expect(fs.readdirSync(fetchSpool())).toEqual([])
    // a temp a dead writer left (the whole fetch killed) is not served either, and is cleaned
    fs.writeFileSync(path.join(fetchSpool(), `.${seg(7)}.999999.abcdef.tmp`), originals.get(seg(7))!.subarray(0, 1024))
    // the next call fetches 7 whole from the repository (and cleans the dead worker's temp)
    const next = run(FETCH, [seg(7), 'pg_wal/RECOVERYXLOG', ...loc(), '--prefetch', '2'])
    expect(next.stderr).toBe('')
    expect(next.code).toBe(0)
    expect(fs.readFileSync(path.join(dir, 'pg_wal', 'RECOVERYXLOG')).equals(originals.get(seg(7))!)).toBe(true)
    expect(fs.readdirSync(fetchSpool()).sort()).toEqual([seg(8), seg(9)])
  }, 60_000)

  it('a request on another timeline gets nothing from this timeline\'s spool', () => {
    fs.rmSync(path.join(dir, 'pg_wal', 'RECOVERYXLOG'))
    // PostgreSQL probes the newest timeline first: 2 is not archived, so exit 1 — though 9 of timeline 1 is spooled
    const other = run(FETCH, ['000000020000000000000009', 'pg_wal/RECOVERYXLOG', ...loc(), '--prefetch', '2'])
    expect(other.code).toBe(1)
    expect(fs.existsSync(path.join(dir, 'pg_wal', 'RECOVERYXLOG'))).toBe(false)
    expect(fs.readdirSync(fetchSpool())).toContain(seg(9))
    const same = run(FETCH, [seg(9), 'pg_wal/RECOVERYXLOG', ...loc(), '--prefetch', '2'])
    expect(same.code).toBe(0)
    expect(fs.readFileSync(path.join(dir, 'pg_wal', 'RECOVERYXLOG')).equals(originals.get(seg(9))!)).toBe(true)
  }, 60_000)
})

describe('wal push --async', () => {
  const ready = (name: string) => fs.writeFileSync(path.join(dir, 'pg_wal', 'archive_status', `${name}.ready`), '')

  it('with the repository broken: exit non-zero and no record; once repaired: pushes ahead and records', async () => {
    for (let n = 0x20; n <= 0x25; n++) {
      originals.set(seg(n), segment(seg(n)))
      ready(seg(n))
    }
    // the timeline folder replaced by a file: every put fails
    const tl = path.join(repo, 'prod', 'wal', '00000001')
    fs.renameSync(tl, `${tl}.away`)
    fs.writeFileSync(tl, '')
    const down = run(ENTRY, ['wal', 'push', `pg_wal/${seg(0x20)}`, ...loc(), '--async', '--process-max', '2'])
    expect(down.code).not.toBe(0)
    expect(down.stderr).toMatch(new RegExp(`wal push pg_wal/${seg(0x20)}`))
    expect(fs.existsSync(pushSpool()) ? fs.readdirSync(pushSpool()) : []).toEqual([])
    fs.rmSync(tl)
    fs.renameSync(`${tl}.away`, tl)

    const up = run(ENTRY, ['wal', 'push', `pg_wal/${seg(0x20)}`, ...loc(), '--async', '--process-max', '2'])
    expect(up.stderr).toBe('')
    expect(up.code).toBe(0)
    fs.rmSync(path.join(dir, 'pg_wal', 'archive_status', `${seg(0x20)}.ready`))
    // 2 workers: the asked one plus 3 ahead
    expect(fs.readdirSync(pushSpool()).sort()).toEqual([seg(0x21), seg(0x22), seg(0x23)].map((s) => `${s}.ok`))
    for (const n of [0x20, 0x21, 0x22, 0x23]) expect((await decodeWal(fs.readFileSync(stored(seg(n))), seg(n))).equals(originals.get(seg(n))!)).toBe(true)
    expect(fs.existsSync(stored(seg(0x24)))).toBe(false)

    // the next call returns from its record (the --json form says so)
    const next = run(ENTRY, ['wal', 'push', `pg_wal/${seg(0x21)}`, ...loc(), '--async', '--json'])
    expect(next.code).toBe(0)
    expect(JSON.parse(next.stdout)).toMatchObject({file: seg(0x21), fromSpool: true, pushedAhead: []})
    fs.rmSync(path.join(dir, 'pg_wal', 'archive_status', `${seg(0x21)}.ready`))
  }, 90_000)

  it('a record does not speak for other content in pg_wal', () => {
    // 0x22 was pushed ahead; pg_wal now holds other bytes under its name
    segment(seg(0x22), 9)
    const r = run(ENTRY, ['wal', 'push', `pg_wal/${seg(0x22)}`, ...loc(), '--async'])
    expect(r.code).toBe(2)
    expect(r.stderr).toMatch(/already archived with different content/)
    expect(fs.existsSync(path.join(pushSpool(), `${seg(0x22)}.ok`))).toBe(false)
  }, 60_000)

  it('a push-ahead killed before its record leaves no record, and the segment is pushed when asked', () => {
    for (let n = 0x22; n <= 0x25; n++) fs.rmSync(path.join(dir, 'pg_wal', 'archive_status', `${seg(n)}.ready`))
    fs.rmSync(pushSpool(), {recursive: true})
    for (const n of [0x26, 0x27]) {
      originals.set(seg(n), segment(seg(n)))
      ready(seg(n))
    }
    const faults = fs.mkdtempSync(path.join(dir, 'faults-'))
    const killed = run(ENTRY, ['wal', 'push', `pg_wal/${seg(0x26)}`, ...loc(), '--async', '--process-max', '1'], {CHARGE_OPS_KILL_AT: 'wal.push-ahead.before-record', CHARGE_OPS_FAULT_DIR: faults})
    expect(killed.code).toBeNull() // SIGKILL: PostgreSQL counts it as a failure and retries
    expect(JSON.parse(fs.readFileSync(path.join(faults, 'wal.push-ahead.before-record.reached'), 'utf8')).name).toBe(seg(0x27))
    expect(fs.existsSync(stored(seg(0x27)))).toBe(true) // in the repository, but not recorded
    expect(fs.readdirSync(pushSpool()).filter((f) => f.endsWith('.ok'))).toEqual([])
    const again = run(ENTRY, ['wal', 'push', `pg_wal/${seg(0x27)}`, ...loc(), '--async', '--json'])
    expect(JSON.parse(again.stdout)).toMatchObject({file: seg(0x27), fromSpool: false, alreadyArchived: true})
    expect(again.stderr).toBe('')
    expect(again.code).toBe(0)
  }, 60_000)
})
