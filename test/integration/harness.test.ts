/**
 * Self-test of test/support against the real services: every helper is exercised and
 * checked on data (rows, archived WAL, keys, sha256 of objects, nearest neighbours),
 * plus the guarantees the harness makes (secrets never in argv, nothing left running).
 */
import {GetObjectCommand, ListObjectsV2Command, PutObjectCommand, S3Client} from '@aws-sdk/client-s3'
import {Upload} from '@aws-sdk/lib-storage'
import {ChromaClient} from 'chromadb'
import {Redis} from 'ioredis'
import {spawn} from 'node:child_process'
import {createHash, randomBytes} from 'node:crypto'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import {Readable} from 'node:stream'
import {fileURLToPath} from 'node:url'
import pg from 'pg'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'
import {
  findBinary,
  freePort,
  isListening,
  MissingBinaryError,
  pgBinDir,
  requireBinary,
  run,
  sharedChroma,
  sharedPostgres,
  startChroma,
  startPostgres,
  startRedis,
  startS3,
  type PgCluster,
} from '../support/index.js'

const sha256 = (data: Buffer) => createHash('sha256').update(data).digest('hex')
const root = fileURLToPath(new URL('../..', import.meta.url))

function pidAlive(pid: number): boolean {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8')
    return !/^\d+ \(.*\) [ZX]/.test(stat)
  } catch {
    return false
  }
}

async function waitGone(pid: number, timeoutMs = 15_000): Promise<boolean> {
  const deadline = Date.now() + timeoutMs
  while (Date.now() < deadline) {
    if (!pidAlive(pid)) return true
    await new Promise((r) => setTimeout(r, 100))
  }
  return !pidAlive(pid)
}

/** A process's argv joined by spaces ('' when it has exited meanwhile). */
function cmdline(pid: number): string {
  try {
    return fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').replaceAll('\0', ' ')
  } catch {
    return ''
  }
}

/** The pid and all its descendants (from /proc). */
function processTree(rootPid: number): number[] {
  const children = new Map<number, number[]>()
  for (const entry of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue
    try {
      const stat = fs.readFileSync(`/proc/${entry}/stat`, 'utf8')
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1])
      children.set(ppid, [...(children.get(ppid) ?? []), Number(entry)])
    } catch {
      // exited meanwhile
    }
  }
  const out: number[] = []
  const todo = [rootPid]
  while (todo.length > 0) {
    const pid = todo.pop()!
    out.push(pid)
    todo.push(...(children.get(pid) ?? []))
  }
  return out
}

function processUid(pid: number): number {
  const status = fs.readFileSync(`/proc/${pid}/status`, 'utf8')
  return Number(/^Uid:\s+(\d+)/m.exec(status)![1])
}

describe('binaries and ports', () => {
  it('requireBinary returns an absolute path, or throws with the exact install command', () => {
    const redis = requireBinary('redis-server', 'apt-get install -y redis-server')
    expect(path.isAbsolute(redis)).toBe(true)
    expect(fs.statSync(redis).isFile()).toBe(true)

    const hint = 'apt-get install -y charge-ops-no-such-package'
    expect(() => requireBinary('charge-ops-no-such-binary', hint)).toThrow(MissingBinaryError)
    expect(() => requireBinary('charge-ops-no-such-binary', hint)).toThrow(`Install it with: ${hint}`)
    expect(findBinary('charge-ops-no-such-binary')).toBeUndefined()
  })

  it('pgBinDir holds the PostgreSQL 15 server binaries', async () => {
    const dir = pgBinDir()
    for (const bin of ['initdb', 'pg_ctl', 'postgres', 'pg_dump', 'pg_basebackup']) {
      expect(fs.existsSync(path.join(dir, bin)), bin).toBe(true)
    }
    const {stdout} = await run(path.join(dir, 'postgres'), ['--version'])
    expect(stdout).toMatch(/\(PostgreSQL\) 15\./)
  })

  it('freePort gives loopback ports nobody listens on', async () => {
    const ports = await Promise.all([freePort(), freePort(), freePort()])
    for (const port of ports) {
      expect(port).toBeGreaterThan(1024)
      expect(await isListening(port)).toBe(false)
    }
  })
})

