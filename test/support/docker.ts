/**
 * A private Docker engine for the container tests (DESIGN §7): Debian's dockerd with its own
 * --data-root, --exec-root, pidfile and unix socket under a cache folder — never the machine's
 * /var/run/docker.sock, never a daemon someone else runs — plus Compose v2 from Debian trixie's
 * docker-compose package (fetched with `apt-get download`, as scripts/chroma-server fetches
 * trixie's glibc) and Debian base images made with debootstrap + docker import (Docker Hub is not
 * reachable here).
 *
 * The data root is kept between runs: base images and built images (and their layers) are the
 * cache that makes a second run not rebuild what has not changed. The daemon runs with
 * --bridge=none --iptables=false --ip-forward=false: it changes no host firewall rule or sysctl;
 * compose's own bridge network joins the containers, published ports go through docker-proxy, and
 * image builds use the host's network (`images build` passes --network host).
 *
 * One run at a time per cache folder (a flock on <cache>/lock). dockerd gets SIGTERM when the test
 * process dies (PR_SET_PDEATHSIG through setpriv) or in stop(): on SIGTERM it stops every container
 * and its containerd; what a killed run left (containers, networks, volumes) is removed when the
 * next run takes the lock. Its own containerd namespace keeps it apart from a containerd the
 * machine runs. The docker CLI is docker.io's (/usr/bin/docker), as on CI.
 */
import {execFileSync, spawn, type ChildProcess} from 'node:child_process'
import {
  closeSync,
  existsSync,
  mkdirSync,
  openSync,
  readFileSync,
  readdirSync,
  renameSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs'
import {homedir} from 'node:os'
import {join} from 'node:path'

import {findBinary} from './binaries.js'
import {onProcessExit, tiedToParent, waitForExit} from './process.js'

export const DOCKER_INSTALL_HINT = 'apt-get install -y docker.io debootstrap (scripts/install-system-deps does it)'

export interface DockerEngine {
  /** unix:///…/docker.sock */
  host: string
  /** DOCKER_HOST, DOCKER_CONFIG (the compose plugin), DOCKER_BUILDKIT=0 */
  env: Record<string, string>
  cacheDir: string
  /** `docker …` against this daemon */
  docker(args: string[], opts?: {cwd?: string; timeoutMs?: number}): string
  /** seconds spent on each part of start(): daemon, compose, base images */
  timings: Record<string, number>
  stop(): Promise<void>
}

/** Where the docker CLI finds plugins system-wide (scripts/install-system-deps uses the first). */
const SYSTEM_COMPOSE = [
  '/usr/local/lib/docker/cli-plugins/docker-compose',
  '/usr/libexec/docker/cli-plugins/docker-compose',
  '/usr/lib/docker/cli-plugins/docker-compose',
]

/**
 * The docker CLI of the Debian package that gave dockerd (/usr/bin/docker next to /usr/sbin/dockerd):
 * a newer CLI earlier on PATH (e.g. /usr/local/bin/docker) would make the run differ from CI's.
 * Linked into <cache>/bin, which goes first on the PATH of everything the tests run.
 */
function pinDockerCli(cacheDir: string): string {
  const packaged =
    ['/usr/bin/docker'].find((p) => existsSync(p)) ??
    findBinary('docker') ??
    fail(`the docker CLI is not installed: ${DOCKER_INSTALL_HINT}`)
  const bin = join(cacheDir, 'bin')
  mkdirSync(bin, {recursive: true})
  rmSync(join(bin, 'docker'), {force: true})
  symlinkSync(packaged, join(bin, 'docker'))
  return bin
}

export const BASE_IMAGES = {bookworm: 'charge-ops/debian:bookworm', trixie: 'charge-ops/debian:trixie'} as const

function fail(message: string): never {
  throw new Error(`docker test engine: ${message}`)
}

/** The Debian mirror of the host's apt sources (not the security one). */
function debianMirror(): string {
  const texts: string[] = []
  for (const dir of ['/etc/apt/sources.list.d'])
    if (existsSync(dir)) for (const f of readdirSync(dir)) texts.push(readFileSync(join(dir, f), 'utf8'))
  if (existsSync('/etc/apt/sources.list')) texts.push(readFileSync('/etc/apt/sources.list', 'utf8'))
  for (const text of texts) {
    for (const m of text.matchAll(/(?:^URIs:\s*|^deb\s+(?:\[[^\]]*\]\s+)?)(\S+)/gm))
      if (!m[1]!.includes('security')) return m[1]!
  }
  return 'http://deb.debian.org/debian'
}

