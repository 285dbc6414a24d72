/**
 * The sandbox's private servers: a PostgreSQL 15 cluster (run as the `postgres` OS user when we
 * are root — initdb refuses root), a redis-server and a Chroma server, each on its own loopback
 * port, each reusable across runs (start is a no-op when it is already up). Secrets travel in
 * 0600 files (initdb --pwfile, redis.conf requirepass), never argv.
 */
import {
  chmodSync,
  chownSync,
  closeSync,
  existsSync,
  lstatSync,
  mkdirSync,
  openSync,
  readFileSync,
  realpathSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs'
import {createHash} from 'node:crypto'
import {createServer} from 'node:net'
import {dirname, join} from 'node:path'
import {execFileSync} from 'node:child_process'

import {CliError, ExitCode, UnreachableError} from '../errors.js'
import {run} from '../core/proc/exec.js'
import {packageRoot} from '../service/process.js'
import {pidAlive} from '../core/proc/pid.js'
import {faultPoint} from '../core/faults.js'

export interface OsUser {
  uid: number
  gid: number
  name: string
}

/** A free TCP port on 127.0.0.1 right now. */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer()
    server.once('error', reject)
    server.listen({host: '127.0.0.1', port: 0, exclusive: true}, () => {
      const address = server.address()
      const port = typeof address === 'object' && address ? address.port : 0
      server.close(() => resolve(port))
    })
  })
}

export async function portFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer()
    server.once('error', () => resolve(false))
    server.listen({host: '127.0.0.1', port, exclusive: true}, () => server.close(() => resolve(true)))
  })
}

export function pgBinDir(): string {
  const candidates = [process.env.PG_BINDIR, '/usr/lib/postgresql/15/bin'].filter((d): d is string => Boolean(d))
  for (const dir of candidates) if (['initdb', 'pg_ctl', 'postgres'].every((b) => existsSync(join(dir, b)))) return dir
  throw new UnreachableError(
    'PostgreSQL 15 server binaries (initdb, pg_ctl) were not found in /usr/lib/postgresql/15/bin',
    {
      code: 'TOOL_NOT_FOUND',
      hint: 'Install them: apt-get install -y postgresql-15 postgresql-client-15 (or set PG_BINDIR).',
    },
  )
}

/** The OS user PostgreSQL runs as: ourselves, or `postgres` when we are root. */
export function serverUser(): OsUser | undefined {
  if (typeof process.getuid !== 'function' || process.getuid() !== 0) return undefined
  try {
    const [, , uid, gid] = execFileSync('getent', ['passwd', 'postgres'], {encoding: 'utf8'}).trim().split(':')
    return {name: 'postgres', uid: Number(uid), gid: Number(gid)}
  } catch {
    throw new CliError(
      'SANDBOX_NO_PG_USER',
      ExitCode.unreachable,
      'running as root, but there is no `postgres` OS user to run PostgreSQL as (initdb refuses root)',
      {
        hint: 'apt-get install -y postgresql-15 creates it; or run the sandbox as a normal user.',
      },
    )
  }
}

export function readPidFile(file: string): number | undefined {
  try {
    const pid = Number(readFileSync(file, 'utf8').split('\n')[0]!.trim())
    return Number.isInteger(pid) && pid > 0 && pidAlive(pid) ? pid : undefined
  } catch {
    return undefined
  }
}

async function waitFor(
  probe: () => Promise<boolean>,
  timeoutMs: number,
  what: string,
  logFile?: string,
): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (Date.now() < deadline) {
    if (await probe().catch(() => false)) return
    await new Promise((r) => setTimeout(r, 250))
  }
  const tail =
    logFile && existsSync(logFile) ? `\n${readFileSync(logFile, 'utf8').trim().split('\n').slice(-10).join('\n')}` : ''
  throw new UnreachableError(`${what} did not become ready within ${timeoutMs / 1000} s${tail}`, {
    hint: logFile ? `See ${logFile}.` : undefined,
  })
}