describe('shared PostgreSQL cluster (global setup)', () => {
  const cluster = sharedPostgres()
  let url: string

  beforeAll(async () => {
    url = await cluster.createDatabase()
  })

  it('gives each test file its own database, reachable by URL, with data checksums', async () => {
    const db = new URL(url).pathname.slice(1)
    expect(db).toMatch(/^test_[0-9a-f]{12}$/)
    const client = new pg.Client({connectionString: url})
    await client.connect()
    try {
      await client.query('CREATE TABLE samples (id int PRIMARY KEY, voltage_v double precision)')
      await client.query('INSERT INTO samples SELECT g, 400 + g / 10.0 FROM generate_series(1, 1000) g')
    } finally {
      await client.end()
    }
    const rows = await cluster.query<{n: string; avg: number}>(
      'SELECT count(*) AS n, avg(voltage_v) AS avg FROM samples',
      db,
    )
    expect(rows).toEqual([{n: '1000', avg: 450.05}])

    const [settings] = await cluster.query<{v: string; checksums: string; fsync: string; listen: string}>(
      "SELECT current_setting('server_version_num') AS v, current_setting('data_checksums') AS checksums, " +
        "current_setting('fsync') AS fsync, current_setting('listen_addresses') AS listen",
    )
    expect(Number(settings!.v)).toBeGreaterThanOrEqual(150000)
    expect(Number(settings!.v)).toBeLessThan(160000)
    expect(settings).toMatchObject({checksums: 'on', fsync: 'off', listen: '127.0.0.1'})

    const other = await cluster.createDatabase()
    expect(other).not.toBe(url)
    expect(await cluster.query('SELECT to_regclass($1) AS t', new URL(other).pathname.slice(1), ['samples'])).toEqual([
      {t: null},
    ])
  })

  it('requires the password (scram-sha-256) and hands it to child tools by environment', async () => {
    const wrong = new pg.Client({
      host: cluster.host,
      port: cluster.port,
      user: cluster.user,
      password: 'wrong',
      database: 'postgres',
    })
    await expect(wrong.connect()).rejects.toThrow(/password authentication failed/)

    const [hba] = await cluster.query<{methods: string[]}>(
      'SELECT array_agg(DISTINCT auth_method) AS methods FROM pg_hba_file_rules',
    )
    expect(hba!.methods).toEqual(['scram-sha-256'])

    const env = cluster.env()
    expect(Object.keys(env).sort()).toEqual(['PGHOST', 'PGPASSWORD', 'PGPORT', 'PGUSER'])
    const psql = path.join(cluster.binDir, 'psql')
    const {stdout} = await run(psql, ['-XtAc', 'SELECT 6 * 7', 'postgres'], {env: {PATH: process.env.PATH, ...env}})
    expect(stdout.trim()).toBe('42')
    const denied = await run(psql, ['-XtAc', 'SELECT 1', 'postgres'], {
      env: {PATH: process.env.PATH, ...env, PGPASSWORD: 'wrong'},
    }).catch((error: Error) => error.message)
    expect(denied).toMatch(/password authentication failed/)
  })

  it('runs the server as a non-root OS user when the tests run as root', () => {
    const postmaster = Number(fs.readFileSync(path.join(cluster.dataDir, 'postmaster.pid'), 'utf8').split('\n')[0])
    expect(pidAlive(postmaster)).toBe(true)
    const uid = processUid(postmaster)
    if (process.getuid!() === 0) {
      expect(cluster.osUser).toBeDefined()
      expect(uid).toBe(cluster.osUser!.uid)
      expect(uid).not.toBe(0)
    } else {
      expect(uid).toBe(process.getuid!())
    }
  })
})

