/**
 * Runs the bundled service (API + workers) as background processes of the stack:
 *
 *   <stateDir>/run/api.pid, worker-N.pid      the pid (plain text) — plus api.json … with start time and port
 *   <stateDir>/logs/app.log, error.log        the service's structured logs (rotated daily, 30 days)
 *   <stateDir>/logs/api.out, worker-N.out     stdout/stderr of each process (start-up crashes land here)
 *
 * Settings reach the processes as environment variables (never argv). `startService` refuses to
 * start a second copy; `stopService` sends SIGTERM (the worker drains its current job, the API
 * finishes in-flight requests) and SIGKILLs what is left after the timeout.
 *
 * Stable API for other areas (restore, upgrade, sandbox): startService, stopService, serviceStatus.
 */
import {closeSync, existsSync, mkdirSync, openSync, readFileSync, readdirSync, realpathSync, rmSync} from 'node:fs'
import {dirname, join, resolve} from 'node:path'
import {fileURLToPath} from 'node:url'

import type {Settings} from '../config/settings.js'
import {writeFileAtomicSync} from '../core/fs/atomic.js'
import {requireSetting} from '../config/settings.js'
import {CliError, ExitCode, LockHeldError, PendingMigrationsError} from '../errors.js'
import type {Logger} from '../output/logger.js'

export type ServiceProcessName = 'api' | `worker-${number}`

export interface ServiceProcess {
  name: ServiceProcessName
  pid: number | null
  running: boolean
  startedAt?: string
  uptimeSeconds?: number
  pidFile: string
  outFile: string
}

export interface ServiceHealth {
  url: string
  httpStatus: number | null
  status: 'ok' | 'fail' | 'unreachable'
  failing: string[]
  version?: string
  maintenance?: boolean
  error?: string
}

export interface ServiceStatus {
  stack: string
  stateDir: string
  running: boolean
  processes: ServiceProcess[]
  health?: ServiceHealth
  logDir: string
}

export interface StartOptions {
  /** number of workers (default: charge-ops.yaml service.workers) */
  workers?: number
  /** how long to wait for the API to answer /health (default 30 s) */
  timeoutMs?: number
  logger?: Logger
  /** extra environment for the processes (e.g. EMBEDDINGS_URL) */
  env?: Record<string, string>
  /**
   * a release directory holding service/src/{server,worker}.js (charge-ops upgrade's
   * `<stateDir>/releases/<version>`); default: `<stateDir>/releases/current` when it exists, else
   * the service bundled with charge-ops
   */
  releaseRoot?: string
}

export interface StopOptions {
  /** grace period before SIGKILL (default 30 s) */
  timeoutMs?: number
  logger?: Logger
}

export interface StoppedProcess {
  name: string
  pid: number
  how: 'graceful' | 'forced'
}

interface PidInfo {
  pid: number
  startedAt: string
  port?: number
  host?: string
}

export const runDir = (settings: Pick<Settings, 'stateDir'>) => join(settings.stateDir, 'run')
export const logDir = (settings: Pick<Settings, 'stateDir'>) => join(settings.stateDir, 'logs')

/** The project root (holds dist/ and service/), from this module's location in src/ or dist/src/. */
export function packageRoot(): string {
  const here = dirname(fileURLToPath(import.meta.url))
  return here.includes(`${join('dist', 'src', 'service')}`) ? resolve(here, '../../..') : resolve(here, '../..')
}

/** node arguments that run a service entry: the compiled JS when present, else the TS source under tsx. */
export function entryCommand(entry: 'server' | 'worker'): string[] {
  const root = packageRoot()
  const compiled = join(root, 'dist', 'service', 'src', `${entry}.js`)
  if (existsSync(compiled) && !import.meta.url.endsWith('.ts')) return [compiled]
  const source = join(root, 'service', 'src', `${entry}.ts`)
  if (existsSync(source) && existsSync(join(root, 'node_modules', 'tsx'))) return ['--import', 'tsx', source]
  if (existsSync(compiled)) return [compiled]
  throw new CliError('SERVICE_NOT_BUILT', ExitCode.usage, `the service entry ${compiled} is missing`, {
    hint: 'Run `npm run build` first.',
  })
}

