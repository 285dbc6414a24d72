/**
 * `charge-ops wal push` / `wal fetch` as PostgreSQL runs them (the built bin/run.js), on synthetic
 * 16 MB segments with a real long page header: idempotent re-push, never-overwrite, foreign
 * cluster refused, quiet miss (exit 1), corruption (exit 126), kill -9 at a kill point mid-push.
 */
import {spawnSync} from 'node:child_process'
import {randomBytes} from 'node:crypto'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'

import {afterAll, beforeAll, describe, expect, it} from 'vitest'

import {decodeWal} from '../../src/wal/codec.js'
import {ENTRY, ROOT, runCli, runToKillPoint} from '../support/index.js'

const SYSID = 7_311_234_567_890_123_456n
let dir: string
let repo: string

function segment(name: string, options: {sysid?: bigint; fill?: number} = {}): string {
  const data = Buffer.alloc(16 * 1024 * 1024)
  // compressible body with some entropy, like real WAL
  for (let off = 8192; off < data.length; off += 8192) randomBytes(512).copy(data, off + 64)
  data.fill(options.fill ?? 0, 40, 64)
  data.writeUInt16LE(0xd110, 0) // PostgreSQL 15 XLOG_PAGE_MAGIC
  data.writeUInt16LE(0x0002, 2) // XLP_LONG_HEADER
  data.writeUInt32LE(Number.parseInt(name.slice(0, 8), 16), 4)
  data.writeBigUInt64LE(0n, 8)
  data.writeBigUInt64LE(options.sysid ?? SYSID, 24)
  data.writeUInt32LE(16 * 1024 * 1024, 32)
  data.writeUInt32LE(8192, 36)
  const file = path.join(dir, 'pg_wal', name)
  fs.mkdirSync(path.dirname(file), {recursive: true})
  fs.writeFileSync(file, data)
  return file
}

const cliOptions = () => ({cwd: dir, bareEnv: true, env: {HOME: dir}})
const cli = (args: string[]) => runCli(args, cliOptions())

const loc = () => ['--repo', repo, '--stack', 'prod']
const stored = (name: string) => path.join(repo, 'prod', 'wal', name.slice(0, 8), `${name}.zst`)

beforeAll(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'charge-ops-wal-e2e-'))
  repo = path.join(dir, 'repo')
})
afterAll(() => fs.rmSync(dir, {recursive: true, force: true}))

