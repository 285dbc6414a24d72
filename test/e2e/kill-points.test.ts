/**
 * kill -9 at named kill points (src/core/faults.ts), through the built CLI. Each test asserts that
 * the point was reached (its marker), the state right after the kill, and that the rerun leaves
 * nothing behind (maintenance off, the Chroma server back, no temp file) with data that restores
 * identical. Issue 14, items 1–3: the maintenance flag and the stopped Chroma server name their
 * owner and the next run clears them; children die with the killed parent; temp files of killed
 * runs are listed, counted, swept.
 */
import {spawnSync} from 'node:child_process'
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  utimesSync,
  writeFileSync,
} from 'node:fs'
import {tmpdir} from 'node:os'
import {dirname, join} from 'node:path'

import {afterAll, beforeAll, describe, expect, it} from 'vitest'

import {chromaHeartbeat, ensureChroma, stopChroma} from '../../src/sandbox/servers.js'
import {
  freePort,
  pauseAt,
  pidAlive,
  runCli,
  runToKillPoint,
  sharedPostgres,
  dbHash,
  startS3,
  treeHash,
} from '../support/index.js'

const STACK = 'charge-analysis'
const pg = sharedPostgres()
let dir: string
let faults: string
let env: Record<string, string>
let source: string

const cli = (args: string[], extra: Record<string, string> = {}) => runCli(args, {env: {...env, ...extra}})

/** Runs the CLI with CHARGE_OPS_KILL_AT=point; resolves once it is dead, with the point's marker. */
const killAt = async (point: string, args: string[], extra: Record<string, string> = {}) =>
  (await runToKillPoint(point, args, {env: {...env, ...extra}, faultDir: faults})).reached

/** Runs (a zombie is dead: it only waits to be reaped by whatever pid 1 is on this machine). */
const alive = pidAlive

async function until(what: string, probe: () => boolean | Promise<boolean>, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (!(await probe())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await new Promise((r) => setTimeout(r, 25))
  }
}

function tempFiles(repo: string): string[] {
  if (!existsSync(repo)) return []
  return (readdirSync(repo, {recursive: true}) as string[]).filter((p) => p.split('/').pop()!.startsWith('.tmp-'))
}

const maintenanceFlag = () => join(dir, 'state', 'maintenance')

const dbHashOf = (db: string) => dbHash(pg, db)

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'co-killpoints-'))
  faults = join(dir, 'faults')
  mkdirSync(faults)
  mkdirSync(join(dir, 'staging'))
  const url = await pg.createDatabase()
  source = new URL(url).pathname.slice(1)
  // big enough that pg_dump / pg_restore run for seconds: a child that outlived its parent is seen
  await pg.query(
    `CREATE TABLE samples (id bigserial primary key, session int, v float8, note text);
     INSERT INTO samples (session, v, note) SELECT g % 300, random(), md5(g::text) FROM generate_series(1, 400000) g;
     CREATE INDEX samples_session ON samples (session);`,
    source,
  )
  env = {
    DATABASE_URL: url,
    CHARGE_OPS_STATE_DIR: join(dir, 'state'),
    CHARGE_OPS_STAGING_DIR: join(dir, 'staging'),
    CHARGE_OPS_FAULT_DIR: faults,
    NO_COLOR: '1',
  }
}, 180_000)
afterAll(() => rmSync(dir, {recursive: true, force: true}))

