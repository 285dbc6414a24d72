/**
 * Ephemeral PostgreSQL clusters for tests: initdb + pg_ctl in a fresh temp dir, on a
 * free loopback port, SCRAM auth with a generated superuser password, data checksums.
 *
 * As root (CI), initdb refuses to run, so initdb / pg_ctl / postgres run as the
 * `postgres` OS user (or a system user `charge-ops-test`, created when missing) and the
 * temp dir belongs to that user. The password reaches child processes through the
 * environment only (env()), never argv; the server processes get no PG* variables at all.
 */
import {execFileSync, spawn, spawnSync, type ChildProcess} from 'node:child_process'
import {randomBytes} from 'node:crypto'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import pg from 'pg'
import {pgBinDir} from './binaries.js'
import {freePort} from './ports.js'
import {cleanEnv, onProcessExit, run, runUnchecked} from './process.js'

export interface PgOsUser {
  uid: number
  gid: number
  name: string
}

/** Everything needed to reach a cluster; plain data, so it can cross process boundaries. */
export interface PgClusterInfo {
  host: string
  port: number
  user: string
  password: string
  /** The cluster's data directory (PGDATA). */
  dataDir: string
  /** The directory of initdb, pg_ctl, pg_dump, pg_basebackup, psql … */
  binDir: string
  /** The temp dir holding dataDir, the unix socket, the server log; removed by stop(). */
  baseDir: string
  /** The server log (pg_ctl -l). */
  logFile: string
  /** The OS user the server runs as, when the tests run as root. */
  osUser?: PgOsUser
}

/** A cluster to use, without the lifecycle methods (what sharedPostgres() returns). */
export interface PgClient extends PgClusterInfo {
  /** postgresql://postgres:PASSWORD@127.0.0.1:PORT/db */
  url(db?: string): string
  /** PGHOST / PGPORT / PGUSER / PGPASSWORD, for child processes (pg_dump, psql, charge-ops …). */
  env(): Record<string, string>
  /** Runs one statement (or a multi-statement string without params) on `db` and returns its rows. */
  query<R extends Record<string, unknown> = Record<string, unknown>>(
    sql: string,
    db?: string,
    params?: unknown[],
  ): Promise<R[]>
  /** CREATE DATABASE (a fresh random name unless given); returns its URL. */
  createDatabase(name?: string): Promise<string>
  /**
   * A directory inside baseDir that the server's OS user can write (e.g. a WAL archive
   * for archive_command, a pg_basebackup target). Created if missing; returns its path.
   */
  serverDir(name: string): string
}

export interface PgCluster extends PgClient {
  /** The postmaster's pid (changes on restart). */
  readonly pid: number
  /** pg_ctl stop -m fast, then removes baseDir. Idempotent. */
  stop(): Promise<void>
  /** Appends `conf` (if any) to postgresql.conf and restarts the server. */
  restart(conf?: Record<string, string>): Promise<void>
}

export interface StartPostgresOptions {
  /** Settings appended to postgresql.conf (they win over the harness' defaults, e.g. fsync). */
  conf?: Record<string, string>
  /** A label for the temp dir name (charge-ops-pg-NAME-XXXXXX). */
  name?: string
  /** pg_ctl start timeout in seconds (default 60). */
  startTimeoutSec?: number
}

const SUPERUSER = 'postgres'
const HOST = '127.0.0.1'

// ------------------------------------------------------------------ OS user

let osUserCache: PgOsUser | null | undefined

function lookupUser(name: string): PgOsUser | undefined {
  try {
    const line = execFileSync('getent', ['passwd', name], {encoding: 'utf8'}).trim()
    const [, , uid, gid] = line.split(':')
    return {name, uid: Number(uid), gid: Number(gid)}
  } catch {
    return undefined
  }
}

/** The OS user the server runs as: none when not root, else postgres / charge-ops-test. */
export function pgOsUser(): PgOsUser | undefined {
  if (osUserCache !== undefined) return osUserCache ?? undefined
  if (typeof process.getuid !== 'function' || process.getuid() !== 0) {
    osUserCache = null
    return undefined
  }
  let user = lookupUser('postgres') ?? lookupUser('charge-ops-test')
  if (!user) {
    const result = spawnSync(
      'useradd',
      [
        '--system',
        '--user-group',
        '--no-create-home',
        '--home-dir',
        '/nonexistent',
        '--shell',
        '/usr/sbin/nologin',
        'charge-ops-test',
      ],
      {encoding: 'utf8'},
    )
    user = lookupUser('charge-ops-test') // another worker may have created it meanwhile (exit 9)
    if (!user)
      throw new Error(`cannot create the OS user charge-ops-test for PostgreSQL: ${result.stderr || result.error}`)
  }
  osUserCache = user
  return user
}

/** A temp root the server's OS user can traverse: os.tmpdir(), or /tmp when it is private. */
function tempRoot(osUser: PgOsUser | undefined): string {
  const base = os.tmpdir()
  if (!osUser) return base
  let dir = path.resolve(base)
  for (;;) {
    const mode = fs.statSync(dir).mode
    if ((mode & 0o001) === 0) return '/tmp'
    const parent = path.dirname(dir)
    if (parent === dir) return base
    dir = parent
  }
}