/**
 * The release the local target runs (set by `charge-ops upgrade`): the real path behind
 * `<stateDir>/releases/current`, or undefined when there is none (the bundled service runs).
 */
export function currentReleaseRoot(settings: Pick<Settings, 'stateDir'>): string | undefined {
  const link = join(settings.stateDir, 'releases', 'current')
  if (!existsSync(join(link, 'service', 'src', 'server.js'))) return undefined
  return realpathSync(link)
}

/** The environment the service processes get: the backend .env values plus charge-ops' paths. */
export function serviceEnv(settings: Settings, extra: Record<string, string> = {}): Record<string, string> {
  const env: Record<string, string> = {}
  for (const [key, value] of Object.entries(settings.backendEnv))
    if (typeof value === 'string' && value !== '') env[key] = value
  env.DATABASE_URL = requireSetting(
    settings.databaseUrl,
    'DATABASE_URL',
    'Set DATABASE_URL in the backend .env (or run `charge-ops sandbox up` for a private stack).',
  )
  env.REDIS_URL = requireSetting(settings.redisUrl, 'REDIS_URL', 'Set REDIS_URL in the backend .env.')
  env.SECRET_KEY = requireSetting(
    settings.backendEnv.SECRET_KEY,
    'SECRET_KEY',
    'Set SECRET_KEY in the backend .env (e.g. `openssl rand -base64 48`).',
  )
  if (settings.chromaUrl) env.CHROMA_URL = settings.chromaUrl
  env.UPLOADS_DIR = settings.uploadsDir ?? join(settings.baseDir, 'uploads')
  env.LOG_DIR = logDir(settings)
  env.CHARGE_OPS_STATE_DIR = settings.stateDir
  return {...env, ...extra}
}

function apiUrl(settings: Settings, info?: PidInfo): string {
  const host = info?.host ?? settings.backendEnv.HOST ?? '127.0.0.1'
  const port = info?.port ?? Number(settings.backendEnv.PORT ?? 8000)
  return `http://${host === '0.0.0.0' || host === '::' ? '127.0.0.1' : host}:${port}`
}

/** True when `pid` is alive and is one of our service entries (guards against pid reuse). */
function isServiceProcess(pid: number): boolean {
  try {
    process.kill(pid, 0)
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EPERM') return false
  }
  try {
    const cmdline = readFileSync(`/proc/${pid}/cmdline`, 'utf8')
    return /service[/\\]src[/\\](server|worker)\.(js|ts)/.test(cmdline)
  } catch {
    return process.platform !== 'linux'
  }
}

function readPid(file: string): PidInfo | undefined {
  try {
    const text = readFileSync(file, 'utf8').trim()
    const pid = Number(text)
    if (!Number.isInteger(pid) || pid <= 0) return undefined
    let meta: Partial<PidInfo> = {}
    try {
      meta = JSON.parse(readFileSync(file.replace(/\.pid$/, '.json'), 'utf8')) as PidInfo
    } catch {
      // metadata is optional
    }
    return {startedAt: '', ...meta, pid}
  } catch {
    return undefined
  }
}

function removePid(file: string): void {
  rmSync(file, {force: true})
  rmSync(file.replace(/\.pid$/, '.json'), {force: true})
}

function listPidFiles(settings: Pick<Settings, 'stateDir'>): string[] {
  const dir = runDir(settings)
  if (!existsSync(dir)) return []
  return readdirSync(dir)
    .filter((f) => /^(api|worker-\d+)\.pid$/.test(f))
    .sort()
    .map((f) => join(dir, f))
}

function describe(file: string, settings: Pick<Settings, 'stateDir'>): ServiceProcess {
  const name = file
    .split('/')
    .pop()!
    .replace(/\.pid$/, '') as ServiceProcessName
  const info = readPid(file)
  const running = info ? isServiceProcess(info.pid) : false
  const uptimeSeconds =
    running && info?.startedAt ? Math.round((Date.now() - Date.parse(info.startedAt)) / 1000) : undefined
  return {
    name,
    pid: info?.pid ?? null,
    running,
    startedAt: info?.startedAt || undefined,
    uptimeSeconds,
    pidFile: file,
    outFile: join(logDir(settings), `${name}.out`),
  }
}