describe('private PostgreSQL cluster with archiving', () => {
  let cluster: PgCluster

  beforeAll(async () => {
    cluster = await startPostgres({
      name: 'archive',
      conf: {
        wal_level: 'replica',
        archive_mode: 'on',
        // runs with the data dir as cwd: ../wal-archive is inside the cluster's baseDir
        archive_command: 'mkdir -p ../wal-archive && test ! -f ../wal-archive/%f && cp %p ../wal-archive/%f',
        shared_preload_libraries: 'pg_stat_statements',
        fsync: 'on',
      },
    })
  })
  afterAll(async () => {
    await cluster?.stop()
  })

  it('applies opts.conf over the harness defaults', async () => {
    const [s] = await cluster.query<Record<string, string>>(
      "SELECT current_setting('archive_mode') AS archive_mode, current_setting('wal_level') AS wal_level, " +
        "current_setting('shared_preload_libraries') AS spl, current_setting('fsync') AS fsync, " +
        "current_setting('port') AS port, current_setting('unix_socket_directories') AS sockets",
    )
    expect(s).toEqual({
      archive_mode: 'on',
      wal_level: 'replica',
      spl: 'pg_stat_statements',
      fsync: 'on',
      port: String(cluster.port),
      sockets: cluster.baseDir,
    })
    await cluster.query('CREATE EXTENSION pg_stat_statements')
    const [calls] = await cluster.query<{n: number}>('SELECT count(*)::int AS n FROM pg_stat_statements')
    expect(calls!.n).toBeGreaterThan(0)
    // the data dir's parent is readable by others (another process as the same OS user)
    expect(fs.statSync(cluster.baseDir).mode & 0o055).toBe(0o055)
  })

  it('archives WAL segments with archive_command', async () => {
    await cluster.query('CREATE TABLE t AS SELECT g FROM generate_series(1, 10000) g')
    const [{walfile}] = (await cluster.query<{walfile: string}>(
      'SELECT pg_walfile_name(pg_switch_wal()) AS walfile',
    )) as [{walfile: string}]
    // the archiver reports a segment only once archive_command has exited 0
    const deadline = Date.now() + 30_000
    let stats: {last: string | null; archived: number; failed: number} | undefined
    for (;;) {
      ;[stats] = await cluster.query<{last: string | null; archived: number; failed: number}>(
        'SELECT last_archived_wal AS last, archived_count::int AS archived, failed_count::int AS failed FROM pg_stat_archiver',
      )
      if ((stats && stats.last !== null && stats.last >= walfile) || Date.now() > deadline) break
      await new Promise((r) => setTimeout(r, 100))
    }
    expect(stats!.last! >= walfile).toBe(true)
    expect(stats!.archived).toBeGreaterThanOrEqual(1)
    expect(stats!.failed).toBe(0)
    const archived = path.join(cluster.baseDir, 'wal-archive', walfile)
    expect(fs.statSync(archived).size).toBe(16 * 1024 * 1024)
  })

  it('never puts the password in the server processes argv or environment', async () => {
    const tree = processTree(cluster.pid)
    expect(tree.length).toBeGreaterThan(3) // postmaster + checkpointer, walwriter, archiver …
    for (const pid of tree) {
      const args = cmdline(pid)
      expect(args).not.toContain(cluster.password)
      expect(args).not.toContain('PGPASSWORD')
    }
    const environ = fs.readFileSync(`/proc/${cluster.pid}/environ`, 'utf8').split('\0')
    expect(environ.some((e) => e.startsWith('PGPASSWORD='))).toBe(false)
    expect(environ.some((e) => e.includes(cluster.password))).toBe(false)
    expect(cmdline(cluster.pid)).toContain(cluster.dataDir)
  })

  it('restart(conf) applies new settings and keeps the data', async () => {
    const before = cluster.pid
    await cluster.restart({work_mem: '12MB'})
    expect(cluster.pid).not.toBe(before)
    expect(pidAlive(before)).toBe(false)
    expect(await cluster.query('SHOW work_mem')).toEqual([{work_mem: '12MB'}])
    expect(await cluster.query('SELECT count(*)::int AS n FROM t')).toEqual([{n: 10000}])
  })

  it('stop() stops the server and removes its directory', async () => {
    const cl = await startPostgres({name: 'stop'})
    const {pid, baseDir, port} = cl
    expect(await isListening(port)).toBe(true)
    await cl.stop()
    expect(await waitGone(pid, 5000)).toBe(true)
    expect(fs.existsSync(baseDir)).toBe(false)
    expect(await isListening(port)).toBe(false)
    await cl.stop() // idempotent
  })
})