/** apt options for a private, unprivileged-state apt run against Debian trixie. */
function aptTrixie(work: string): string[] {
  mkdirSync(join(work, 'lists', 'partial'), {recursive: true})
  mkdirSync(join(work, 'archives', 'partial'), {recursive: true})
  mkdirSync(join(work, 'parts'), {recursive: true})
  writeFileSync(
    join(work, 'parts', 'trixie.sources'),
    `Types: deb\nURIs: ${debianMirror()}\nSuites: trixie\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n`,
  )
  return [
    '-o',
    'Dir::Etc::SourceList=/dev/null',
    '-o',
    `Dir::Etc::SourceParts=${join(work, 'parts')}`,
    '-o',
    `Dir::State::Lists=${join(work, 'lists')}`,
    '-o',
    `Dir::Cache::Archives=${join(work, 'archives')}`,
    '-o',
    'Dir::Etc::Preferences=/dev/null',
    '-o',
    `Dir::Etc::PreferencesParts=${join(work, 'parts')}`,
    '-o',
    'APT::Get::List-Cleanup=0',
    '-o',
    `APT::Sandbox::User=${process.getuid?.() === 0 ? 'root' : (process.env.USER ?? 'root')}`,
    '-o',
    'Debug::NoLocking=1',
  ]
}

/** Compose v2 as a docker CLI plugin in <cache>/docker-config/cli-plugins (from trixie's docker-compose .deb). */
function ensureCompose(cacheDir: string): string {
  const configDir = join(cacheDir, 'docker-config')
  const plugin = join(configDir, 'cli-plugins', 'docker-compose')
  // scripts/install-system-deps installs the same binary where every docker CLI looks for plugins
  if (existsSync(plugin) || SYSTEM_COMPOSE.some((p) => existsSync(p))) return configDir
  const work = join(cacheDir, `compose-fetch.${process.pid}`)
  rmSync(work, {recursive: true, force: true})
  try {
    const opts = aptTrixie(work)
    execFileSync('apt-get', [...opts, '-qq', 'update'], {stdio: ['ignore', 'ignore', 'pipe']})
    execFileSync('apt-get', [...opts, '-qq', 'download', 'docker-compose'], {
      cwd: work,
      stdio: ['ignore', 'ignore', 'pipe'],
    })
    const deb =
      readdirSync(work).find((f) => /^docker-compose_.*\.deb$/.test(f)) ??
      fail('apt-get download docker-compose produced no .deb')
    execFileSync('dpkg-deb', ['-x', join(work, deb), join(work, 'tree')])
    const binary = join(work, 'tree', 'usr', 'libexec', 'docker', 'cli-plugins', 'docker-compose')
    if (!existsSync(binary)) fail(`${deb} has no usr/libexec/docker/cli-plugins/docker-compose`)
    mkdirSync(join(configDir, 'cli-plugins'), {recursive: true})
    renameSync(binary, plugin)
  } catch (error) {
    fail(
      `could not fetch Compose v2 (Debian trixie's docker-compose package): ${(error as {stderr?: Buffer}).stderr?.toString() || (error as Error).message}`,
    )
  } finally {
    rmSync(work, {recursive: true, force: true})
  }
  return configDir
}

/** debootstrap --variant=minbase <suite> + docker import, when the image is missing. */
function ensureBaseImage(engine: Pick<DockerEngine, 'docker' | 'cacheDir'>, suite: 'bookworm' | 'trixie'): boolean {
  const ref = BASE_IMAGES[suite]
  try {
    engine.docker(['image', 'inspect', '--format', '{{.Id}}', ref])
    return false
  } catch {
    // build it below
  }
  const debootstrap =
    findBinary('debootstrap', ['/usr/sbin', '/sbin']) ?? fail(`debootstrap not found: ${DOCKER_INSTALL_HINT}`)
  const root = join(engine.cacheDir, `rootfs-${suite}.${process.pid}`)
  rmSync(root, {recursive: true, force: true})
  try {
    execFileSync(debootstrap, ['--variant=minbase', suite, root, debianMirror()], {
      stdio: ['ignore', 'ignore', 'pipe'],
      timeout: 15 * 60_000,
    })
    // The host's apt options (e.g. a snapshot mirror's Check-Valid-Until false) so that apt-get in the builds behaves as here.
    const confDir = '/etc/apt/apt.conf.d'
    if (existsSync(confDir)) {
      for (const f of readdirSync(confDir)) {
        const text = readFileSync(join(confDir, f), 'utf8')
        if (/^\s*Acquire::(Check-Valid-Until|Check-Date|http::Proxy|https::Proxy)/im.test(text))
          writeFileSync(join(root, 'etc', 'apt', 'apt.conf.d', f), text)
      }
    }
    execFileSync('sh', ['-c', `tar -C '${root}' -c . | docker import - '${ref}'`], {
      env: {...process.env, ...(engine as DockerEngine).env},
      stdio: ['ignore', 'ignore', 'pipe'],
    })
  } catch (error) {
    fail(
      `could not make the base image ${ref} (debootstrap --variant=minbase ${suite} + docker import): ${(error as {stderr?: Buffer}).stderr?.toString().slice(-2000) || (error as Error).message}`,
    )
  } finally {
    rmSync(root, {recursive: true, force: true})
  }
  return true
}