describe('backup db killed at its kill points', () => {
  it('backup.part.streaming: pg_dump and zstd die with it; the temp file is listed, counted by prune --dry-run, swept by the next backup, which restores identical', async () => {
    const repo = join(dir, 'repo-db')
    const marker = await killAt('backup.part.streaming', ['backup', 'db', '--repo', repo, '--quiet'])
    expect(marker.part).toBe('db.dump.zst')
    expect(marker.children).toHaveLength(2)
    // PR_SET_PDEATHSIG: the kernel ends them with their parent (before, they went on for seconds
    // and finished the temp file); a dump of this table takes longer than the 400 ms allowed here
    await until('pg_dump and zstd to die with their parent', () => marker.children!.every((pid) => !alive(pid)), 400)
    const [temp] = tempFiles(repo)
    expect(temp, 'the killed put left its temp file').toBeDefined()
    const size = statSync(join(repo, temp)).size
    await new Promise((r) => setTimeout(r, 300))
    expect(statSync(join(repo, temp)).size, 'nothing writes the temp file any more').toBe(size)

    const list = JSON.parse(cli(['backup', 'list', '--repo', repo, '--all', '--json']).stdout)
    expect(list.backups).toEqual([])
    expect(list.temporary.map((t: {key: string}) => t.key)).toEqual([temp])
    const dry = cli(['backup', 'prune', '--repo', repo, '--dry-run', '--json'])
    expect(dry.code, dry.out).toBe(0)
    expect(JSON.parse(dry.stdout).temporaryRemoved).toEqual([{key: temp, bytes: size}])
    expect(existsSync(join(repo, temp)), 'a dry run removes nothing').toBe(true)

    const next = cli(['backup', 'db', '--repo', repo, '--json'])
    expect(next.code, next.out).toBe(0)
    expect(tempFiles(repo)).toEqual([])
    const target = `kp_db_${Date.now().toString(36)}`
    const restored = cli(['restore', 'db', JSON.parse(next.stdout).id, '--repo', repo, '--target-db', target, '--json'])
    expect(restored.code, restored.out).toBe(0)
    expect(await dbHashOf(target)).toBe(await dbHashOf(source))
  }, 240_000)

  it('repository.put.temp-written (the lock being created): the lock temp file is listed once stale and removed by prune; the next backup runs', async () => {
    const repo = join(dir, 'repo-lock')
    const marker = await killAt('repository.put.temp-written', ['backup', 'db', '--repo', repo, '--quiet'])
    expect(marker).toMatchObject({key: `${STACK}/locks/backup.lock`})
    const [temp] = tempFiles(repo)
    expect(temp).toMatch(/^charge-analysis\/locks\/\.tmp-\d+-/)
    expect(existsSync(join(repo, STACK, 'locks', 'backup.lock')), 'the lock itself was never created').toBe(false)
    // under locks/ a writer on another host cannot be seen: only a lock temp file older than 10 min counts
    expect(JSON.parse(cli(['backup', 'list', '--repo', repo, '--all', '--json']).stdout).temporary).toEqual([])
    const old = new Date(Date.now() - 11 * 60_000)
    utimesSync(join(repo, temp), old, old)
    expect(
      JSON.parse(cli(['backup', 'list', '--repo', repo, '--all', '--json']).stdout).temporary.map(
        (t: {key: string}) => t.key,
      ),
    ).toEqual([temp])
    const prune = cli(['backup', 'prune', '--repo', repo, '--yes', '--json'])
    expect(prune.code, prune.out).toBe(0)
    expect(JSON.parse(prune.stdout).temporaryRemoved.map((t: {key: string}) => t.key)).toEqual([temp])
    expect(tempFiles(repo)).toEqual([])
    expect(cli(['backup', 'db', '--repo', repo, '--quiet']).code).toBe(0)
  }, 240_000)
})