// ------------------------------------------------------------------ conf

function quoteConfValue(value: string): string {
  if (/^'.*'$/s.test(value)) return value // already quoted by the caller
  return `'${value.replaceAll('\\', '\\\\').replaceAll("'", "''")}'`
}

function confBlock(conf: Record<string, string>, comment: string): string {
  const lines = Object.entries(conf).map(([key, value]) => {
    if (!/^[a-z_][a-z0-9_.]*$/i.test(key)) throw new Error(`invalid postgresql.conf key: ${key}`)
    return `${key} = ${quoteConfValue(String(value))}`
  })
  return `\n# ${comment}\n${lines.join('\n')}\n`
}

function quoteIdent(name: string): string {
  return `"${name.replaceAll('"', '""')}"`
}

// ------------------------------------------------------------------ client side

/** The client half of a cluster (url, env, query, createDatabase, serverDir) from its info. */
export function pgClient(info: PgClusterInfo): PgClient {
  const client: PgClient = {
    ...info,
    url(db = 'postgres') {
      return `postgresql://${encodeURIComponent(info.user)}:${encodeURIComponent(info.password)}@${info.host}:${info.port}/${encodeURIComponent(db)}`
    },
    env() {
      return {PGHOST: info.host, PGPORT: String(info.port), PGUSER: info.user, PGPASSWORD: info.password}
    },
    async query<R extends Record<string, unknown> = Record<string, unknown>>(
      sql: string,
      db = 'postgres',
      params?: unknown[],
    ) {
      const c = new pg.Client({
        host: info.host,
        port: info.port,
        user: info.user,
        password: info.password,
        database: db,
      })
      await c.connect()
      try {
        const result = await c.query(sql, params)
        // a multi-statement string yields an array of results: return the last one's rows
        const last = Array.isArray(result) ? result.at(-1) : result
        return (last?.rows ?? []) as R[]
      } finally {
        await c.end()
      }
    },
    async createDatabase(name?: string) {
      const db = name ?? `test_${randomBytes(6).toString('hex')}`
      await client.query(`CREATE DATABASE ${quoteIdent(db)}`)
      return client.url(db)
    },
    serverDir(name: string) {
      const dir = path.resolve(info.baseDir, name)
      if (!dir.startsWith(info.baseDir + path.sep)) throw new Error(`serverDir: ${name} escapes ${info.baseDir}`)
      fs.mkdirSync(dir, {recursive: true, mode: 0o700})
      if (info.osUser) chownTree(info.baseDir, dir, info.osUser)
      return dir
    },
  }
  return client
}

/** chown every directory from below `root` down to `dir` (inclusive) to the OS user. */
function chownTree(root: string, dir: string, user: PgOsUser): void {
  let d = dir
  while (d.startsWith(root + path.sep)) {
    fs.chownSync(d, user.uid, user.gid)
    d = path.dirname(d)
  }
}

// ------------------------------------------------------------------ server side

/**
 * Starts a fresh cluster. Settings in opts.conf are appended to postgresql.conf after the
 * harness' own (listen_addresses, port, unix_socket_directories, fsync = off), so they win.
 */