// ---------------------------------------------------------------- PostgreSQL

export interface PgPaths {
  dataDir: string
  socketDir: string
  logFile: string
}

/**
 * Where the cluster lives: `<root>/pg`, or — when PostgreSQL's OS user cannot reach the sandbox
 * (root's 0700 home on Debian: a `git clone` into ~ as root) — a directory of its own under
 * /var/lib/charge-ops/sandbox-pg, with `<root>/pg` a symlink to it. PostgreSQL is always given the
 * real path (it cannot pass through the home directory, the symlink would not help it).
 */
function pgRootOf(root: string): string {
  const link = join(root, 'pg')
  try {
    return lstatSync(link).isSymbolicLink() ? realpathSync(link) : link
  } catch {
    return link
  }
}

export function pgPaths(root: string): PgPaths {
  const pgRoot = pgRootOf(root)
  const relocated = pgRoot !== join(root, 'pg')
  return {
    dataDir: join(pgRoot, 'data'),
    socketDir: join(pgRoot, 'run'),
    logFile: relocated ? join(pgRoot, 'postgresql.log') : join(root, 'logs', 'postgresql.log'),
  }
}

function asServer(user: OsUser | undefined, cwd: string) {
  return {cwd, uid: user?.uid, gid: user?.gid, env: {HOME: cwd, LC_ALL: 'C.UTF-8'}}
}

/** Whether `user` can enter every directory down to `root`. */
function traversable(root: string, user: OsUser): boolean {
  let dir = root
  for (;;) {
    if (existsSync(dir)) {
      const st = statSync(dir)
      const ok =
        st.uid === user.uid
          ? (st.mode & 0o100) !== 0
          : st.gid === user.gid
            ? (st.mode & 0o010) !== 0
            : (st.mode & 0o001) !== 0
      if (!ok) return false
    }
    const parent = dirname(dir)
    if (parent === dir) return true
    dir = parent
  }
}

export const RELOCATED_PG_BASE = '/var/lib/charge-ops/sandbox-pg'

/** The cluster's directory, relocated (once, by a symlink) when the server's user cannot reach the sandbox. */
function placePgRoot(root: string, user: OsUser | undefined, logger?: {info(m: string): void}): string {
  const link = join(root, 'pg')
  if (!user || existsSync(link) || traversable(root, user)) return pgRootOf(root)
  const target = join(RELOCATED_PG_BASE, createHash('sha256').update(root).digest('hex').slice(0, 16))
  mkdirSync(RELOCATED_PG_BASE, {recursive: true, mode: 0o755})
  mkdirSync(target, {recursive: true, mode: 0o700})
  mkdirSync(root, {recursive: true})
  symlinkSync(target, link)
  logger?.info(
    `PostgreSQL runs as "${user.name}", which cannot enter ${root}: its data is in ${target} (${link} points there)`,
  )
  return target
}

export function postgresRunning(root: string): number | undefined {
  return readPidFile(join(pgPaths(root).dataDir, 'postmaster.pid'))
}