describe('backup db to S3 killed during its multipart upload', () => {
  it("repository.s3.multipart-started: nothing listed, no object under the part's key (the unfinished multipart upload claims nothing), the lock names the dead run; the rerun takes it over and restores identical", async () => {
    // its own process: the CLI runs through spawnSync, which blocks this one
    const s3 = await startS3({process: true})
    try {
      const repo = `s3://${s3.bucket}/kill`
      const marker = await killAt(
        'repository.s3.multipart-started',
        ['backup', 'db', '--repo', repo, '--quiet'],
        s3.env,
      )
      // the multipart upload exists on the server (s3rver keeps it under ._S3rver_uploads/<id>) with
      // its first part stored: the kill landed mid-upload
      expect(marker.key).toMatch(new RegExp(`^kill/${STACK}/backups/[^/]+-db-[^/]+/db\\.dump\\.zst$`))
      const uploadDir = join(s3.dir, s3.bucket, '._S3rver_uploads', marker.uploadId!)
      expect(readFileSync(join(uploadDir, 'key'), 'utf8')).toBe(marker.key)
      expect(readdirSync(uploadDir)).toContain('1')
      // … but was never completed: no object under its key, and nothing listed, complete or not
      const list = cli(['backup', 'list', '--repo', repo, '--all', '--json'], s3.env)
      expect(list.code, list.out).toBe(0)
      expect(JSON.parse(list.stdout).backups).toEqual([])
      expect(await s3.readObject(marker.key!)).toBeUndefined()
      // the lock is left, and it names the dead run (same host: taken over at once by the next one)
      expect(JSON.parse((await s3.readObject(`kill/${STACK}/locks/backup.lock`))!)).toMatchObject({
        pid: marker.pid,
        command: 'backup db',
      })

      const rerun = cli(['backup', 'db', '--repo', repo, '--json'], s3.env)
      expect(rerun.code, rerun.out).toBe(0)
      expect(
        await s3.readObject(`kill/${STACK}/locks/backup.lock`),
        'the rerun released the lock it took over',
      ).toBeUndefined()
      const listed = JSON.parse(cli(['backup', 'list', '--repo', repo, '--all', '--json'], s3.env).stdout).backups
      expect(listed.map((b: {id: string}) => b.id)).toEqual([JSON.parse(rerun.stdout).id])
      const target = `kp_s3_${Date.now().toString(36)}`
      const restored = cli(['restore', 'db', 'latest', '--repo', repo, '--target-db', target, '--json'], s3.env)
      expect(restored.code, restored.out).toBe(0)
      expect(await dbHashOf(target)).toBe(await dbHashOf(source))
    } finally {
      await s3.stop()
    }
  }, 300_000)
})