async function fetchHealth(url: string, timeoutMs = 3000): Promise<ServiceHealth> {
  try {
    const response = await fetch(`${url}/health`, {signal: AbortSignal.timeout(timeoutMs)})
    const body = (await response.json()) as {
      status: 'ok' | 'fail'
      failing?: string[]
      version?: string
      maintenance?: boolean
    }
    return {
      url,
      httpStatus: response.status,
      status: body.status,
      failing: body.failing ?? [],
      version: body.version,
      maintenance: body.maintenance,
    }
  } catch (error) {
    return {url, httpStatus: null, status: 'unreachable', failing: [], error: (error as Error).message}
  }
}

export async function serviceStatus(settings: Settings): Promise<ServiceStatus> {
  const processes = listPidFiles(settings).map((f) => describe(f, settings))
  const api = processes.find((p) => p.name === 'api')
  const health = api?.running ? await fetchHealth(apiUrl(settings, readPid(api.pidFile))) : undefined
  return {
    stack: settings.stack,
    stateDir: settings.stateDir,
    running: processes.length > 0 && processes.every((p) => p.running),
    processes,
    health,
    logDir: logDir(settings),
  }
}

function tail(file: string, lines = 15): string {
  try {
    return readFileSync(file, 'utf8').trim().split('\n').slice(-lines).join('\n')
  } catch {
    return ''
  }
}

async function launch(
  settings: Settings,
  name: ServiceProcessName,
  entry: 'server' | 'worker',
  env: Record<string, string>,
  releaseRoot?: string,
): Promise<PidInfo> {
  const outFile = join(logDir(settings), `${name}.out`)
  const fd = openSync(outFile, 'a', 0o640)
  try {
    // node:child_process rather than src/core/proc/exec.ts: this child is a daemon that must outlive us
    // (detached, own process group, unref'd), which the awaited execa runner cannot express.
    const {spawn} = await import('node:child_process')
    const argv = releaseRoot ? [join(releaseRoot, 'service', 'src', `${entry}.js`)] : entryCommand(entry)
    const child = spawn(process.execPath, argv, {
      cwd: releaseRoot ?? packageRoot(),
      env: {...process.env, ...env},
      detached: true,
      stdio: ['ignore', fd, fd],
    })
    child.on('error', () => {}) // seen through the pid check below
    child.unref()
    const pid = child.pid
    if (!pid)
      throw new CliError('SERVICE_START_FAILED', ExitCode.findings, `could not start the ${name} process`, {
        hint: `See ${outFile}.`,
      })
    const info: PidInfo = {
      pid,
      startedAt: new Date().toISOString(),
      ...(entry === 'server' ? {port: Number(env.PORT ?? 8000), host: env.HOST ?? '127.0.0.1'} : {}),
    }
    writeFileAtomicSync(join(runDir(settings), `${name}.json`), JSON.stringify(info) + '\n', {mode: 0o644})
    writeFileAtomicSync(join(runDir(settings), `${name}.pid`), `${pid}\n`, {mode: 0o644})
    return info
  } finally {
    closeSync(fd)
  }
}

function startFailure(name: string, outFile: string): CliError {
  const output = tail(outFile)
  if (/not migrated/.test(output)) {
    return new PendingMigrationsError(`the ${name} did not start: the database schema is not migrated`, {
      hint: 'Run `charge-ops migrate up`, then start the service again.',
    })
  }
  return new CliError(
    'SERVICE_START_FAILED',
    ExitCode.unreachable,
    `the ${name} exited during start-up:\n${output || '(no output)'}`,
    {hint: `See ${outFile} and \`charge-ops service logs --error\`.`},
  )
}

