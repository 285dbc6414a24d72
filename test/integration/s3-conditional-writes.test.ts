/**
 * The atomic-create path of the S3 driver (src/repository/s3-storage.ts), through the real client
 * code, against a proxy in front of s3rver that answers conditional puts as AWS documents them
 * (test/support/s3-conditional.ts): 412 PreconditionFailed when the object exists, or — a store
 * without conditional writes — 501 NotImplemented. s3rver alone ignores `If-None-Match` on PUT, so
 * without the proxy neither path would run.
 */
import {execFileSync, spawn} from 'node:child_process'
import {createHash} from 'node:crypto'
import {mkdtempSync, rmSync} from 'node:fs'
import {hostname, tmpdir} from 'node:os'
import path from 'node:path'

import {PutObjectCommand, S3Client} from '@aws-sdk/client-s3'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'

import {startChild} from '../../src/backup/child.js'
import {acquireLock} from '../../src/repository/lock.js'
import {parseS3Location, S3Storage} from '../../src/repository/s3-storage.js'
import {ObjectExistsError} from '../../src/repository/storage.js'
import {sharedPostgres, startS3, type S3Server} from '../support/index.js'
import {startConditionalProxy, type ConditionalMode, type ConditionalProxy} from '../support/s3-conditional.js'

const ENTRY = path.resolve(import.meta.dirname, '../../bin/run.js')
const pg = sharedPostgres()
let s3: S3Server
let upstream: S3Client
let dir: string
let dbUrl: string

