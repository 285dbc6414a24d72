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
import {archiveCommand, restoreCommand} from '../../src/wal/command-lines.js'
import {spoolDir} from '../../src/wal/spool.js'
import {ENTRY, killPointEnv, pidAlive, readReached, runCli, runToKillPoint, waitUntil} from '../support/index.js'

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

const cliOptions = () => ({cwd: dir, bareEnv: true, env: {HOME: dir}, timeout: 60_000})
const cli = (args: string[]) => runCli(args, cliOptions())
const loc = () => ['--repo', repo, '--stack', 'prod']
const fetchSpool = () =>
  spoolDir(
    'fetch',
    {repository: repo, stack: 'prod', systemIdentifier: SYSID.toString()},
    path.join(dir, 'charge-ops-spool'),
  )
const pushSpool = () => spoolDir('push', {repository: repo, stack: 'prod'}, path.join(dir, 'charge-ops-spool'))
const stored = (name: string) => path.join(repo, 'prod', 'wal', '00000001', `${name}.zst`)
const originals = new Map<string, Buffer>()

beforeAll(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'charge-ops-wal-async-'))
  repo = path.join(dir, 'repo')
  // 1..12 archived the plain way
  for (let n = 1; n <= 12; n++) {
    originals.set(seg(n), segment(seg(n)))
    const r = cli(['wal', 'push', `pg_wal/${seg(n)}`, ...loc()])
    expect(r.stderr).toBe('')
  }
}, 120_000)
afterAll(() => fs.rmSync(dir, {recursive: true, force: true}))

