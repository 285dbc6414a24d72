/**
 * `wal push` / `wal fetch` against an S3 repository (s3rver), credentials only in a 0600 env file
 * named on the command line — never in argv — exactly as archive_command would run them.
 */
import {spawnSync} from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'

import {afterAll, beforeAll, describe, expect, it} from 'vitest'

import {startS3, type S3Server} from '../support/index.js'

const ROOT = path.resolve(import.meta.dirname, '../..')
const ENTRY = path.join(ROOT, 'bin/run.js')
const NAME = '000000010000000000000005'
let s3: S3Server
let dir: string
let envFile: string

function cli(args: string[]) {
  const r = spawnSync(process.execPath, [ENTRY, ...args], {
    cwd: dir,
    encoding: 'utf8',
    env: {PATH: process.env.PATH, HOME: dir},
  })
  return {code: r.status, stdout: r.stdout, stderr: r.stderr}
}

beforeAll(async () => {
  s3 = await startS3({process: true})
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'charge-ops-wal-s3-'))
  envFile = path.join(dir, 's3.env')
  fs.writeFileSync(
    envFile,
    Object.entries(s3.env)
      .map(([k, v]) => `${k}=${v}`)
      .join('\n') + '\n',
    {mode: 0o600},
  )
  const data = Buffer.alloc(16 * 1024 * 1024, 3)
  data.writeUInt16LE(0xd110, 0)
  data.writeUInt16LE(0x0002, 2)
  data.writeUInt32LE(1, 4)
  data.writeBigUInt64LE(99n, 24)
  fs.mkdirSync(path.join(dir, 'pg_wal'))
  fs.writeFileSync(path.join(dir, 'pg_wal', NAME), data)
}, 60_000)

afterAll(async () => {
  await s3?.stop()
  fs.rmSync(dir, {recursive: true, force: true})
})

describe('WAL in an S3 repository', () => {
  it('pushes, re-pushes idempotently and fetches back the same bytes', () => {
    const loc = ['--repo', `s3://${s3.bucket}/archive`, '--stack', 'prod', '--aws-env-file', envFile]
    const push = cli(['wal', 'push', `pg_wal/${NAME}`, ...loc, '--json'])
    expect(push.stderr).toBe('')
    expect(push.code).toBe(0)
    expect(JSON.parse(push.stdout)).toMatchObject({key: `prod/wal/00000001/${NAME}.zst`, alreadyArchived: false})
    const again = cli(['wal', 'push', `pg_wal/${NAME}`, ...loc, '--json'])
    expect(JSON.parse(again.stdout).alreadyArchived).toBe(true)
    const fetch = cli(['wal', 'fetch', NAME, 'restored', ...loc])
    expect(fetch.code).toBe(0)
    expect(fs.readFileSync(path.join(dir, 'restored')).equals(fs.readFileSync(path.join(dir, 'pg_wal', NAME)))).toBe(
      true,
    )
    expect(cli(['wal', 'fetch', '000000010000000000000006', 'x', ...loc]).code).toBe(1)
  }, 60_000)

  it('refuses a credentials file readable by others', () => {
    fs.chmodSync(envFile, 0o644)
    const r = cli([
      'wal',
      'push',
      `pg_wal/${NAME}`,
      '--repo',
      `s3://${s3.bucket}/archive`,
      '--stack',
      'prod',
      '--aws-env-file',
      envFile,
    ])
    expect(r.code).toBe(2)
    expect(r.stderr).toMatch(/readable by others \(mode 644\)/)
    expect(r.stderr).not.toContain(s3.env.AWS_SECRET_ACCESS_KEY)
    fs.chmodSync(envFile, 0o600)
  })

  it('tells a restore_command that S3 is unreachable with exit 126 (stop recovery, do not promote)', async () => {
    await s3.stop()
    const r = cli([
      'wal',
      'fetch',
      NAME,
      'x2',
      '--repo',
      `s3://${s3.bucket}/archive`,
      '--stack',
      'prod',
      '--aws-env-file',
      envFile,
    ])
    expect(r.code).toBe(126)
    expect(r.stderr).toMatch(/S3/)
  }, 60_000)
})