/**
 * Mounts dockerd leaves under its roots when it is gone (the host network namespace it binds at
 * <exec-root>/netns/default survives even a clean shutdown; a SIGKILLed daemon leaves more):
 * unmounted deepest first, so that the cache folder can be removed and nothing stays mounted.
 */
function unmountLeftovers(roots: string[]): void {
  if (!existsSync('/proc/mounts')) return
  const points = readFileSync('/proc/mounts', 'utf8')
    .split('\n')
    .map((l) => l.split(' ')[1]?.replace(/\\040/g, ' '))
    .filter((p): p is string => Boolean(p) && roots.some((r) => p === r || p!.startsWith(`${r}/`)))
  for (const point of points.sort((a, b) => b.length - a.length)) {
    try {
      execFileSync('umount', ['-l', point], {stdio: 'ignore'})
    } catch {
      // already gone
    }
  }
}

async function pingable(env: Record<string, string>): Promise<boolean> {
  try {
    execFileSync('docker', ['version', '--format', '{{.Server.Version}}'], {
      env: {...process.env, ...env},
      stdio: ['ignore', 'pipe', 'ignore'],
      timeout: 5000,
    })
    return true
  } catch {
    return false
  }
}

/**
 * Starts the private daemon (or fails saying why: never a silent skip), fetches Compose and makes
 * the base images when they are missing.
 */