describe('wal fetch --prefetch through the restore_command line', () => {
  // PostgreSQL's side, as far as the prefetcher can tell: a postmaster.pid naming a live process
  // (this test's) and recovery.signal in the data directory; the line run by /bin/sh in it
  const line = () =>
    restoreCommand({repository: repo, stack: 'prod', fast: true, prefetch: 4, systemIdentifier: SYSID.toString()})
  const log = () => path.join(dir, 'server.log')
  /** restore_command for `name`: its stderr into the "server log" (the prefetcher it starts outlives it) */
  function restore(name: string, env: Record<string, string> = {}) {
    fs.rmSync(path.join(dir, 'pg_wal', 'RECOVERYXLOG'), {force: true})
    const r = spawnSync(
      '/bin/sh',
      ['-c', `${line().replaceAll('%f', name).replaceAll('%p', 'pg_wal/RECOVERYXLOG')} 2>>${log()}`],
      {cwd: dir, env: {PATH: process.env.PATH, HOME: dir, ...env}, timeout: 60_000},
    )
    return r.status
  }
  const got = () => fs.readFileSync(path.join(dir, 'pg_wal', 'RECOVERYXLOG'))
  const spooled = () =>
    fs.existsSync(fetchSpool())
      ? fs
          .readdirSync(fetchSpool())
          .filter((f) => /^[0-9A-F]{24}$/.test(f))
          .sort()
      : []
  /** recovery "ends" (recovery.signal removed): every prefetcher stops and removes the spool */
  async function endRecovery() {
    fs.rmSync(path.join(dir, 'recovery.signal'), {force: true})
    await waitUntil(
      async () =>
        !fs.existsSync(fetchSpool()) &&
        !/prefetch-worker/.test(
          spawnSync('ps', ['-eo', 'args'], {encoding: 'utf8'})
            .stdout.split('\n')
            .filter((l) => l.includes(dir))
            .join('\n'),
        ),
      {timeoutMs: 20_000, what: 'the prefetchers to stop'},
    )
    fs.writeFileSync(path.join(dir, 'recovery.signal'), '')
  }

  beforeAll(() => {
    fs.writeFileSync(path.join(dir, 'postmaster.pid'), `${process.pid}\n${dir}\n`)
    fs.writeFileSync(path.join(dir, 'recovery.signal'), '')
  })
  afterAll(async () => {
    await endRecovery()
    fs.rmSync(path.join(dir, 'postmaster.pid'))
  })

  it('a prefetcher keeps the next segments spooled; the line hands them over with one mv, the repository unread', async () => {
    expect(line()).toMatch(
      /^\{ read b <\/proc\/sys\/kernel\/random\/boot_id; \} 2>\/dev\/null; f=charge-ops-spool\/fetch\/[0-9a-f]{16}\.\$b\/%f; test -f "\$f" && mv -f "\$f" %p \|\| exec \S+ \S+fetch-main\.js %f %p --repo \S+ --stack prod --prefetch 4$/,
    )
    expect(restore(seg(1))).toBe(0)
    expect(got().equals(originals.get(seg(1))!)).toBe(true)
    await waitUntil(async () => spooled().length === 4, {timeoutMs: 30_000, what: 'segments 2-5 spooled'})
    expect(spooled()).toEqual([seg(2), seg(3), seg(4), seg(5)])
    // the repository gone: 2 and 3 still come, from the spool, byte for byte
    fs.renameSync(repo, `${repo}.away`)
    try {
      for (const n of [2, 3]) {
        expect(restore(seg(n))).toBe(0)
        expect(got().equals(originals.get(seg(n))!)).toBe(true)
      }
    } finally {
      fs.renameSync(`${repo}.away`, repo)
    }
    for (const n of [4, 5]) {
      expect(restore(seg(n))).toBe(0)
      expect(got().equals(originals.get(seg(n))!)).toBe(true)
    }
    await endRecovery()
    expect(fs.readFileSync(log(), 'utf8')).toMatch(
      /recovery ended; \d+ segment\(s\) prefetched, 4 handed over from the spool/,
    )
  }, 90_000)

  it('a prefetcher killed mid-segment never hands PostgreSQL a partial segment', async () => {
    const faults = fs.mkdtempSync(path.join(dir, 'faults-'))
    expect(restore(seg(6), killPointEnv('wal.prefetch.mid-segment', faults))).toBe(0)
    // PostgreSQL got the segment it asked for; the prefetcher dies with half of 7 or 8 written
    expect(got().equals(originals.get(seg(6))!)).toBe(true)
    const marker = path.join(faults, 'wal.prefetch.mid-segment.reached')
    await waitUntil(async () => fs.existsSync(marker), {timeoutMs: 30_000, what: 'the prefetcher at its kill point'})
    const reached = readReached(faults, 'wal.prefetch.mid-segment')
    await waitUntil(async () => !pidAlive(reached.pid), {timeoutMs: 10_000, what: 'the prefetcher killed'})
    expect(path.dirname(reached.temp)).toBe(fetchSpool())
    expect(path.basename(reached.temp)).toMatch(new RegExp(`^\\.${reached.name}\\.\\d+\\.[0-9a-f]+\\.tmp$`))
    expect(fs.existsSync(reached.temp)).toBe(true)
    // nothing under a segment's name but what was complete before the kill
    for (const name of spooled())
      expect(fs.readFileSync(path.join(fetchSpool(), name)).equals(originals.get(name)!)).toBe(true)
    expect(spooled()).not.toContain(reached.name)
    // the half-written one is asked: not served from the spool, fetched whole from the repository
    expect(restore(reached.name)).toBe(0)
    expect(got().equals(originals.get(reached.name)!)).toBe(true)
    // the prefetcher that call started removed the dead one's temp
    await waitUntil(async () => !fs.existsSync(reached.temp), {
      timeoutMs: 20_000,
      what: "the dead prefetcher's temp removed",
    })
  }, 90_000)

  it("a request on another timeline gets nothing from this timeline's spool", async () => {
    await waitUntil(async () => spooled().includes(seg(10)), {timeoutMs: 30_000, what: 'segment 10 spooled'})
    // PostgreSQL probes the newest timeline first: 2 is not archived, so exit 1 — though 10 of timeline 1 is spooled
    expect(restore('00000002000000000000000A')).toBe(1)
    expect(fs.existsSync(path.join(dir, 'pg_wal', 'RECOVERYXLOG'))).toBe(false)
    expect(restore(seg(10))).toBe(0)
    expect(got().equals(originals.get(seg(10))!)).toBe(true)
    await endRecovery()
  }, 90_000)
})