/** initdb (first run only) and start; returns true when it was started by this call. */
export async function ensurePostgres(
  root: string,
  port: number,
  superuserPassword: string,
): Promise<{initialised: boolean; started: boolean}> {
  const bin = pgBinDir()
  const user = serverUser()
  const pgRoot = placePgRoot(root, user, {info: (m) => process.stderr.write(`${m}\n`)})
  const paths = pgPaths(root)
  mkdirSync(pgRoot, {recursive: true, mode: 0o700})
  mkdirSync(paths.socketDir, {recursive: true})
  mkdirSync(join(root, 'logs'), {recursive: true})
  if (user) {
    chownSync(pgRoot, user.uid, user.gid)
    chownSync(paths.socketDir, user.uid, user.gid)
    if (!existsSync(paths.logFile)) writeFileSync(paths.logFile, '')
    chownSync(paths.logFile, user.uid, user.gid)
  }
  let initialised = false
  if (!existsSync(join(paths.dataDir, 'PG_VERSION'))) {
    rmSync(paths.dataDir, {recursive: true, force: true}) // a half-done initdb from a killed run
    const pwFile = join(pgRoot, '.pwfile')
    writeFileSync(pwFile, `${superuserPassword}\n`, {mode: 0o600})
    if (user) chownSync(pwFile, user.uid, user.gid)
    try {
      await run(
        join(bin, 'initdb'),
        [
          '-D',
          paths.dataDir,
          '-U',
          'postgres',
          '--auth=scram-sha-256',
          `--pwfile=${pwFile}`,
          '--encoding=UTF8',
          '--locale=C.UTF-8',
          '--no-instructions',
        ],
        {
          ...asServer(user, pgRoot),
          purpose: 'initdb of the sandbox cluster',
          failureExitCode: ExitCode.unreachable,
        },
      )
    } finally {
      rmSync(pwFile, {force: true})
    }
    initialised = true
  }
  // the port may change between runs (it was taken): always (re)write our settings block
  writeFileSync(
    join(paths.dataDir, 'charge-ops-sandbox.conf'),
    `listen_addresses = '127.0.0.1'\nport = ${port}\nunix_socket_directories = '${paths.socketDir}'\nshared_buffers = '128MB'\nmax_connections = 50\nshared_preload_libraries = 'pg_stat_statements'\n`,
  )
  if (user) chownSync(join(paths.dataDir, 'charge-ops-sandbox.conf'), user.uid, user.gid)
  const conf = join(paths.dataDir, 'postgresql.conf')
  if (!readFileSync(conf, 'utf8').includes("include_if_exists = 'charge-ops-sandbox.conf'")) {
    writeFileSync(conf, readFileSync(conf, 'utf8') + "\ninclude_if_exists = 'charge-ops-sandbox.conf'\n")
  }
  if (postgresRunning(root)) return {initialised, started: false}
  await run(join(bin, 'pg_ctl'), ['start', '-D', paths.dataDir, '-l', paths.logFile, '-w', '-t', '60'], {
    ...asServer(user, pgRoot),
    purpose: 'starting the sandbox PostgreSQL',
    failureExitCode: ExitCode.unreachable,
  })
  return {initialised, started: true}
}

export async function stopPostgres(root: string): Promise<boolean> {
  const paths = pgPaths(root)
  if (!postgresRunning(root)) return false
  await run(join(pgBinDir(), 'pg_ctl'), ['stop', '-D', paths.dataDir, '-m', 'fast', '-w', '-t', '60'], {
    ...asServer(serverUser(), pgRootOf(root)),
    purpose: 'stopping the sandbox PostgreSQL',
  })
  return true
}

// ---------------------------------------------------------------- Redis

export function redisPidFile(root: string): string {
  return join(root, 'run', 'redis.pid')
}

export async function ensureRedis(root: string, port: number, password: string): Promise<{started: boolean}> {
  const dir = join(root, 'redis')
  mkdirSync(dir, {recursive: true, mode: 0o700})
  mkdirSync(join(root, 'run'), {recursive: true})
  mkdirSync(join(root, 'logs'), {recursive: true})
  if (readPidFile(redisPidFile(root))) return {started: false}
  const conf = join(dir, 'redis.conf')
  writeFileSync(
    conf,
    [
      'bind 127.0.0.1',
      `port ${port}`,
      'protected-mode yes',
      `requirepass "${password}"`,
      `dir ${dir}`,
      'appendonly yes',
      'appendfsync everysec',
      'daemonize yes',
      `pidfile ${redisPidFile(root)}`,
      `logfile ${join(root, 'logs', 'redis.log')}`,
      'maxmemory 256mb',
      'maxmemory-policy noeviction',
      '',
    ].join('\n'),
    {mode: 0o600},
  )
  chmodSync(conf, 0o600)
  await run('redis-server', [conf], {
    purpose: 'starting the sandbox redis-server',
    failureExitCode: ExitCode.unreachable,
  })
  await waitFor(
    async () => readPidFile(redisPidFile(root)) !== undefined && !(await portFree(port)),
    15_000,
    'redis-server',
    join(root, 'logs', 'redis.log'),
  )
  return {started: true}
}