export async function startDocker(options: {cacheDir?: string; startTimeoutMs?: number} = {}): Promise<DockerEngine> {
  const cacheDir =
    options.cacheDir ??
    process.env.CHARGE_OPS_TEST_DOCKER_DIR ??
    join(process.env.XDG_CACHE_HOME ?? join(homedir(), '.cache'), 'charge-ops', 'test-docker')
  const dockerd = findBinary('dockerd', ['/usr/sbin', '/usr/bin']) ?? fail(`dockerd not found: ${DOCKER_INSTALL_HINT}`)
  if (process.getuid?.() !== 0)
    fail('dockerd needs root (these tests run as root in CI; rootless Docker is not set up here)')
  mkdirSync(cacheDir, {recursive: true})
  const timings: Record<string, number> = {}
  const clock = (name: string, started: number) => (timings[name] = Math.round((Date.now() - started) / 100) / 10)

  // One run per cache folder: a `flock` child holds the lock until stop() closes its stdin (or this process dies).
  const flock = findBinary('flock') ?? fail('flock not found: apt-get install -y util-linux')
  const [lockCmd, lockArgs] = tiedToParent(flock, [
    '--nonblock',
    '--exclusive',
    join(cacheDir, 'lock'),
    '-c',
    'echo locked; exec cat >/dev/null',
  ])
  const holder = spawn(lockCmd, lockArgs, {stdio: ['pipe', 'pipe', 'ignore']})
  const locked = await new Promise<boolean>((resolve) => {
    holder.stdout!.once('data', () => resolve(true))
    holder.once('exit', () => resolve(false))
  })
  const releaseLock = () => holder.stdin!.end()
  if (!locked)
    fail(
      `another test run is using the engine in ${cacheDir} (its lock is held); wait for it, or set CHARGE_OPS_TEST_DOCKER_DIR to another folder`,
    )

  const dataRoot = join(cacheDir, 'data')
  const execRoot = join(cacheDir, 'exec')
  const pidFile = join(cacheDir, 'dockerd.pid')
  const socket = join(cacheDir, 'docker.sock')
  const logFile = join(cacheDir, 'dockerd.log')
  const host = `unix://${socket}`
  // A daemon left by a run that was SIGKILLed (pdeathsig took dockerd but not always its shims): the lock is ours now, so it is stale.
  if (existsSync(pidFile)) {
    const stale = Number(readFileSync(pidFile, 'utf8').trim())
    if (stale > 0) {
      try {
        process.kill(stale, 'SIGKILL')
      } catch {
        // gone
      }
    }
    rmSync(pidFile, {force: true})
  }
  unmountLeftovers([execRoot, dataRoot])
  rmSync(socket, {force: true})
  mkdirSync(dataRoot, {recursive: true})
  mkdirSync(execRoot, {recursive: true})

  const started = Date.now()
  const args = [
    '--data-root',
    dataRoot,
    '--exec-root',
    execRoot,
    '--pidfile',
    pidFile,
    '-H',
    host,
    '--bridge=none',
    '--iptables=false',
    '--ip-forward=false',
    '--ip-masq=false',
    '--storage-driver=overlay2',
    '--log-level=warn',
    // its own containerd namespaces: when the machine runs containerd (/run/containerd), dockerd
    // uses it instead of starting one, and must not share the "moby" namespace of the machine's Docker
    '--containerd-namespace',
    'charge-ops-test',
    '--containerd-plugins-namespace',
    'charge-ops-test-plugins',
  ]
  // SIGTERM (not SIGKILL) when the test process dies, however it dies: dockerd then stops every
  // container and its containerd, as in stop(); a SIGKILLed dockerd would leave the containers running.
  const setpriv = findBinary('setpriv')
  const [cmd, cmdArgs]: [string, string[]] = setpriv
    ? [setpriv, ['--pdeathsig', 'TERM', '--', dockerd, ...args]]
    : tiedToParent(dockerd, args)
  const out = openSync(logFile, 'w')
  const child: ChildProcess = spawn(cmd, cmdArgs, {stdio: ['ignore', out, out], detached: true})
  closeSync(out)
  let exited = false
  child.on('exit', () => (exited = true))
  const env: Record<string, string> = {
    DOCKER_HOST: host,
    DOCKER_BUILDKIT: '0',
    PATH: `${pinDockerCli(cacheDir)}:${process.env.PATH ?? '/usr/bin:/bin'}`,
  }
  const signal = (sig: NodeJS.Signals) => () => {
    try {
      process.kill(-child.pid!, sig)
    } catch {
      // already gone
    }
  }
  const kill = signal('SIGKILL')
  // this process exiting on a signal: SIGTERM, so that dockerd stops the containers (see above)
  const unregister = onProcessExit(signal('SIGTERM'))
  const deadline = Date.now() + (options.startTimeoutMs ?? 60_000)
  while (!(await pingable(env))) {
    if (exited || Date.now() > deadline) {
      kill()
      unregister()
      releaseLock()
      const log = existsSync(logFile) ? readFileSync(logFile, 'utf8').split('\n').slice(-15).join('\n') : '(no log)'
      fail(
        `dockerd ${exited ? `exited (code ${child.exitCode})` : 'did not answer within the start timeout'}; its log (${logFile}):\n${log}`,
      )
    }
    await new Promise((r) => setTimeout(r, 250))
  }
  clock('daemon', started)

  const composeStarted = Date.now()
  env.DOCKER_CONFIG = ensureCompose(cacheDir)
  clock('compose', composeStarted)

  const docker = (dockerArgs: string[], opts: {cwd?: string; timeoutMs?: number} = {}) =>
    execFileSync(join(cacheDir, 'bin', 'docker'), dockerArgs, {
      env: {...process.env, ...env},
      cwd: opts.cwd,
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'pipe'],
      timeout: opts.timeoutMs ?? 120_000,
      maxBuffer: 64 * 1024 * 1024,
    })
  const engine: DockerEngine = {
    host,
    env,
    cacheDir,
    docker,
    timings,
    async stop() {
      if (!exited) {
        child.kill('SIGTERM')
        if (!(await waitForExit(child, 45_000))) kill()
        await waitForExit(child, 10_000)
      }
      unmountLeftovers([execRoot, dataRoot])
      unregister()
      releaseLock()
    },
  }
  // What a run that died (SIGKILL, a crash before afterAll) left: its containers were stopped by
  // dockerd's shutdown, its networks and volumes are still recorded in the data root. The lock says
  // no other run uses this engine, so everything but the images (the cache) goes.
  try {
    const stale = docker(['ps', '-aq']).trim()
    if (stale) docker(['rm', '-f', '-v', ...stale.split('\n')])
    docker(['network', 'prune', '-f'])
    docker(['volume', 'prune', '-f'])
  } catch (error) {
    await engine.stop()
    fail(`could not clear what an earlier run left: ${(error as {stderr?: string}).stderr || (error as Error).message}`)
  }
  const baseStarted = Date.now()
  try {
    for (const suite of ['bookworm', 'trixie'] as const) ensureBaseImage(engine, suite)
  } catch (error) {
    await engine.stop()
    throw error
  }
  clock('baseImages', baseStarted)
  return engine
}