describe('wal push', () => {
  it('archives a segment under its timeline and records the cluster', async () => {
    const name = '000000010000000000000001'
    segment(name)
    const r = cli(['wal', 'push', `pg_wal/${name}`, ...loc()])
    expect(r.stderr).toBe('')
    expect(r.stdout).toBe('')
    expect(r.code).toBe(0)
    const cluster = JSON.parse(fs.readFileSync(path.join(repo, 'prod', 'cluster.json'), 'utf8'))
    expect(cluster.systemIdentifier).toBe(SYSID.toString())
    expect(cluster.postgresMajor).toBe(15)
    const restored = await decodeWal(fs.readFileSync(stored(name)), name)
    expect(restored.equals(fs.readFileSync(path.join(dir, 'pg_wal', name)))).toBe(true)
    // a plain zstd file: the zstd CLI decodes it (skipping the checksum frame)
    const z = spawnSync('zstd', ['-q', '-d', '-c', stored(name)], {maxBuffer: 64 * 1024 * 1024})
    expect(z.status).toBe(0)
    expect(z.stdout.equals(restored)).toBe(true)
  })

  it('accepts the same content again and refuses different content', () => {
    const name = '000000010000000000000001'
    const again = cli(['wal', 'push', `pg_wal/${name}`, ...loc(), '--json'])
    expect(again.code).toBe(0)
    expect(JSON.parse(again.stdout).alreadyArchived).toBe(true)
    const before = fs.readFileSync(stored(name))
    segment(name, {fill: 7})
    const other = cli(['wal', 'push', `pg_wal/${name}`, ...loc()])
    expect(other.code).toBe(2)
    expect(other.stderr).toMatch(/already archived with different content/)
    expect(fs.readFileSync(stored(name)).equals(before)).toBe(true)
  })

  it('refuses WAL from another cluster and writes nothing', () => {
    const name = '000000010000000000000002'
    segment(name, {sysid: 42n})
    const r = cli(['wal', 'push', `pg_wal/${name}`, ...loc()])
    expect(r.code).toBe(2)
    expect(r.stderr).toMatch(/comes from another cluster: system identifier 42/)
    expect(fs.existsSync(stored(name))).toBe(false)
  })

  it("accepts the first segment of a new timeline that begins with the old timeline's pages, judged by its history file", () => {
    // timeline 3 branched off timeline 1 at 0/405A064, in the middle of segment 4
    const name = '000000030000000000000004'
    const file = segment(name)
    const data = fs.readFileSync(file)
    for (let off = 0; off < data.length; off += 8192) {
      const pageStart = 0x4000000n + BigInt(off)
      data.writeUInt16LE(0xd110, off)
      data.writeUInt32LE(pageStart + 8192n <= 0x405a064n || pageStart < 0x405a064n ? 1 : 3, off + 4)
      data.writeBigUInt64LE(pageStart, off + 8)
    }
    fs.writeFileSync(file, data)
    const refused = cli(['wal', 'push', `pg_wal/${name}`, ...loc()])
    expect(refused.code).toBe(2)
    expect(refused.stderr).toMatch(/00000003\.history is neither in pg_wal nor in the archive/)
    expect(fs.existsSync(stored(name))).toBe(false)
    fs.writeFileSync(path.join(dir, 'pg_wal', '00000003.history'), '1\t0/405A064\tbefore 2026-12-03 09:29:20+00\n')
    const history = cli(['wal', 'push', 'pg_wal/00000003.history', ...loc()])
    expect(history.code, history.stderr).toBe(0)
    expect(fs.existsSync(path.join(repo, 'prod', 'wal', '00000003', '00000003.history.zst'))).toBe(true)
    fs.rmSync(path.join(dir, 'pg_wal', '00000003.history')) // now judged from the archived copy
    const accepted = cli(['wal', 'push', `pg_wal/${name}`, ...loc()])
    expect(accepted.stderr).toBe('')
    expect(accepted.code).toBe(0)
    // a later segment of timeline 3 still holding timeline 1 pages is not a switch segment
    const later = '000000030000000000000005'
    const bad = segment(later)
    const badData = fs.readFileSync(bad)
    badData.writeUInt32LE(1, 4)
    badData.writeBigUInt64LE(0x5000000n, 8)
    fs.writeFileSync(bad, badData)
    const r = cli(['wal', 'push', `pg_wal/${later}`, ...loc()])
    expect(r.code).toBe(2)
    expect(r.stderr).toMatch(/branched off timeline 1 at 0\/405A064, outside this segment/)
  })

  it('rejects a path that is not a WAL file name', () => {
    fs.writeFileSync(path.join(dir, 'notes.txt'), 'x')
    const r = cli(['wal', 'push', 'notes.txt', ...loc()])
    expect(r.code).toBe(2)
    expect(r.stderr).toMatch(/is not a WAL file name/)
  })

  it('killed -9 at repository.put.temp-written: no segment under its name, the temp file names the dead pid; the retry archives it whole; backup list --all / prune see and remove the temp file once stale', async () => {
    const faults = fs.mkdtempSync(path.join(dir, 'faults-'))
    const point = 'repository.put.temp-written'
    // the cluster's record first, so that the segment is the push's first put
    const first = '000000010000000000000010'
    segment(first)
    expect(cli(['wal', 'push', `pg_wal/${first}`, ...loc()]).code).toBe(0)
    const name = '000000010000000000000011'
    const file = segment(name)
    const {reached: marker} = await runToKillPoint(point, ['wal', 'push', `pg_wal/${name}`, ...loc()], {
      ...cliOptions(),
      faultDir: faults,
    })
    expect(marker.key).toBe(`prod/wal/00000001/${name}.zst`)
    // killed between the fsynced temp file and the link: nothing under the segment's name
    expect(fs.existsSync(stored(name))).toBe(false)
    const temps = fs.readdirSync(path.dirname(stored(name))).filter((f) => f.startsWith('.tmp-'))
    expect(temps).toEqual([expect.stringMatching(new RegExp(`^\\.tmp-${marker.pid}-`))])

    const retry = cli(['wal', 'push', `pg_wal/${name}`, ...loc()])
    expect(retry.code, retry.stderr).toBe(0)
    expect((await decodeWal(fs.readFileSync(stored(name)), name)).equals(fs.readFileSync(file))).toBe(true)

    // a wal push on another host could still be writing a young temp file: listed once 10 min old
    const tempKey = `prod/wal/00000001/${temps[0]}`
    const list = () =>
      JSON.parse(cli(['backup', 'list', '--all', '--json', ...loc()]).stdout).temporary.map((t: {key: string}) => t.key)
    expect(list()).toEqual([])
    const old = new Date(Date.now() - 11 * 60_000)
    fs.utimesSync(path.join(repo, tempKey), old, old)
    expect(list()).toEqual([tempKey])
    const prune = cli(['backup', 'prune', '--yes', '--json', ...loc()])
    expect(prune.code, prune.stderr).toBe(0)
    expect(JSON.parse(prune.stdout).temporaryRemoved.map((t: {key: string}) => t.key)).toEqual([tempKey])
    expect(fs.readdirSync(path.dirname(stored(name))).filter((f) => f.startsWith('.tmp-'))).toEqual([])
    expect(fs.existsSync(stored(name)), 'prune keeps the archived segment (no base backup: no WAL retention)').toBe(
      true,
    )
  }, 60_000)
})