export async function startService(settings: Settings, options: StartOptions = {}): Promise<ServiceStatus> {
  const before = listPidFiles(settings).map((f) => describe(f, settings))
  const alive = before.filter((p) => p.running)
  if (alive.length > 0) {
    throw new LockHeldError(
      `the service of stack "${settings.stack}" is already running (${alive.map((p) => `${p.name} pid ${p.pid}`).join(', ')})`,
      {
        hint: 'See `charge-ops service status`; stop it first with `charge-ops service stop`.',
      },
    )
  }
  for (const stale of before) removePid(stale.pidFile)
  mkdirSync(runDir(settings), {recursive: true})
  mkdirSync(logDir(settings), {recursive: true})
  const env = serviceEnv(settings, options.env)
  mkdirSync(env.UPLOADS_DIR!, {recursive: true})
  const workers = options.workers ?? settings.yaml.service.workers
  const log = options.logger
  const releaseRoot = options.releaseRoot ?? currentReleaseRoot(settings)

  log?.info(`starting the API on ${apiUrl(settings)}`)
  const apiInfo = await launch(settings, 'api', 'server', env, releaseRoot)
  const outFile = join(logDir(settings), 'api.out')
  const deadline = Date.now() + (options.timeoutMs ?? 30_000)
  for (;;) {
    if (!isServiceProcess(apiInfo.pid)) {
      removePid(join(runDir(settings), 'api.pid'))
      throw startFailure('API', outFile)
    }
    const health = await fetchHealth(apiUrl(settings, apiInfo), 1000)
    if (health.httpStatus !== null) break
    if (Date.now() > deadline) {
      await stopService(settings, {timeoutMs: 5000})
      throw new CliError(
        'SERVICE_START_FAILED',
        ExitCode.unreachable,
        `the API did not answer ${apiUrl(settings, apiInfo)}/health within ${(options.timeoutMs ?? 30_000) / 1000} s`,
        {hint: `See ${outFile}.`},
      )
    }
    await new Promise((r) => setTimeout(r, 250))
  }
  const workerInfos: Array<[string, PidInfo]> = []
  for (let i = 1; i <= workers; i++) {
    const name = `worker-${i}` as const
    log?.info(`starting ${name}`)
    workerInfos.push([
      name,
      await launch(settings, name, 'worker', {...env, WORKER_ID: `${settings.stack}-${name}`}, releaseRoot),
    ])
  }
  // A worker that cannot start (schema, Redis URL) dies within a second: report it now, not later.
  await new Promise((r) => setTimeout(r, 1000))
  for (const [name, info] of workerInfos) {
    if (!isServiceProcess(info.pid)) {
      const failure = startFailure(name, join(logDir(settings), `${name}.out`))
      await stopService(settings, {timeoutMs: 5000})
      throw failure
    }
  }
  return serviceStatus(settings)
}

async function waitGone(pid: number, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs
  while (Date.now() < deadline) {
    if (!isServiceProcess(pid)) return true
    await new Promise((r) => setTimeout(r, 100))
  }
  return !isServiceProcess(pid)
}

export async function stopService(settings: Settings, options: StopOptions = {}): Promise<{stopped: StoppedProcess[]}> {
  const timeoutMs = options.timeoutMs ?? 30_000
  const processes = listPidFiles(settings).map((f) => describe(f, settings))
  const stopped = await Promise.all(
    processes.map(async (p): Promise<StoppedProcess | undefined> => {
      if (!p.running || p.pid === null) {
        removePid(p.pidFile)
        return undefined
      }
      const pid = p.pid
      options.logger?.info(
        `stopping ${p.name} (pid ${pid})${p.name.startsWith('worker') ? ': draining the current job' : ''}`,
      )
      try {
        process.kill(pid, 'SIGTERM')
      } catch {
        // exited meanwhile
      }
      let how: StoppedProcess['how'] = 'graceful'
      if (!(await waitGone(pid, timeoutMs))) {
        options.logger?.warn(`${p.name} (pid ${pid}) did not stop within ${timeoutMs / 1000} s: killing it`)
        how = 'forced'
        for (const target of [-pid, pid]) {
          try {
            process.kill(target, 'SIGKILL')
          } catch {
            // not a group leader / already gone
          }
        }
        await waitGone(pid, 5000)
      }
      removePid(p.pidFile)
      return {name: p.name, pid, how}
    }),
  )
  return {stopped: stopped.filter((s): s is StoppedProcess => s !== undefined)}
}