export async function startPostgres(opts: StartPostgresOptions = {}): Promise<PgCluster> {
  const binDir = pgBinDir()
  const osUser = pgOsUser()
  const label = opts.name ? `${opts.name.replace(/[^a-zA-Z0-9_-]/g, '_')}-` : ''
  const baseDir = fs.realpathSync(fs.mkdtempSync(path.join(tempRoot(osUser), `charge-ops-pg-${label}`)))
  const dataDir = path.join(baseDir, 'data')
  const logFile = path.join(baseDir, 'postgres.log')
  const password = randomBytes(18).toString('base64url')
  const timeoutSec = opts.startTimeoutSec ?? 60

  // readable + traversable by others (e.g. another process run as the same OS user, or root)
  fs.chmodSync(baseDir, 0o755)
  if (osUser) fs.chownSync(baseDir, osUser.uid, osUser.gid)

  const asServer = {
    cwd: baseDir,
    env: cleanEnv({HOME: baseDir, LC_ALL: 'C.UTF-8'}),
    uid: osUser?.uid,
    gid: osUser?.gid,
  }
  const pgCtl = path.join(binDir, 'pg_ctl')

  let port = 0
  let started = false
  let unregister: (() => void) | undefined
  let watchdog: ChildProcess | undefined
  const removeBase = () => fs.rmSync(baseDir, {recursive: true, force: true, maxRetries: 3})

  try {
    // --- initdb (password from a 0600 file that the server user owns, removed right after)
    const pwFile = path.join(baseDir, '.pwfile')
    fs.writeFileSync(pwFile, `${password}\n`, {mode: 0o600})
    if (osUser) fs.chownSync(pwFile, osUser.uid, osUser.gid)
    try {
      await run(
        path.join(binDir, 'initdb'),
        [
          '-D',
          dataDir,
          '-U',
          SUPERUSER,
          '--auth=scram-sha-256',
          `--pwfile=${pwFile}`,
          '--data-checksums',
          '--encoding=UTF8',
          '--locale=C.UTF-8',
          '--no-sync',
          '--no-instructions',
        ],
        asServer,
      )
    } finally {
      fs.rmSync(pwFile, {force: true})
    }

    // --- settings
    port = opts.conf?.port ? Number(opts.conf.port) : await freePort()
    const confFile = path.join(dataDir, 'postgresql.conf')
    fs.appendFileSync(
      confFile,
      confBlock(
        {listen_addresses: HOST, port: String(port), unix_socket_directories: baseDir, fsync: 'off'},
        'charge-ops test harness',
      ),
    )
    if (opts.conf && Object.keys(opts.conf).length > 0)
      fs.appendFileSync(confFile, confBlock(opts.conf, 'startPostgres({conf})'))

    // --- last-chance cleanup, registered before the server starts
    unregister = onProcessExit(() => {
      if (started) {
        spawnSync(pgCtl, ['stop', '-D', dataDir, '-m', 'immediate', '-w', '-t', '10'], {...asServer, stdio: 'ignore'})
      }
      removeBase()
    })

    // --- start (retry on a port taken between freePort() and bind)
    for (let attempt = 1; ; attempt++) {
      const result = await runUnchecked(
        pgCtl,
        ['start', '-D', dataDir, '-l', logFile, '-w', '-t', String(timeoutSec)],
        asServer,
      )
      if (result.code === 0) break
      const log = fs.existsSync(logFile) ? fs.readFileSync(logFile, 'utf8') : ''
      if (attempt < 4 && !opts.conf?.port && /could not bind|Address already in use/i.test(log)) {
        port = await freePort()
        fs.appendFileSync(confFile, confBlock({port: String(port)}, `port retry ${attempt}`))
        continue
      }
      throw new Error(
        `pg_ctl start failed (exit ${result.code}): ${result.stderr.trim()}\n--- ${logFile}\n${log.slice(-4000)}`,
      )
    }
    started = true

    // --- a watchdog that stops the server if this process dies without cleanup (SIGKILL):
    // it blocks reading a pipe from us; EOF means we are gone.
    watchdog = spawn(
      'bash',
      [
        '-c',
        'if IFS= read -r line && [ "$line" = cancel ]; then exit 0; fi; "$1" stop -D "$2" -m immediate -w -t 10 >/dev/null 2>&1; rm -rf -- "$3"',
        'charge-ops-pg-watchdog',
        pgCtl,
        dataDir,
        baseDir,
      ],
      {...asServer, stdio: ['pipe', 'ignore', 'ignore'], detached: true},
    )
    watchdog.on('error', () => {})
    watchdog.unref()
    ;(watchdog.stdin as unknown as {unref?: () => void}).unref?.()
  } catch (error) {
    if (started) await runUnchecked(pgCtl, ['stop', '-D', dataDir, '-m', 'immediate', '-w'], asServer)
    unregister?.()
    removeBase()
    throw error
  }

  const readPid = () => Number(fs.readFileSync(path.join(dataDir, 'postmaster.pid'), 'utf8').split('\n')[0])
  let pid = readPid()

  const info: PgClusterInfo = {host: HOST, port, user: SUPERUSER, password, dataDir, binDir, baseDir, logFile, osUser}

  let stopped = false
  const cluster: PgCluster = {
    ...pgClient(info),
    get pid() {
      return pid
    },
    async stop() {
      if (stopped) return
      stopped = true
      watchdog?.stdin?.end('cancel\n')
      const result = await runUnchecked(pgCtl, ['stop', '-D', dataDir, '-m', 'fast', '-w', '-t', '60'], asServer)
      if (result.code !== 0 && fs.existsSync(path.join(dataDir, 'postmaster.pid'))) {
        await runUnchecked(pgCtl, ['stop', '-D', dataDir, '-m', 'immediate', '-w', '-t', '30'], asServer)
      }
      unregister?.()
      removeBase()
    },
    async restart(conf?: Record<string, string>) {
      if (stopped) throw new Error('restart: the cluster was stopped')
      if (conf && Object.keys(conf).length > 0) {
        if (conf.port && Number(conf.port) !== info.port) throw new Error('restart: changing the port is not supported')
        fs.appendFileSync(path.join(dataDir, 'postgresql.conf'), confBlock(conf, 'restart({conf})'))
      }
      const result = await runUnchecked(
        pgCtl,
        ['restart', '-D', dataDir, '-l', logFile, '-m', 'fast', '-w', '-t', String(timeoutSec)],
        asServer,
      )
      if (result.code !== 0) {
        const log = fs.existsSync(logFile) ? fs.readFileSync(logFile, 'utf8') : ''
        throw new Error(
          `pg_ctl restart failed (exit ${result.code}): ${result.stderr.trim()}\n--- ${logFile}\n${log.slice(-4000)}`,
        )
      }
      pid = readPid()
    },
  }
  return cluster
}