describe('redis-server', () => {
  it('serves SET / GET behind a password that is not on its command line', async () => {
    const password = randomBytes(12).toString('hex')
    const redis = await startRedis({password})
    try {
      expect(redis.url).toBe(`redis://:${password}@127.0.0.1:${redis.port}`)
      expect(cmdline(redis.pid)).not.toContain(password)
      expect(cmdline(redis.pid)).toContain(`127.0.0.1:${redis.port}`) // redis rewrites its title to bind:port

      const client = new Redis(redis.url, {maxRetriesPerRequest: 1})
      try {
        expect(await client.set('charging:session:1', 'queued')).toBe('OK')
        expect(await client.get('charging:session:1')).toBe('queued')
        expect(await client.config('GET', 'save')).toEqual(['save', ''])
        expect(await client.config('GET', 'bind')).toEqual(['bind', '127.0.0.1'])
      } finally {
        client.disconnect()
      }

      const anonymous = new Redis({
        host: redis.host,
        port: redis.port,
        lazyConnect: true,
        enableReadyCheck: false,
        maxRetriesPerRequest: 0,
        retryStrategy: () => null,
      })
      anonymous.on('error', () => {})
      try {
        await anonymous.connect()
        await expect(anonymous.get('charging:session:1')).rejects.toThrow(/NOAUTH/)
      } finally {
        anonymous.disconnect()
      }
    } finally {
      await redis.stop()
    }
    expect(pidAlive(redis.pid)).toBe(false)
    expect(await isListening(redis.port)).toBe(false)
  })

  it('keeps data in a given dir across restarts when persistence is on', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'charge-ops-redis-selftest-'))
    try {
      const first = await startRedis({dir, args: ['--save', '3600 1']})
      const client = new Redis(first.url)
      await client.rpush('queue', 'a', 'b', 'c')
      expect(await client.save()).toBe('OK')
      client.disconnect()
      await first.stop()
      expect(fs.existsSync(path.join(dir, 'dump.rdb'))).toBe(true)

      const second = await startRedis({dir})
      const again = new Redis(second.url)
      try {
        expect(await again.lrange('queue', 0, -1)).toEqual(['a', 'b', 'c'])
      } finally {
        again.disconnect()
        await second.stop()
      }
      expect(fs.existsSync(dir)).toBe(true) // a caller's dir is kept
    } finally {
      fs.rmSync(dir, {recursive: true, force: true})
    }
  })
})