describe("backup files / restore files killed at their kill points (a Chroma server managed like the sandbox's)", () => {
  let root: string
  let uploads: string
  let chroma: string
  let port: number
  const repo = () => join(dir, 'repo-files')
  const filesEnv = () => ({UPLOADS_DIR: uploads, CHROMA_PERSIST_DIRECTORY: chroma})

  beforeAll(async () => {
    root = join(dir, 'sandbox') // <root>/chroma + <root>/run/chroma.pid + sandbox.json: charge-ops manages this server
    uploads = join(root, 'uploads')
    chroma = join(root, 'chroma')
    mkdirSync(join(uploads, 'a'), {recursive: true})
    for (let i = 0; i < 40; i++) writeFileSync(join(uploads, 'a', `f${i}.csv`), Buffer.alloc(20_000, i))
    port = await freePort()
    mkdirSync(chroma, {recursive: true})
    writeFileSync(
      join(root, 'sandbox.json'),
      JSON.stringify({
        version: 1,
        createdAt: new Date().toISOString(),
        ports: {postgres: 0, redis: 0, chroma: port, api: 0},
      }),
    )
    await ensureChroma(root, port)
    const {chromaClient} = await import('../../src/chroma/client.js')
    const client = await chromaClient(`http://127.0.0.1:${port}`)
    const col = await client.getOrCreateCollection({name: 'charging_knowledge', embeddingFunction: null})
    const ids = Array.from({length: 30}, (_, i) => `k-${i}`)
    await col.add({
      ids,
      embeddings: ids.map((_, i) => [Math.sin(i), Math.cos(i), 0.5]),
      documents: ids.map((id) => `passage ${id}`),
    })
  }, 300_000)
  afterAll(async () => {
    if (root) await stopChroma(root)
  })

  /** The restore cases need a complete files backup; they take one when run on their own (-t). */
  const ensureFilesBackup = () => {
    const backups = join(repo(), STACK, 'backups')
    const complete =
      existsSync(backups) &&
      readdirSync(backups).some((id) => id.includes('-files-') && existsSync(join(backups, id, 'manifest.json')))
    if (!complete) expect(cli(['backup', 'files', '--repo', repo(), '--quiet'], filesEnv()).code).toBe(0)
  }

  it('backup.files.chroma-copy: the flag names the dead run; doctor reports it; the rerun takes it over and switches it off, sweeps the copy, and restores identical', async () => {
    const marker = await killAt(
      'backup.files.chroma-copy',
      ['backup', 'files', '--repo', repo(), '--quiet'],
      filesEnv(),
    )
    const flag = JSON.parse(readFileSync(maintenanceFlag(), 'utf8'))
    expect(flag.owner).toMatchObject({pid: marker.pid, command: 'backup files'})
    expect(flag.owner.startTime).toMatch(/^\d+$/)
    const copies = readdirSync(join(dir, 'staging')).filter((n) => n.startsWith(`charge-ops-chroma-${marker.pid}-`))
    expect(copies).toHaveLength(1)
    expect(
      statSync(join(dir, 'staging', copies[0], 'chroma.sqlite3')).mode & 0o077,
      'the knowledge base copy is private',
    ).toBe(0)

    const doctor = cli(['doctor', '--json'], filesEnv())
    const finding = JSON.parse(doctor.stdout).checks.find((c: {id: string}) => c.id === 'leftovers.maintenance')
    expect(finding, doctor.out).toMatchObject({status: 'critical'})
    expect(finding.message).toContain(`pid ${marker.pid}`)

    const rerun = cli(['backup', 'files', '--repo', repo(), '--json'], filesEnv())
    expect(rerun.code, rerun.out).toBe(0)
    expect(rerun.stderr).toMatch(/left on by `backup files` \(pid \d+.*taken over/)
    expect(existsSync(maintenanceFlag()), "the rerun switched the dead run's flag off").toBe(false)
    expect(readdirSync(join(dir, 'staging'))).toEqual([])
    expect(JSON.parse(rerun.stdout).files.chroma.collections).toEqual({charging_knowledge: 30})
  }, 240_000)

  it('restore.files.chroma-stopped: Chroma down and maintenance on after the kill; the rerun starts Chroma again, switches maintenance off, files identical', async () => {
    ensureFilesBackup()
    const atBackup = treeHash(uploads)
    rmSync(join(uploads, 'a', 'f3.csv'))
    writeFileSync(join(uploads, 'a', 'f4.csv'), 'changed')
    const marker = await killAt(
      'restore.files.chroma-stopped',
      ['restore', 'files', 'latest', '--repo', repo(), '--yes', '--quiet'],
      filesEnv(),
    )
    expect(await chromaHeartbeat(port).catch(() => false), 'the killed run had stopped Chroma').toBe(false)
    expect(JSON.parse(readFileSync(maintenanceFlag(), 'utf8')).owner).toMatchObject({
      pid: marker.pid,
      command: 'restore files',
    })
    expect(JSON.parse(readFileSync(join(dir, 'state', 'restore-files.json'), 'utf8')).chromaStopped).toMatchObject({
      port,
      owner: {pid: marker.pid},
    })

    const rerun = cli(['restore', 'files', 'latest', '--repo', repo(), '--yes', '--json'], filesEnv())
    expect(rerun.code, rerun.out).toBe(0)
    expect(await chromaHeartbeat(port), 'the rerun started the Chroma server again').toBe(true)
    expect(JSON.parse(rerun.stdout).chroma).toMatchObject({ok: true})
    expect(existsSync(maintenanceFlag())).toBe(false)
    expect(treeHash(uploads)).toBe(atBackup)
    expect(readdirSync(root).filter((n) => n.includes('.restore-') || n.includes('.old-'))).toEqual([])
  }, 300_000)

  it('restore.files.moved-old: the live folder is gone after the kill; the rerun puts the restored one in place', async () => {
    ensureFilesBackup()
    const atBackup = treeHash(uploads)
    writeFileSync(join(uploads, 'a', 'f5.csv'), 'changed again')
    await killAt(
      'restore.files.moved-old',
      ['restore', 'files', 'latest', '--repo', repo(), '--only', 'uploads', '--yes', '--quiet'],
      filesEnv(),
    )
    expect(existsSync(uploads), 'killed between the two renames').toBe(false)
    expect(
      readdirSync(dirname(uploads))
        .filter((n) => n.startsWith('uploads.'))
        .sort(),
    ).toEqual([expect.stringMatching(/^uploads\.old-/), expect.stringMatching(/^uploads\.restore-/)])
    const rerun = cli(
      ['restore', 'files', 'latest', '--repo', repo(), '--only', 'uploads', '--yes', '--json'],
      filesEnv(),
    )
    expect(rerun.code, rerun.out).toBe(0)
    expect(treeHash(uploads)).toBe(atBackup)
    expect(existsSync(maintenanceFlag())).toBe(false)
    expect(readdirSync(root).filter((n) => n.includes('.restore-') || n.includes('.old-'))).toEqual([])
  }, 300_000)
})

describe('restore db killed at its kill points', () => {
  let live: string
  let repo: string
  let backupHash: string

  beforeAll(async () => {
    repo = join(dir, 'repo-restore')
    const b = cli(['backup', 'db', '--repo', repo, '--json'])
    expect(b.code, b.out).toBe(0)
    backupHash = await dbHashOf(source)
    const liveUrl = await pg.createDatabase()
    live = new URL(liveUrl).pathname.slice(1)
    await pg.query(
      `CREATE TABLE current_data (id int); INSERT INTO current_data SELECT generate_series(1, 1000);`,
      live,
    )
    env = {...env, DATABASE_URL: liveUrl}
  }, 180_000)

  const restoreArgs = () => ['restore', 'db', 'latest', '--repo', repo, '--clean', '--yes', '--jobs', '2', '--quiet']
  const leftovers = async () =>
    (
      await pg.query<{d: string}>(`SELECT datname AS d FROM pg_database WHERE datname LIKE $1 || '%'`, undefined, [
        live,
      ])
    )
      .map((r) => r.d)
      .sort()
  const pgRestoreSessions = async () =>
    Number(
      (
        await pg.query<{n: string}>(
          `SELECT count(*) AS n FROM pg_stat_activity WHERE datname = $1 AND application_name = 'pg_restore'`,
          undefined,
          [`${live}_restoring`],
        )
      )[0].n,
    )

  it('restore.db.pg-restore: pg_restore dies with it (no session writes the scratch database afterwards); the live database is the old one; maintenance names the dead run', async () => {
    const oldHash = await dbHashOf(live)
    const marker = await killAt('restore.db.pg-restore', restoreArgs())
    expect(marker.children).toHaveLength(1)
    await until('pg_restore to die with its parent', () => !alive(marker.children![0]), 400)
    // watched for 2 s: a pg_restore that outlived its parent would (still, or soon) be connected
    const deadline = Date.now() + 2000
    while (Date.now() < deadline) {
      expect(await pgRestoreSessions()).toBe(0)
      await new Promise((r) => setTimeout(r, 100))
    }
    expect(await dbHashOf(live)).toBe(oldHash)
    expect(JSON.parse(readFileSync(maintenanceFlag(), 'utf8')).owner).toMatchObject({
      pid: marker.pid,
      command: 'restore db',
    })
  }, 240_000)

  it('restore.db.before-swap, then restore.db.swapped: old, then restored; the rerun finishes and leaves nothing', async () => {
    const oldHash = await dbHashOf(live)
    await killAt('restore.db.before-swap', restoreArgs())
    expect(await dbHashOf(live)).toBe(oldHash)
    expect(await leftovers()).toEqual([live, `${live}_restoring`])
    await killAt('restore.db.swapped', restoreArgs())
    expect(await dbHashOf(live)).toBe(backupHash)
    expect(await leftovers()).toEqual([live, `${live}_pre_restore`])
    const rerun = cli(['restore', 'db', 'latest', '--repo', repo, '--clean', '--yes', '--json'])
    expect(rerun.code, rerun.out).toBe(0)
    expect(await dbHashOf(live)).toBe(backupHash)
    expect(await leftovers()).toEqual([live])
    expect(existsSync(maintenanceFlag()), "the dead run's flag was taken over and switched off").toBe(false)
    expect(readdirSync(join(dir, 'staging'))).toEqual([])
  }, 300_000)
})

describe('restore files: the disk fills up during the extraction (issue 14, item 4)', () => {
  it('exit 5 NO_SPACE with a hint, the partial copy removed, the live folder untouched', async () => {
    // a 32 MB tmpfs holds the live uploads; the space check passes, then (paused at the point right
    // after it) something else fills the disk, as a concurrent writer would
    const mnt = join(dir, 'small-disk')
    mkdirSync(mnt)
    const mount = spawnSync('mount', ['-t', 'tmpfs', '-o', 'size=32m', 'tmpfs', mnt], {encoding: 'utf8'})
    expect(mount.status, `mount -t tmpfs failed (the test needs root): ${mount.stderr}`).toBe(0)
    try {
      const uploads = join(mnt, 'uploads')
      mkdirSync(uploads)
      for (let i = 0; i < 4; i++) writeFileSync(join(uploads, `f${i}.bin`), Buffer.alloc(1_000_000, i + 1))
      const repo = join(dir, 'repo-full-disk')
      const fenv = {UPLOADS_DIR: uploads, CHROMA_PERSIST_DIRECTORY: ''}
      expect(cli(['backup', 'files', '--repo', repo, '--quiet'], fenv).code).toBe(0)
      const before = treeHash(uploads)
      const point = 'restore.files.space-checked'
      const paused = pauseAt(point, ['restore', 'files', 'latest', '--repo', repo, '--yes', '--json'], {
        env: {...env, ...fenv},
        faultDir: faults,
      })
      await paused.reached(60_000)
      const df = () =>
        Number(spawnSync('df', ['-B1', '--output=avail', mnt], {encoding: 'utf8'}).stdout.trim().split('\n').pop())
      // leave ~1.5 MB: less than the 4 MB the extraction needs
      spawnSync('fallocate', ['-l', String(df() - 1_500_000), join(mnt, 'filler')])
      paused.resume()
      const {code, stdout, stderr} = await paused.exited
      expect(code, stderr).toBe(5)
      expect(JSON.parse(stdout).error).toMatchObject({code: 'NO_SPACE', exitCode: 5})
      expect(JSON.parse(stdout).error.hint).toMatch(/Free space/)
      expect(stderr).not.toMatch(/this is a bug|\n\s+at /)
      expect(readdirSync(mnt).sort(), 'no partial uploads.restore-<id> left').toEqual(['filler', 'uploads'])
      expect(treeHash(uploads)).toBe(before)
      expect(existsSync(maintenanceFlag())).toBe(false)
      rmSync(join(mnt, 'filler'))
      const again = cli(['restore', 'files', 'latest', '--repo', repo, '--yes', '--json'], fenv)
      expect(again.code, again.out).toBe(0)
      expect(treeHash(uploads)).toBe(before)
    } finally {
      const umount = spawnSync('umount', [mnt], {encoding: 'utf8'})
      expect(umount.status, umount.stderr).toBe(0)
    }
  }, 180_000)
})
