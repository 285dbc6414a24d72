/**
 * Repository files keep the repository's owner: `backup verify` run as root (the documented cron
 * line) rewrites the manifest, and the postgres user can still restore from it. A manifest
 * charge-ops cannot read is reported as such (exit 2, REPOSITORY_UNREADABLE) and a restore never
 * falls back to an older base backup because of it. Real cluster; --stack on every command.
 */
import {spawnSync} from 'node:child_process'
import fs from 'node:fs'
import path from 'node:path'

import {afterAll, beforeAll, describe, expect, it} from 'vitest'

import {archiveCommand} from '../../src/wal/command-lines.js'
import {startPostgres, type PgCluster} from '../support/index.js'

const ROOT = path.resolve(import.meta.dirname, '../..')
const ENTRY = path.join(ROOT, 'bin/run.js')
const STACK = 'own'

let pg: PgCluster
let repo: string
const ids: string[] = []

function cli(args: string[], asServer: boolean) {
  const r = spawnSync(process.execPath, [ENTRY, ...args, '--repo', repo, '--stack', STACK], {
    cwd: ROOT,
    encoding: 'utf8',
    env: {PATH: process.env.PATH, HOME: '/tmp', NO_COLOR: '1', DATABASE_URL: pg.url()},
    uid: asServer ? pg.osUser?.uid : undefined,
    gid: asServer ? pg.osUser?.gid : undefined,
    timeout: 180_000,
  })
  return {code: r.status, stdout: r.stdout, stderr: r.stderr}
}

beforeAll(async () => {
  pg = await startPostgres({name: 'ownership'})
  repo = pg.serverDir('repo')
  await pg.restart({
    archive_mode: 'on',
    archive_command: archiveCommand({repository: repo, stack: STACK, entry: ENTRY, node: process.execPath}),
  })
  for (let i = 0; i < 2; i++) {
    const base = cli(['backup', 'base', '--json'], true)
    expect(base.code, base.stderr).toBe(0)
    ids.push(JSON.parse(base.stdout).id)
  }
}, 240_000)

afterAll(async () => {
  await pg?.stop()
})

describe('repository ownership (as root)', () => {
  it('backup verify as root keeps the manifest readable by the repository owner', () => {
    const verify = cli(['backup', 'verify', ids[1]], false)
    expect(verify.code, verify.stderr).toBe(0)
    const manifest = path.join(repo, STACK, 'backups', ids[1], 'manifest.json')
    const st = fs.statSync(manifest)
    expect([st.uid, st.gid]).toEqual([pg.osUser!.uid, pg.osUser!.gid])
    expect(JSON.parse(fs.readFileSync(manifest, 'utf8')).verification.ok).toBe(true)
    const list = cli(['backup', 'list', '--json'], true)
    expect(list.code, list.stderr).toBe(0)
    expect(JSON.parse(list.stdout).backups.map((b: {id: string}) => b.id)).toEqual([ids[1], ids[0]])
    const restore = cli(
      [
        'restore',
        'pitr',
        '--latest',
        '--backup',
        ids[1],
        '--data-dir',
        path.join(pg.serverDir('r'), 'a'),
        '--archive',
        'off',
        '--yes',
        '--json',
      ],
      true,
    )
    expect(restore.code, restore.stderr).toBe(0)
    expect(JSON.parse(restore.stdout).backupId).toBe(ids[1])
  }, 120_000)

  it('an unreadable manifest is said (exit 2) and never makes a restore fall back to an older backup', () => {
    fs.chmodSync(path.join(repo, STACK, 'backups', ids[1], 'manifest.json'), 0o000)
    const dataDir = path.join(pg.serverDir('r'), 'b')
    const latest = cli(['restore', 'pitr', '--latest', '--data-dir', dataDir, '--archive', 'off', '--yes'], true)
    expect(latest.code).toBe(2)
    expect(latest.stderr).toMatch(
      new RegExp(`base backup ${ids[1]} is newer than ${ids[0]}.*its manifest cannot be read.*permission denied`),
    )
    expect(fs.existsSync(dataDir)).toBe(false)
    const named = cli(
      ['restore', 'pitr', '--latest', '--backup', ids[1], '--data-dir', dataDir, '--archive', 'off', '--yes'],
      true,
    )
    expect(named.code).toBe(2)
    expect(named.stderr).toMatch(/cannot be read by this user.*permission denied/)
    expect(named.stderr).not.toMatch(/no complete native base backup/)
  }, 120_000)
})