describe('wal fetch', () => {
  it('restores a verified segment', async () => {
    const name = '000000010000000000000001'
    const dest = path.join(dir, 'restored-seg')
    const r = cli(['wal', 'fetch', name, dest, ...loc()])
    expect(r.code).toBe(0)
    expect(r.stderr).toBe('')
    // the first push's content (the local file was since rewritten with other bytes)
    segment(name)
    const first = fs.readFileSync(path.join(dir, 'pg_wal', name))
    const got = fs.readFileSync(dest)
    expect(got.length).toBe(16 * 1024 * 1024)
    expect(got.subarray(0, 40).equals(first.subarray(0, 40))).toBe(true)
    expect(got.subarray(40, 64).every((b) => b === 0)).toBe(true)
    expect(got.equals(await decodeWal(fs.readFileSync(stored(name)), name))).toBe(true)
  })

  it('exits 1 quietly when the file is not archived (end of archive)', () => {
    const r = cli(['wal', 'fetch', '00000001000000000000007F', path.join(dir, 'x'), ...loc()])
    expect(r.code).toBe(1)
    expect(r.stderr).toBe('')
    expect(r.stdout).toBe('')
    expect(fs.existsSync(path.join(dir, 'x'))).toBe(false)
    const history = cli(['wal', 'fetch', '00000002.history', path.join(dir, 'x'), ...loc()])
    expect(history.code).toBe(1)
  })

  it('exits 126 naming the segment when the stored copy is corrupted', () => {
    const name = '000000010000000000000010'
    const body = fs.readFileSync(stored(name))
    body[body.length - 10] ^= 0xff
    fs.writeFileSync(stored(name), body)
    const dest = path.join(dir, 'corrupt-dest')
    const r = cli(['wal', 'fetch', name, dest, ...loc()])
    expect(r.code).toBe(126)
    expect(r.stderr).toMatch(new RegExp(`wal fetch ${name}: ${name}: `))
    expect(fs.existsSync(dest)).toBe(false)
    // the fast restore_command entry behaves the same
    const fast = (args: string[]) =>
      spawnSync(process.execPath, [path.join(ROOT, 'dist/src/wal/fetch-main.js'), ...args, ...loc()], {
        cwd: dir,
        encoding: 'utf8',
      })
    const corrupt = fast([name, dest])
    expect(corrupt.status).toBe(126)
    expect(corrupt.stderr).toMatch(new RegExp(`wal fetch ${name}: ${name}: .*checksum mismatch|does not decompress`))
    const missing = fast(['00000001000000000000007F', dest])
    expect(missing.status).toBe(1)
    expect(missing.stderr).toBe('')
    expect(fast(['000000010000000000000001', dest]).status).toBe(0)
    expect(fs.statSync(dest).size).toBe(16 * 1024 * 1024)
  })
})

describe('permissions', () => {
  it('explains a repository the pushing user cannot write', () => {
    if (process.getuid?.() !== 0) return
    const name = '000000010000000000000030'
    segment(name)
    fs.chmodSync(dir, 0o755)
    const locked = path.join(dir, 'locked-repo')
    fs.mkdirSync(locked, {mode: 0o755})
    // The other user must be able to run this node: one installed under root's home (the CI's
    // Node 22 pass runs from ~/.npm) is not reachable for it, so use the system's node then.
    const node = spawnSync(process.execPath, ['--version'], {uid: 65534, gid: 65534}).error
      ? '/usr/bin/node'
      : process.execPath
    const r = spawnSync(node, [ENTRY, 'wal', 'push', `pg_wal/${name}`, '--repo', locked, '--stack', 'prod'], {
      cwd: dir,
      encoding: 'utf8',
      uid: 65534,
      gid: 65534,
      env: {PATH: process.env.PATH, HOME: '/tmp'},
    })
    expect(r.error).toBeUndefined()
    expect(r.status).toBe(2)
    expect(r.stderr).toMatch(/permission denied in the repository/)
    expect(r.stderr).toMatch(/chown -R postgres:/)
  })
})

describe('wal-g engine', () => {
  it('exits 5 with the install hint when wal-g is not on PATH', () => {
    const name = '000000010000000000000031'
    segment(name)
    const r = cli(['wal', 'push', `pg_wal/${name}`, ...loc(), '--engine', 'wal-g'])
    if (spawnSync('wal-g', ['--version']).error === undefined) return // a real wal-g is installed: covered elsewhere
    expect(r.code).toBe(5)
    expect(r.stderr).toMatch(/wal-g was not found on PATH/)
    expect(r.stderr).toMatch(/GitHub releases/)
  })
})