describe('S3 (s3rver)', () => {
  it('PutObject / GetObject / ListObjectsV2 and a 2-part multipart Upload round-trip', async () => {
    const s3 = await startS3({buckets: ['charge-ops-backups', 'other']})
    const client = new S3Client(s3.clientConfig())
    try {
      expect(s3.bucket).toBe('charge-ops-backups')
      expect(s3.env).toMatchObject({
        AWS_ENDPOINT_URL_S3: s3.endpoint,
        AWS_ACCESS_KEY_ID: 'S3RVER',
        AWS_SECRET_ACCESS_KEY: 'S3RVER',
        AWS_REGION: s3.region,
      })

      const manifest = Buffer.from(JSON.stringify({id: 'b1', parts: []}))
      await client.send(new PutObjectCommand({Bucket: s3.bucket, Key: 'prod/backups/b1/manifest.json', Body: manifest}))
      const got = await client.send(new GetObjectCommand({Bucket: s3.bucket, Key: 'prod/backups/b1/manifest.json'}))
      expect(Buffer.from(await got.Body!.transformToByteArray()).equals(manifest)).toBe(true)

      const data = randomBytes(5 * 1024 * 1024 + 512 * 1024) // 5.5 MB: two parts of 5 MB + 0.5 MB
      const parts = new Set<number>()
      const upload = new Upload({
        client,
        params: {Bucket: s3.bucket, Key: 'prod/backups/b1/db.dump.zst', Body: data},
        partSize: 5 * 1024 * 1024,
        queueSize: 2,
      })
      upload.on('httpUploadProgress', (p) => p.part && parts.add(p.part))
      await upload.done()
      expect([...parts].sort()).toEqual([1, 2])
      const big = await client.send(new GetObjectCommand({Bucket: s3.bucket, Key: 'prod/backups/b1/db.dump.zst'}))
      const body = Buffer.from(await big.Body!.transformToByteArray())
      expect(body.length).toBe(data.length)
      expect(sha256(body)).toBe(sha256(data))

      const list = await client.send(new ListObjectsV2Command({Bucket: s3.bucket, Prefix: 'prod/backups/b1/'}))
      expect(list.Contents?.map((o) => [o.Key, o.Size])).toEqual([
        ['prod/backups/b1/db.dump.zst', data.length],
        ['prod/backups/b1/manifest.json', manifest.length],
      ])
      const other = await client.send(new ListObjectsV2Command({Bucket: 'other'}))
      expect(other.KeyCount).toBe(0)
    } finally {
      client.destroy()
      await s3.stop()
    }
    expect(fs.existsSync(s3.dir)).toBe(false)
    expect(await isListening(s3.port)).toBe(false)
  })

  it('env alone configures the SDK (streamed PutObject stays byte-exact)', async () => {
    const s3 = await startS3()
    const saved = {...process.env}
    Object.assign(process.env, s3.env)
    const client = new S3Client({forcePathStyle: true})
    try {
      const data = randomBytes(300_000)
      await client.send(
        new PutObjectCommand({
          Bucket: s3.bucket,
          Key: 'stream.bin',
          Body: Readable.from([data.subarray(0, 100_000), data.subarray(100_000)]),
          ContentLength: data.length,
        }),
      )
      const got = await client.send(new GetObjectCommand({Bucket: s3.bucket, Key: 'stream.bin'}))
      const body = Buffer.from(await got.Body!.transformToByteArray())
      // without AWS_REQUEST_CHECKSUM_CALCULATION=WHEN_REQUIRED, s3rver stores the aws-chunked framing
      expect(body.length).toBe(data.length)
      expect(sha256(body)).toBe(sha256(data))
    } finally {
      client.destroy()
      process.env = saved
      await s3.stop()
    }
  })

  it('in a child process, can be killed mid-upload', async () => {
    const s3 = await startS3({process: true})
    const client = new S3Client({...s3.clientConfig(), maxAttempts: 1})
    try {
      expect(s3.pid).toBeGreaterThan(0)
      expect(pidAlive(s3.pid!)).toBe(true)
      await client.send(new PutObjectCommand({Bucket: s3.bucket, Key: 'small', Body: 'ok'}))

      const data = randomBytes(30 * 1024 * 1024)
      const upload = new Upload({
        client,
        params: {Bucket: s3.bucket, Key: 'big', Body: data},
        partSize: 5 * 1024 * 1024,
        queueSize: 1,
      })
      let killed = false
      upload.on('httpUploadProgress', (p) => {
        if (!killed && (p.part ?? 0) >= 1) {
          killed = true
          void s3.kill('SIGKILL')
        }
      })
      await expect(upload.done()).rejects.toThrow()
      expect(killed).toBe(true)
      expect(await waitGone(s3.pid!, 5000)).toBe(true)
      expect(await isListening(s3.port)).toBe(false)
    } finally {
      client.destroy()
      await s3.stop()
    }
  })
})

