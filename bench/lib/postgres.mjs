// A PostgreSQL cluster for benchmarks, in plain JS (no tsx): initdb + pg_ctl in a temp dir, or in a
// kept directory reused across runs (`dir`). As root the server runs as the `postgres` OS user.
// SCRAM auth on 127.0.0.1 only; the generated superuser password is stored in `<dir>/password`
// (0600) and reaches clients only through PGPASSWORD. A watchdog stops the server (and removes a
// temp dir) if the benchmark dies without cleaning up, even by SIGKILL.
import {execFileSync, spawn, spawnSync} from 'node:child_process'
import {randomBytes} from 'node:crypto'
import {
  chmodSync,
  chownSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  realpathSync,
  rmSync,
  writeFileSync,
  appendFileSync,
} from 'node:fs'
import {createServer} from 'node:net'
import {join, resolve} from 'node:path'
import pg from 'pg'

/** The binaries of the newest installed PostgreSQL (PG_BINDIR wins), Debian layout. */
export function pgBinDir() {
  if (process.env.PG_BINDIR) return process.env.PG_BINDIR
  const root = '/usr/lib/postgresql'
  const versions = existsSync(root)
    ? readdirSync(root)
        .filter((v) => existsSync(join(root, v, 'bin', 'initdb')))
        .sort((a, b) => Number(b) - Number(a))
    : []
  if (versions.length === 0)
    throw new Error(
      'PostgreSQL server binaries not found in /usr/lib/postgresql/*/bin. Install them: apt-get install -y postgresql-15 postgresql-client-15 (or set PG_BINDIR)',
    )
  return join(root, versions[0], 'bin')
}

function osUser() {
  if (process.getuid?.() !== 0) return undefined
  try {
    const [, , uid, gid] = execFileSync('getent', ['passwd', 'postgres'], {encoding: 'utf8'}).trim().split(':')
    return {name: 'postgres', uid: Number(uid), gid: Number(gid)}
  } catch {
    throw new Error(
      'running as root, PostgreSQL needs an unprivileged OS user `postgres` (apt-get install -y postgresql-15 creates it)',
    )
  }
}

export function freePort() {
  return new Promise((res, rej) => {
    const s = createServer()
    s.once('error', rej)
    s.listen(0, '127.0.0.1', () => {
      const {port} = s.address()
      s.close(() => res(port))
    })
  })
}

/**
 * Starts (or, when `dir` holds one, restarts) a cluster. conf: settings written to postgresql.conf
 * at initdb time. Returns {host, port, user, password, binDir, dataDir, env(), url(db), query(), stop()}.
 */