describe('wal push --async', () => {
  const ready = (name: string) => fs.writeFileSync(path.join(dir, 'pg_wal', 'archive_status', `${name}.ready`), '')
  /** a fresh spool and archive_status with segments `from`…`to` ready */
  function readyFresh(from: number, to: number) {
    fs.rmSync(pushSpool(), {recursive: true, force: true})
    for (const f of fs.readdirSync(path.join(dir, 'pg_wal', 'archive_status')))
      fs.rmSync(path.join(dir, 'pg_wal', 'archive_status', f))
    for (let n = from; n <= to; n++) {
      originals.set(seg(n), segment(seg(n)))
      ready(seg(n))
    }
  }
  const asyncLine = () =>
    archiveCommand({repository: repo, stack: 'prod', node: process.execPath, entry: ENTRY, asyncProcessMax: 2})
  /** the async archive_command for `name`, run by /bin/sh in the data directory as the archiver does; .ready → .done on success */
  function archive(name: string, stderrTo?: string) {
    const command = asyncLine().replaceAll('%p', `pg_wal/${name}`).replaceAll('%f', name)
    const r = spawnSync('/bin/sh', ['-c', stderrTo ? `${command} 2>>${stderrTo}` : command], {
      cwd: dir,
      encoding: 'utf8',
      env: {PATH: process.env.PATH, HOME: dir},
      timeout: 60_000,
    })
    if (r.status === 0)
      fs.renameSync(
        path.join(dir, 'pg_wal', 'archive_status', `${name}.ready`),
        path.join(dir, 'pg_wal', 'archive_status', `${name}.done`),
      )
    return r
  }

  it('with the repository broken: exit non-zero and no record; once repaired: pushes ahead and records', async () => {
    for (let n = 0x20; n <= 0x25; n++) {
      originals.set(seg(n), segment(seg(n)))
      ready(seg(n))
    }
    // the timeline folder replaced by a file: every put fails
    const tl = path.join(repo, 'prod', 'wal', '00000001')
    fs.renameSync(tl, `${tl}.away`)
    fs.writeFileSync(tl, '')
    const down = cli(['wal', 'push', `pg_wal/${seg(0x20)}`, ...loc(), '--async', '--process-max', '2'])
    expect(down.code).not.toBe(0)
    expect(down.stderr).toMatch(new RegExp(`wal push pg_wal/${seg(0x20)}`))
    expect(fs.existsSync(pushSpool()) ? fs.readdirSync(pushSpool()) : []).toEqual([])
    fs.rmSync(tl)
    fs.renameSync(`${tl}.away`, tl)

    const up = cli(['wal', 'push', `pg_wal/${seg(0x20)}`, ...loc(), '--async', '--process-max', '2'])
    expect(up.stderr).toBe('')
    expect(up.code).toBe(0)
    fs.rmSync(path.join(dir, 'pg_wal', 'archive_status', `${seg(0x20)}.ready`))
    // 2 workers: the asked one plus 3 ahead
    expect(
      fs
        .readdirSync(pushSpool())
        .filter((f) => f.endsWith('.ok'))
        .sort(),
    ).toEqual([seg(0x21), seg(0x22), seg(0x23)].map((s) => `${s}.ok`))
    for (const n of [0x20, 0x21, 0x22, 0x23])
      expect((await decodeWal(fs.readFileSync(stored(seg(n))), seg(n))).equals(originals.get(seg(n))!)).toBe(true)
    expect(fs.existsSync(stored(seg(0x24)))).toBe(false)

    // the next call returns from its record (the --json form says so)
    const next = cli(['wal', 'push', `pg_wal/${seg(0x21)}`, ...loc(), '--async', '--json'])
    expect(next.code).toBe(0)
    expect(JSON.parse(next.stdout)).toMatchObject({file: seg(0x21), fromSpool: true, pushedAhead: []})
    fs.rmSync(path.join(dir, 'pg_wal', 'archive_status', `${seg(0x21)}.ready`))
  }, 90_000)

  it('a record does not speak for other content in pg_wal', () => {
    // 0x22 was pushed ahead; pg_wal now holds other bytes under its name
    segment(seg(0x22), 9)
    const r = cli(['wal', 'push', `pg_wal/${seg(0x22)}`, ...loc(), '--async'])
    expect(r.code).toBe(2)
    expect(r.stderr).toMatch(/already archived with different content/)
    expect(fs.existsSync(path.join(pushSpool(), `${seg(0x22)}.ok`))).toBe(false)
  }, 60_000)

  it('a push-ahead killed before its record leaves no record, and the segment is pushed when asked', async () => {
    for (let n = 0x22; n <= 0x25; n++) fs.rmSync(path.join(dir, 'pg_wal', 'archive_status', `${seg(n)}.ready`))
    fs.rmSync(pushSpool(), {recursive: true})
    for (const n of [0x26, 0x27]) {
      originals.set(seg(n), segment(seg(n)))
      ready(seg(n))
    }
    const faults = fs.mkdtempSync(path.join(dir, 'faults-'))
    // SIGKILL (asserted): PostgreSQL counts it as a failure and retries
    const killed = await runToKillPoint(
      'wal.push-ahead.before-record',
      ['wal', 'push', `pg_wal/${seg(0x26)}`, ...loc(), '--async', '--process-max', '1'],
      {...cliOptions(), faultDir: faults},
    )
    expect(killed.code).toBeNull()
    expect(killed.reached.name).toBe(seg(0x27))
    expect(fs.existsSync(stored(seg(0x27)))).toBe(true) // in the repository, but not recorded
    expect(fs.readdirSync(pushSpool()).filter((f) => f.endsWith('.ok'))).toEqual([])
    const again = cli(['wal', 'push', `pg_wal/${seg(0x27)}`, ...loc(), '--async', '--json'])
    expect(JSON.parse(again.stdout)).toMatchObject({file: seg(0x27), fromSpool: false, alreadyArchived: true})
    expect(again.stderr).toBe('')
    expect(again.code).toBe(0)
  }, 60_000)

  it("in a server's data directory a push-ahead worker pushes the ready segments beside the archiver, and its calls end in the shell", async () => {
    readyFresh(0x40, 0x45)
    const log = path.join(dir, 'archiver.log')
    const workers = () =>
      spawnSync('ps', ['-eo', 'args'], {encoding: 'utf8'})
        .stdout.split('\n')
        .filter((l) => l.includes('push-ahead-worker') && l.includes(pushSpool()))
    // PostgreSQL's side: a postmaster.pid naming a live process (this test's)
    fs.writeFileSync(path.join(dir, 'postmaster.pid'), `${process.pid}\n${dir}\n`)
    const tl = path.join(repo, 'prod', 'wal', '00000001')
    try {
      // the first call stores its own segment and starts the worker, which records the other five
      expect(archive(seg(0x40), log).status).toBe(0)
      expect((await decodeWal(fs.readFileSync(stored(seg(0x40))), seg(0x40))).equals(originals.get(seg(0x40))!)).toBe(
        true,
      )
      const recorded = [0x41, 0x42, 0x43, 0x44, 0x45].map((n) => path.join(pushSpool(), `${seg(n)}.sha256`))
      await waitUntil(async () => recorded.every((f) => fs.existsSync(f)), {
        timeoutMs: 60_000,
        what: 'the worker to record 0x41…0x45',
      })
      // the repository broken now: every later call still ends in the shell (the repository confirmed them before)
      fs.renameSync(tl, `${tl}.away`)
      fs.writeFileSync(tl, '')
      for (let n = 0x41; n <= 0x45; n++) expect(archive(seg(n), log).status).toBe(0)
      expect(recorded.filter((f) => fs.existsSync(f))).toEqual([])
    } finally {
      if (fs.existsSync(`${tl}.away`)) {
        fs.rmSync(tl, {force: true})
        fs.renameSync(`${tl}.away`, tl)
      }
      // the server gone: the worker stops by itself
      fs.rmSync(path.join(dir, 'postmaster.pid'), {force: true})
    }
    for (let n = 0x41; n <= 0x45; n++)
      expect((await decodeWal(fs.readFileSync(stored(seg(n))), seg(n))).equals(originals.get(seg(n))!)).toBe(true)
    await waitUntil(async () => workers().length === 0, {timeoutMs: 20_000, what: 'the push-ahead worker to stop'})
    expect(fs.readFileSync(log, 'utf8')).toMatch(
      /charge-ops wal push --async: push-ahead worker stopped \(the server is gone\); [56] segment\(s\) pushed ahead/,
    )
  }, 120_000)

  it('the archive_command line ends a pushed-ahead segment with one sha256 (openssl), and only for the recorded bytes', () => {
    readyFresh(0x30, 0x33)
    expect(asyncLine()).toMatch(
      /^f=charge-ops-spool\/push\/[0-9a-f]{16}\/%f; test -f "\$f\.sha256" && read h x < "\$f\.sha256" && test \$\{#h\} -eq 64 && set -- \$\(openssl dgst -sha256 -r %p 2>\/dev\/null\) && test "\$1" = "\$h" && rm -f "\$f\.sha256" "\$f\.ok" \|\| exec \S+ \S+run\.js wal push %p --repo \S+ --stack prod --async --process-max 2$/,
    )
    expect(archive(seg(0x30)).status).toBe(0)
    expect(fs.readFileSync(path.join(pushSpool(), `${seg(0x31)}.sha256`), 'utf8')).toMatch(
      new RegExp(`^[0-9a-f]{64}  pg_wal/${seg(0x31)}\n$`),
    )
    // the repository broken (its timeline folder replaced by a file): 0x31 and 0x32 still end in
    // the shell — the repository confirmed them before
    const tl = path.join(repo, 'prod', 'wal', '00000001')
    fs.renameSync(tl, `${tl}.away`)
    fs.writeFileSync(tl, '')
    try {
      for (const n of [0x31, 0x32]) {
        const r = archive(seg(n))
        expect(r.stderr).toBe('')
        expect(r.status).toBe(0)
        expect(fs.existsSync(path.join(pushSpool(), `${seg(n)}.sha256`))).toBe(false)
      }
      // other bytes in pg_wal under 0x33's name: the sha256 differs, charge-ops runs (and fails: the repository is broken)
      segment(seg(0x33), 7)
      expect(archive(seg(0x33)).status).not.toBe(0)
      // an empty record proves nothing (an empty hash must not equal it): charge-ops runs, and fails
      originals.set(seg(0x34), segment(seg(0x34)))
      ready(seg(0x34))
      fs.writeFileSync(path.join(pushSpool(), `${seg(0x34)}.sha256`), '')
      expect(archive(seg(0x34)).status).not.toBe(0)
    } finally {
      fs.rmSync(tl)
      fs.renameSync(`${tl}.away`, tl)
    }
    // charge-ops, asked again, finds the pushed content differs: refused, nothing overwritten
    const conflict = archive(seg(0x33))
    expect(conflict.status).toBe(2)
    expect(conflict.stderr).toMatch(/already archived with different content/)
    fs.writeFileSync(path.join(dir, 'pg_wal', seg(0x33)), originals.get(seg(0x33))!)
    expect(archive(seg(0x33)).status).toBe(0)
  }, 90_000)
})