describe('Chroma', () => {
  const embeddings = [
    [1, 0, 0, 0],
    [0, 1, 0, 0],
    [0, 0, 1, 0],
  ]
  const documents = [
    'battery over-temperature above 55 C',
    'power derating at high SOC',
    'session interrupted by charger fault',
  ]

  it('shared server: create a collection, add documents with embeddings, query the nearest', async () => {
    const chroma = sharedChroma()
    expect(chroma.url).toBe(`http://127.0.0.1:${chroma.port}`)
    const client = new ChromaClient({host: chroma.host, port: chroma.port, ssl: false})
    const name = `harness_${randomBytes(4).toString('hex')}`
    const collection = await client.createCollection({name, embeddingFunction: null})
    await collection.add({
      ids: ['temp', 'derate', 'interrupt'],
      embeddings,
      documents,
      metadatas: [{finding: 'over_temperature'}, {finding: 'derating'}, {finding: 'interruption'}],
    })
    expect(await collection.count()).toBe(3)
    const result = await collection.query({
      queryEmbeddings: [[0.1, 0.95, 0.05, 0]],
      nResults: 2,
      include: ['documents', 'metadatas', 'distances'],
    })
    expect(result.ids).toEqual([['derate', 'temp']])
    expect(result.documents).toEqual([[documents[1], documents[0]]])
    expect(result.metadatas[0]![0]).toEqual({finding: 'derating'})
    await client.deleteCollection({name})
  })

  it('private server keeps its data across a SIGKILL stop, and leaves no process', async () => {
    const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'charge-ops-chroma-selftest-'))
    try {
      const first = await startChroma({dataDir})
      const group = first.pid
      const c1 = new ChromaClient({host: first.host, port: first.port, ssl: false})
      const col = await c1.createCollection({name: 'charging_knowledge', embeddingFunction: null})
      await col.add({ids: ['a', 'b', 'c'], embeddings, documents})
      await first.stop()
      expect(await waitGone(group, 5000)).toBe(true)
      expect(await isListening(first.port)).toBe(false)

      const second = await startChroma({dataDir})
      try {
        const c2 = new ChromaClient({host: second.host, port: second.port, ssl: false})
        const again = await c2.getCollection({name: 'charging_knowledge'})
        expect(await again.count()).toBe(3)
        const result = await again.query({queryEmbeddings: [[0, 0, 1, 0]], nResults: 1})
        expect(result.ids).toEqual([['c']])
      } finally {
        await second.stop()
      }
      expect(pidAlive(second.pid)).toBe(false)
    } finally {
      fs.rmSync(dataDir, {recursive: true, force: true})
    }
  })
})

describe('no server outlives the process that started it', () => {
  type Started = Record<'postgres' | 'redis' | 'chroma' | 's3', {pid: number; dir: string}>

  async function startFixture(): Promise<{child: ReturnType<typeof spawn>; started: Started}> {
    const child = spawn(process.execPath, ['--import', 'tsx', path.join(root, 'test/support/orphan-check.ts')], {
      cwd: root,
      stdio: ['ignore', 'pipe', 'pipe'],
    })
    let stderr = ''
    child.stderr!.setEncoding('utf8').on('data', (d: string) => (stderr += d))
    const started = await new Promise<Started>((resolve, reject) => {
      let out = ''
      child.stdout!.setEncoding('utf8').on('data', (d: string) => {
        out += d
        if (out.includes('\n')) resolve(JSON.parse(out.split('\n')[0]!) as Started)
      })
      child.once('exit', (code) => reject(new Error(`orphan-check exited ${code}: ${stderr}`)))
    })
    for (const s of Object.values(started)) expect(pidAlive(s.pid)).toBe(true)
    return {child, started}
  }

  it.each(['SIGTERM', 'SIGKILL'] as const)('after %s of that process', async (signal) => {
    const {child, started} = await startFixture()
    const exited = new Promise((r) => child.once('exit', r))
    child.kill(signal)
    await exited
    for (const [name, s] of Object.entries(started)) {
      expect(await waitGone(s.pid), `${name} pid ${s.pid}`).toBe(true)
    }
    // PostgreSQL's watchdog (SIGKILL) or exit handler (SIGTERM) removes the cluster's dir
    const deadline = Date.now() + 10_000
    while (fs.existsSync(started.postgres.dir) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100))
    expect(fs.existsSync(started.postgres.dir)).toBe(false)
    if (signal === 'SIGTERM') {
      for (const s of Object.values(started)) expect(fs.existsSync(s.dir), s.dir).toBe(false)
    } else {
      // the processes died of PR_SET_PDEATHSIG; nothing ran to remove their temp dirs
      for (const s of Object.values(started)) fs.rmSync(s.dir, {recursive: true, force: true})
    }
  })
})