/** the CLI, asynchronously: the proxy and s3rver answer from this process */
function cli(
  args: string[],
  env: Record<string, string>,
): Promise<{code: number | null; stdout: string; stderr: string}> {
  const child = spawn(process.execPath, ['--', ENTRY, ...args], {
    cwd: dir,
    env: {
      PATH: process.env.PATH,
      HOME: dir,
      NO_COLOR: '1',
      DATABASE_URL: dbUrl,
      CHARGE_OPS_STATE_DIR: path.join(dir, 'state'),
      ...env,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  let stdout = ''
  let stderr = ''
  child.stdout.on('data', (d) => (stdout += d))
  child.stderr.on('data', (d) => (stderr += d))
  return new Promise((resolve) => child.once('close', (code) => resolve({code, stdout, stderr})))
}

const storageVia = (proxy: ConditionalProxy, prefix: string) =>
  new S3Storage(
    new S3Client({...s3.clientConfig(), endpoint: proxy.endpoint}),
    parseS3Location(`s3://${s3.bucket}/${prefix}`),
  )
const putUpstream = (key: string, body: string) =>
  upstream.send(new PutObjectCommand({Bucket: s3.bucket, Key: key, Body: body}))

beforeAll(async () => {
  s3 = await startS3()
  upstream = new S3Client(s3.clientConfig())
  dir = mkdtempSync(path.join(tmpdir(), 'co-s3-cond-'))
  dbUrl = await pg.createDatabase()
  await pg.query(
    'CREATE TABLE t (id int PRIMARY KEY); INSERT INTO t SELECT generate_series(1, 500)',
    new URL(dbUrl).pathname.slice(1),
  )
}, 60_000)

afterAll(async () => {
  upstream?.destroy()
  await s3?.stop()
  if (dir) rmSync(dir, {recursive: true, force: true})
})

/** A proxy in the given mode for the enclosing describe block, started before its tests and stopped after. */
function proxyFor(mode: ConditionalMode, options: {multipartListing?: boolean} = {}): () => ConditionalProxy {
  let proxy: ConditionalProxy
  beforeAll(async () => {
    proxy = await startConditionalProxy(s3, mode, options)
  })
  afterAll(async () => {
    await proxy?.stop()
  })
  return () => proxy
}

describe('a store that honours If-None-Match: * (412 PreconditionFailed)', () => {
  const proxy = proxyFor('honour')

  it('creates an absent object with a conditional put', async () => {
    const storage = storageVia(proxy(), 'honour-a')
    await storage.put('x/lock', 'ours', {ifNotExists: true})
    expect(proxy().seen).toMatchObject({conditional: 1, forwardedConditional: 1, precondition412: 0})
    expect((await storage.getBytes('x/lock')).toString()).toBe('ours')
  })

  it("another writer creating the object between the check and the put: 412 → ObjectExistsError, the other writer's object stays", async () => {
    const storage = storageVia(proxy(), 'honour-b')
    proxy().beforeConditionalPut = async (_bucket, key) => {
      await putUpstream(key, 'theirs')
    }
    try {
      await expect(storage.put('x/lock', 'ours', {ifNotExists: true})).rejects.toBeInstanceOf(ObjectExistsError)
    } finally {
      proxy().beforeConditionalPut = undefined
    }
    expect(proxy().seen.precondition412).toBe(1)
    expect((await storage.getBytes('x/lock')).toString()).toBe('theirs')
  })

  it('backup db whose lock another run creates in that window exits 4 naming the holder, writing nothing (built CLI)', async () => {
    const prefix = 'honour-cli'
    const holder = {
      token: 'f00d',
      pid: process.pid,
      host: hostname(),
      startedAt: new Date().toISOString(),
      heartbeatAt: new Date().toISOString(),
      command: 'backup files',
      ttlMs: 600_000,
    }
    proxy().beforeConditionalPut = async (_bucket, key) => {
      if (key.endsWith('/locks/backup.lock')) await putUpstream(key, JSON.stringify(holder))
    }
    const before = proxy().seen.precondition412
    let r
    try {
      r = await cli(['backup', 'db', '--repo', `s3://${s3.bucket}/${prefix}`, '--json'], proxy().env)
    } finally {
      proxy().beforeConditionalPut = undefined
    }
    expect(r.code, r.stdout + r.stderr).toBe(4)
    expect(proxy().seen.precondition412 - before, 'the lock put was refused by the store, not by the check').toBe(1)
    expect(JSON.parse(r.stdout).error.message).toMatch(new RegExp(`backup files.*pid ${process.pid}`))
    const objects = await storageVia(proxy(), prefix).list('')
    expect(objects.map((o) => o.key)).toEqual(['charge-analysis/locks/backup.lock'])
  }, 120_000)

  it('two lock acquisitions at once: exactly one holds the lock', async () => {
    const a = storageVia(proxy(), 'honour-race')
    const b = storageVia(proxy(), 'honour-race')
    const results = await Promise.allSettled([
      acquireLock(a, 'st', {command: 'backup db'}),
      acquireLock(b, 'st', {command: 'backup files'}),
    ])
    expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(1)
    expect((results.find((r) => r.status === 'rejected') as PromiseRejectedResult).reason).toMatchObject({exitCode: 4})
    await (results.find((r) => r.status === 'fulfilled') as PromiseFulfilledResult<() => Promise<void>>).value()
  })
})

describe('a store that answers 501 NotImplemented to If-None-Match', () => {
  const proxy = proxyFor('not-implemented')

  it('puts again without the header, and asks no more through that storage; an existing object is still refused by the check', async () => {
    const storage = storageVia(proxy(), 'ni')
    await storage.put('a', 'first', {ifNotExists: true})
    expect(proxy().seen).toMatchObject({conditional: 1, notImplemented501: 1, unconditional: 1})
    await storage.put('b', 'second', {ifNotExists: true})
    expect(proxy().seen).toMatchObject({conditional: 1, unconditional: 2})
    await expect(storage.put('a', 'again', {ifNotExists: true})).rejects.toBeInstanceOf(ObjectExistsError)
    expect((await storage.getBytes('a')).toString()).toBe('first')
    expect((await storage.getBytes('b')).toString()).toBe('second')
  })

  it('backup db and backup verify succeed through it (built CLI)', async () => {
    const repo = `s3://${s3.bucket}/ni-cli`
    const before = proxy().seen.notImplemented501
    const b = await cli(['backup', 'db', '--repo', repo, '--json'], proxy().env)
    expect(b.code, b.stdout + b.stderr).toBe(0)
    expect(
      proxy().seen.notImplemented501 - before,
      'the lock put met the 501 once, later puts of the run went without the header',
    ).toBe(1)
    const v = await cli(['backup', 'verify', JSON.parse(b.stdout).id, '--repo', repo, '--json'], proxy().env)
    expect(v.code, v.stdout + v.stderr).toBe(0)
    expect(JSON.parse(v.stdout).ok).toBe(true)
  }, 120_000)
})

describe('unfinished multipart uploads (ListMultipartUploads / ListParts / AbortMultipartUpload answered by the proxy)', () => {
  const proxy = proxyFor('honour', {multipartListing: true})

  it('what a killed part upload leaves is listed by backup list --all, counted by prune --dry-run, aborted by the next backup; not while another live run holds the lock', async () => {
    const {CreateMultipartUploadCommand, UploadPartCommand} = await import('@aws-sdk/client-s3')
    const repo = `s3://${s3.bucket}/mp`
    const key = 'charge-analysis/backups/20200101T000000Z-db-dead/db.dump.zst'
    // what a backup killed mid-upload leaves: a multipart upload with one part, never completed
    const {UploadId} = await upstream.send(new CreateMultipartUploadCommand({Bucket: s3.bucket, Key: `mp/${key}`}))
    await upstream.send(
      new UploadPartCommand({
        Bucket: s3.bucket,
        Key: `mp/${key}`,
        UploadId,
        PartNumber: 1,
        Body: Buffer.alloc(1 << 20, 7),
      }),
    )

    const list = await cli(['backup', 'list', '--repo', repo, '--all', '--json'], proxy().env)
    expect(list.code, list.stderr).toBe(0)
    expect(JSON.parse(list.stdout)).toMatchObject({backups: [], temporary: [{key, bytes: 1 << 20}]})
    const dry = await cli(['backup', 'prune', '--repo', repo, '--dry-run', '--json'], proxy().env)
    expect(dry.code, dry.stderr).toBe(0)
    expect(JSON.parse(dry.stdout).temporaryRemoved).toEqual([{key, bytes: 1 << 20}])
    expect(proxy().seen.uploadsAborted, 'a dry run aborts nothing').toBe(0)

    // another live run holds the stack's lock: the upload may be its part on the way, not listed
    const holder = {
      token: 'beef',
      pid: process.pid,
      host: hostname(),
      startedAt: new Date().toISOString(),
      heartbeatAt: new Date().toISOString(),
      command: 'backup db',
      ttlMs: 600_000,
    }
    await putUpstream('mp/charge-analysis/locks/backup.lock', JSON.stringify(holder))
    const busy = await cli(['backup', 'list', '--repo', repo, '--all', '--json'], proxy().env)
    expect(JSON.parse(busy.stdout).temporary).toEqual([])
    await upstream.send(
      new (await import('@aws-sdk/client-s3')).DeleteObjectCommand({
        Bucket: s3.bucket,
        Key: 'mp/charge-analysis/locks/backup.lock',
      }),
    )

    const backup = await cli(['backup', 'db', '--repo', repo, '--json'], proxy().env)
    expect(backup.code, backup.stderr).toBe(0)
    expect(proxy().seen.uploadsAborted).toBe(1)
    const after = await cli(['backup', 'list', '--repo', repo, '--all', '--json'], proxy().env)
    expect(JSON.parse(after.stdout)).toMatchObject({backups: [{id: JSON.parse(backup.stdout).id}], temporary: []})
  }, 120_000)
})

describe('a streamed part whose producer exits while the store is still answering', () => {
  // Node discards a child's unread stdout when the child exits (child_process' flushStdio). A short
  // `tar | zstd` used to end while the put waited for the store's existence check, and the part was
  // stored empty with a matching checksum (seen as an S3 `backup files` that restored nothing).
  it('keeps every byte: the store holds the existence check until the producer has exited', async () => {
    const proxy = await startConditionalProxy(s3, 'honour')
    try {
      const script = 'seq 1 20000 | zstd -1 -c'
      const expected = execFileSync('sh', ['-c', script])
      const producer = await startChild('sh', ['-c', script], {stdout: 'pipe', purpose: 'a short producer'})
      const exited = new Promise<void>((resolve) => producer.child.once('exit', () => resolve()))
      let heldHead = false
      proxy.beforeRequest = async (method) => {
        if (method !== 'HEAD' || heldHead) return
        heldHead = true
        await exited
        // flushStdio runs on the tick after 'exit': let it, before the store answers
        await new Promise((resolve) => setImmediate(resolve))
      }
      const stored = await storageVia(proxy, 'held/').put('part.zst', producer.stdout!, {ifNotExists: true})
      expect(heldHead).toBe(true)
      expect(stored.bytes).toBe(expected.length)
      expect(stored.sha256).toBe(createHash('sha256').update(expected).digest('hex'))
      const body = Buffer.from(
        await (await storageVia(proxy, 'held/').get('part.zst')).toArray().then((c) => Buffer.concat(c as Buffer[])),
      )
      expect(body.equals(expected)).toBe(true)
    } finally {
      await proxy.stop()
    }
  }, 60_000)
})