export async function stopRedis(root: string): Promise<boolean> {
  const pid = readPidFile(redisPidFile(root))
  if (!pid) return false
  process.kill(pid, 'SIGTERM') // redis-server saves and exits on SIGTERM
  const deadline = Date.now() + 15_000
  while (Date.now() < deadline && pidAlive(pid)) await new Promise((r) => setTimeout(r, 100))
  if (pidAlive(pid)) process.kill(pid, 'SIGKILL')
  return true
}

// ---------------------------------------------------------------- Chroma

export function chromaPidFile(root: string): string {
  return join(root, 'run', 'chroma.pid')
}

export async function chromaHeartbeat(port: number): Promise<boolean> {
  const response = await fetch(`http://127.0.0.1:${port}/api/v2/heartbeat`, {signal: AbortSignal.timeout(2000)})
  return response.ok
}

export async function ensureChroma(
  root: string,
  port: number,
  note?: (text: string) => void,
): Promise<{started: boolean}> {
  const dataDir = join(root, 'chroma')
  mkdirSync(dataDir, {recursive: true})
  mkdirSync(join(root, 'run'), {recursive: true})
  mkdirSync(join(root, 'logs'), {recursive: true})
  const logFile = join(root, 'logs', 'chroma.log')
  const running = readPidFile(chromaPidFile(root))
  if (running) {
    // Ours still starting (a `sandbox up` killed while it waited for the heartbeat — kill point
    // sandbox.up.chroma-spawned): wait for it. Starting another on the same port and data dir lost
    // the first one: the pid file then named the second (which could not bind), `sandbox down`
    // never stopped the first, an orphan for good.
    const deadline = Date.now() + 240_000
    if (!(await chromaHeartbeat(port).catch(() => false)))
      note?.(`waiting for the Chroma server an earlier run started (pid ${running})`)
    while (pidAlive(running) && Date.now() < deadline) {
      if (await chromaHeartbeat(port).catch(() => false)) return {started: false}
      await new Promise((r) => setTimeout(r, 250))
    }
    if (pidAlive(running))
      throw new UnreachableError(
        `the sandbox's Chroma server (pid ${running}) runs but has not answered on port ${port} for 240 s`,
        {hint: `See ${logFile}; \`charge-ops sandbox down\` stops it.`},
      )
  }
  const fd = openSync(logFile, 'a')
  try {
    const {spawn} = await import('node:child_process')
    // its own process group: Chroma ignores SIGTERM, so `down` SIGKILLs the whole group
    const child = spawn(
      join(packageRoot(), 'scripts', 'chroma-server'),
      ['--path', dataDir, '--port', String(port), '--host', '127.0.0.1'],
      {detached: true, stdio: ['ignore', fd, fd]},
    )
    child.on('error', () => {})
    child.unref()
    writeFileSync(chromaPidFile(root), `${child.pid}\n`)
  } finally {
    closeSync(fd)
  }
  await faultPoint('sandbox.up.chroma-spawned', () => ({chroma: readPidFile(chromaPidFile(root))}))
  // the first run may download a newer glibc for Chroma's native part (see scripts/chroma-server)
  await waitFor(async () => chromaHeartbeat(port), 240_000, 'the Chroma server', logFile)
  return {started: true}
}

export async function stopChroma(root: string): Promise<boolean> {
  const pid = readPidFile(chromaPidFile(root))
  if (!pid) return false
  for (const target of [-pid, pid]) {
    try {
      process.kill(target, 'SIGKILL')
    } catch {
      // gone
    }
  }
  const deadline = Date.now() + 10_000
  while (Date.now() < deadline && pidAlive(pid)) await new Promise((r) => setTimeout(r, 100))
  rmSync(chromaPidFile(root), {force: true})
  return true
}
