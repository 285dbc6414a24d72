/**
 * "Recover three times": a recovered cluster must archive, back up and be recovered again.
 * Each round recovers with --target-time between two commits in the middle of a WAL segment (so
 * PostgreSQL promotes mid-segment and begins the new timeline's first segment with pages of the
 * old one), writes on the new timeline, runs `wal check` (archiving works), takes a base backup
 * of the recovered server, and the next round recovers from that backup onto the new timeline
 * with exactly the rows committed at or before its target. Real clusters; archive_command is the
 * built `charge-ops wal push`, run by PostgreSQL as its own OS user.
 */
import {spawnSync} from 'node:child_process'
import fs from 'node:fs'
import path from 'node:path'

import {afterAll, beforeAll, describe, expect, it} from 'vitest'

import {freePort, type PgCluster} from '../support/index.js'
import {startArchivingCluster, type ArchivingCluster} from '../support/pitr.js'

const STACK = 'tl'

let cluster: ArchivingCluster
let pg: PgCluster
let repo: string
let started: string[]
const cli: ArchivingCluster['cli'] = (args, options) => cluster.cli(args, options)
const urlOf = (port: number) => cluster.urlOf(port)
const query = <R>(port: number, sql: string) => cluster.query<R>(port, sql)

/** Commits `n` rows one by one, ~30 ms apart, tagged with the round; no WAL switch in between. */
async function workload(port: number, round: number, n: number): Promise<void> {
  const {default: pgLib} = await import('pg')
  const c = new pgLib.Client({connectionString: urlOf(port)})
  await c.connect()
  try {
    for (let i = 0; i < n; i++) {
      await c.query('INSERT INTO samples (round, committed_at) VALUES ($1, clock_timestamp())', [round])
      await new Promise((r) => setTimeout(r, 30))
    }
  } finally {
    await c.end()
  }
}

/** A target halfway between two commits of `round` with at least 20 ms between them, past the middle of the round. */
async function pickTarget(port: number, round: number): Promise<{target: string; ids: string}> {
  const [pick] = await query<{target: string; id: string}>(
    port,
    `WITH g AS (SELECT id, committed_at, lead(committed_at) OVER (ORDER BY id) AS nxt FROM samples WHERE round = ${round})
     SELECT to_char((committed_at + (nxt - committed_at) / 2) AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') AS target, id::text AS id
     FROM g WHERE nxt - committed_at >= interval '20 ms' ORDER BY id OFFSET (SELECT count(*) / 2 FROM g) LIMIT 1`,
  )
  const [expected] = await query<{ids: string}>(
    port,
    `SELECT string_agg(id::text, ',' ORDER BY id) AS ids FROM samples WHERE committed_at <= '${pick.target}'`,
  )
  expect(expected.ids.split(',').at(-1)).toBe(pick.id)
  return {target: pick.target, ids: expected.ids}
}

function walCheck(port: number) {
  return cli(['wal', 'check', '--repo', repo, '--stack', STACK, '--timeout', '30'], {env: {DATABASE_URL: urlOf(port)}})
}

function baseBackup(port: number) {
  return cli(['backup', 'base', '--repo', repo, '--stack', STACK, '--wal-timeout', '60', '--json'], {
    asServer: true,
    env: {DATABASE_URL: urlOf(port)},
  })
}

async function recover(name: string, target: string) {
  const dataDir = path.join(pg.serverDir('restores'), name)
  const port = await freePort()
  started.push(dataDir)
  const r = cli([
    'restore',
    'pitr',
    '--target-time',
    target,
    '--data-dir',
    dataDir,
    '--start',
    '--port',
    String(port),
    '--repo',
    repo,
    '--stack',
    STACK,
    '--database-url',
    pg.url(),
    '--yes',
    '--json',
  ])
  expect(r.code, r.stderr + r.stdout).toBe(0)
  return {
    port,
    dataDir,
    result: JSON.parse(r.stdout) as {
      backupId: string
      recovery: {timeline: number; stoppedAt?: string; confirmedBy: string}
    },
  }
}

beforeAll(async () => {
  cluster = await startArchivingCluster({
    name: 'timelines',
    stack: STACK,
    schema: 'CREATE TABLE samples (id bigserial PRIMARY KEY, round int NOT NULL, committed_at timestamptz NOT NULL)',
  })
  ;({pg, repo, started} = cluster)
}, 240_000)

afterAll(async () => {
  await cluster?.stop()
})

describe('recover three times', () => {
  it('recovers mid-segment, archives the new timeline, backs it up and recovers again, three times', async () => {
    let port = pg.port
    let backups = new Set<string>()
    for (let round = 1; round <= 3; round++) {
      await workload(port, round, 40)
      const {target, ids} = await pickTarget(port, round)
      await workload(port, round, 5) // commits after the target, in the same segment
      const check = walCheck(port)
      expect(check.code, check.stderr).toBe(0)

      const next = await recover(`round-${round}`, target)
      expect(next.result.recovery.stoppedAt).toMatch(/recovery stopping before commit/)
      expect(next.result.recovery).toMatchObject({timeline: round + 1, confirmedBy: 'connection'})
      // rounds 2 and 3 start from the base backup taken on the previous recovered timeline
      if (round > 1) expect(backups.has(next.result.backupId)).toBe(true)
      const [got] = await query<{ids: string}>(
        next.port,
        "SELECT string_agg(id::text, ',' ORDER BY id) AS ids FROM samples",
      )
      expect(got.ids).toBe(ids)

      // the new timeline archives: its first segment begins with pages of the old timeline
      await query(next.port, `INSERT INTO samples (round, committed_at) VALUES (${round}, clock_timestamp())`)
      const after = walCheck(next.port)
      expect(after.code, after.stderr + after.stdout).toBe(0)
      const tl = String(round + 1).padStart(8, '0')
      expect(fs.existsSync(path.join(repo, STACK, 'wal', tl, `${tl}.history.zst`))).toBe(true)
      const switchSegments = fs
        .readdirSync(path.join(repo, STACK, 'wal', tl))
        .filter((f) => /^[0-9A-F]{24}\.zst$/.test(f))
      expect(switchSegments.length).toBeGreaterThan(0)

      const base = baseBackup(next.port)
      expect(base.code, base.stderr).toBe(0)
      const manifest = JSON.parse(base.stdout) as {id: string; base: {timeline: number}}
      expect(manifest.base.timeline).toBe(round + 1)
      backups = new Set([manifest.id])
      if (port !== pg.port)
        spawnSync(path.join(pg.binDir, 'pg_ctl'), ['stop', '-D', started.at(-2)!, '-m', 'fast', '-w'], {
          uid: pg.osUser?.uid,
          gid: pg.osUser?.gid,
        })
      port = next.port
    }
  }, 600_000)
})