export async function startBenchCluster({dir, conf = {}, log = () => {}} = {}) {
  const binDir = pgBinDir()
  const user = osUser()
  const keep = Boolean(dir)
  const base = keep ? resolve(dir) : realpathSync(mkdtempSync('/tmp/charge-ops-bench-pg-'))
  mkdirSync(base, {recursive: true})
  chmodSync(base, 0o755)
  // a temp dir belongs to the server user, so that its watchdog (run as that user: pg_ctl refuses
  // root) can remove it; a kept dir stays the caller's
  if (user && !keep) chownSync(base, user.uid, user.gid)
  const asServer = {
    uid: user?.uid,
    gid: user?.gid,
    env: {PATH: process.env.PATH, LC_ALL: 'C.UTF-8', HOME: base},
    cwd: base,
  }
  if (user) {
    const r = spawnSync('test', ['-x', base], asServer)
    if (r.status !== 0)
      throw new Error(
        `${base}: the postgres OS user cannot reach this directory (a parent is not traversable); choose a --keep dir under /tmp or /var/tmp`,
      )
  }
  const pgDir = join(base, 'pg')
  const dataDir = join(pgDir, 'data')
  const logFile = join(pgDir, 'postgres.log')
  const passwordFile = join(base, 'password')
  const pgCtl = join(binDir, 'pg_ctl')
  const removeAll = () => {
    if (!keep) rmSync(base, {recursive: true, force: true, maxRetries: 3})
  }

  try {
    if (!existsSync(join(dataDir, 'PG_VERSION'))) {
      rmSync(pgDir, {recursive: true, force: true})
      mkdirSync(pgDir, {mode: 0o700})
      if (user) chownSync(pgDir, user.uid, user.gid)
      const password = randomBytes(18).toString('base64url')
      writeFileSync(passwordFile, `${password}\n`, {mode: 0o600})
      const pw = join(pgDir, '.pwfile')
      writeFileSync(pw, `${password}\n`, {mode: 0o600})
      if (user) chownSync(pw, user.uid, user.gid)
      log(`initdb ${dataDir}`)
      const r = spawnSync(
        join(binDir, 'initdb'),
        [
          '-D',
          dataDir,
          '-U',
          'postgres',
          '--auth=scram-sha-256',
          `--pwfile=${pw}`,
          '--encoding=UTF8',
          '--locale=C.UTF-8',
          '--no-sync',
          '--no-instructions',
        ],
        {...asServer, encoding: 'utf8'},
      )
      rmSync(pw, {force: true})
      if (r.status !== 0) throw new Error(`initdb failed: ${r.stderr || r.error}`)
      const lines = Object.entries({listen_addresses: '127.0.0.1', unix_socket_directories: pgDir, ...conf}).map(
        ([k, v]) => `${k} = '${String(v).replaceAll("'", "''")}'`,
      )
      appendFileSync(join(dataDir, 'postgresql.conf'), `\n# bench/lib/postgres.mjs\n${lines.join('\n')}\n`)
    } else {
      log(`reusing the cluster in ${dataDir}`)
      if (existsSync(join(dataDir, 'postmaster.pid')))
        spawnSync(pgCtl, ['stop', '-D', dataDir, '-m', 'fast', '-w', '-t', '60'], {...asServer, stdio: 'ignore'})
    }
    if (!existsSync(passwordFile)) throw new Error(`${passwordFile} is missing: remove ${pgDir} to start over`)
  } catch (error) {
    removeAll()
    throw error
  }
  const password = readFileSync(passwordFile, 'utf8').trim()

  let port
  for (let attempt = 1; ; attempt++) {
    port = await freePort()
    const r = spawnSync(pgCtl, ['start', '-D', dataDir, '-l', logFile, '-w', '-t', '120', '-o', `-p ${port}`], {
      ...asServer,
      encoding: 'utf8',
    })
    if (r.status === 0) break
    const tail = existsSync(logFile) ? readFileSync(logFile, 'utf8').slice(-3000) : ''
    if (attempt < 4 && /could not bind|already in use/i.test(tail)) continue
    removeAll()
    throw new Error(`pg_ctl start failed: ${r.stderr}\n--- ${logFile}\n${tail}`)
  }

  // Watchdog: blocks on a pipe from us; EOF without "cancel" = we died: stop the server (+ remove a temp dir).
  const watchdog = spawn(
    'bash',
    [
      '-c',
      'if IFS= read -r l && [ "$l" = cancel ]; then exit 0; fi; "$1" stop -D "$2" -m immediate -w -t 30 >/dev/null 2>&1; [ "$4" = keep ] || rm -rf -- "$3"',
      'charge-ops-bench-pg-watchdog',
      pgCtl,
      dataDir,
      base,
      keep ? 'keep' : 'remove',
    ],
    {stdio: ['pipe', 'ignore', 'ignore'], detached: true, uid: user?.uid, gid: user?.gid, cwd: '/', env: asServer.env},
  )
  watchdog.on('error', () => {})
  watchdog.unref()
  watchdog.stdin.unref?.()

  const host = '127.0.0.1'
  const connection = (db = 'postgres') => ({host, port, user: 'postgres', password, database: db})
  let stopped = false
  return {
    host,
    port,
    user: 'postgres',
    password,
    binDir,
    dataDir,
    baseDir: base,
    keep,
    env: () => ({PGHOST: host, PGPORT: String(port), PGUSER: 'postgres', PGPASSWORD: password}),
    url: (db = 'postgres') =>
      `postgresql://postgres:${encodeURIComponent(password)}@${host}:${port}/${encodeURIComponent(db)}`,
    async query(sql, db = 'postgres', params) {
      const c = new pg.Client(connection(db))
      await c.connect()
      try {
        const r = await c.query(sql, params)
        return (Array.isArray(r) ? r.at(-1) : r).rows
      } finally {
        await c.end()
      }
    },
    /** A connected pg.Client (the caller ends it). */
    async client(db = 'postgres') {
      const c = new pg.Client(connection(db))
      await c.connect()
      return c
    },
    async stop() {
      if (stopped) return
      stopped = true
      watchdog.stdin.end('cancel\n')
      const r = spawnSync(pgCtl, ['stop', '-D', dataDir, '-m', 'fast', '-w', '-t', '60'], {
        ...asServer,
        stdio: 'ignore',
      })
      if (r.status !== 0 && existsSync(join(dataDir, 'postmaster.pid')))
        spawnSync(pgCtl, ['stop', '-D', dataDir, '-m', 'immediate', '-w', '-t', '30'], {...asServer, stdio: 'ignore'})
      removeAll()
    },
  }
}
