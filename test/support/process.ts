/**
 * Child-process plumbing shared by the service helpers: running a command to completion,
 * tying a long-running child's life to this process, and last-chance cleanup when this
 * process exits or is interrupted, so that no test ever leaves a server behind.
 */
import {spawn, type ChildProcess, type SpawnOptions} from 'node:child_process'
import fs from 'node:fs'
import {findBinary} from './binaries.js'

export interface RunOptions {
  cwd?: string
  env?: NodeJS.ProcessEnv
  uid?: number
  gid?: number
  input?: string
  timeoutMs?: number
}

export interface RunResult {
  code: number | null
  signal: NodeJS.Signals | null
  stdout: string
  stderr: string
}

/** Runs `cmd args` to completion, capturing output; rejects on a non-zero exit with both streams. */
export async function run(cmd: string, args: string[], opts: RunOptions = {}): Promise<RunResult> {
  const result = await runUnchecked(cmd, args, opts)
  if (result.code !== 0) {
    const how = result.signal ? `signal ${result.signal}` : `exit code ${result.code}`
    throw new Error(
      `${cmd} ${args.join(' ')} failed with ${how}\n--- stdout\n${result.stdout.trim()}\n--- stderr\n${result.stderr.trim()}`,
    )
  }
  return result
}

/** Like run() but resolves whatever the exit code. */
export async function runUnchecked(cmd: string, args: string[], opts: RunOptions = {}): Promise<RunResult> {
  return new Promise<RunResult>((resolve, reject) => {
    const child = spawn(cmd, args, {
      cwd: opts.cwd,
      env: opts.env,
      uid: opts.uid,
      gid: opts.gid,
      stdio: [opts.input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'],
      timeout: opts.timeoutMs,
      killSignal: 'SIGKILL',
    })
    let stdout = ''
    let stderr = ''
    child.stdout!.setEncoding('utf8').on('data', (d: string) => (stdout += d))
    child.stderr!.setEncoding('utf8').on('data', (d: string) => (stderr += d))
    child.once('error', reject)
    child.once('close', (code, signal) => resolve({code, signal, stdout, stderr}))
    if (opts.input !== undefined) child.stdin!.end(opts.input)
  })
}

/** process.env without the variables a server or tool must not inherit (libpq's, AWS', Redis'). */
export function cleanEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {}
  for (const [key, value] of Object.entries(process.env)) {
    if (/^(PG|AWS_|REDIS)/.test(key) || key === 'DATABASE_URL') continue
    env[key] = value
  }
  return {...env, ...extra}
}

let setprivPath: string | null | undefined

/**
 * `[cmd, args]` rewritten so that the child gets SIGKILL when this process dies, even by
 * SIGKILL (prctl PR_SET_PDEATHSIG via util-linux `setpriv --pdeathsig`, kept across the
 * child's own exec()s). Falls back to the plain command where setpriv is missing.
 */
export function tiedToParent(cmd: string, args: string[]): [string, string[]] {
  if (setprivPath === undefined) setprivPath = process.platform === 'linux' ? (findBinary('setpriv') ?? null) : null
  if (!setprivPath) return [cmd, args]
  return [setprivPath, ['--pdeathsig', 'KILL', '--', cmd, ...args]]
}

/** spawn() of a long-running child that dies with this process (see tiedToParent). */
export function spawnTied(cmd: string, args: string[], opts: SpawnOptions) {
  const [c, a] = tiedToParent(cmd, args)
  return spawn(c, a, opts)
}

// ---------------------------------------------------------------- exit cleanup

type Cleanup = () => void
const cleanups = new Set<Cleanup>()
let installed = false

function runCleanups(): void {
  for (const fn of [...cleanups].reverse()) {
    cleanups.delete(fn)
    try {
      fn()
    } catch {
      // best effort: the process is going away
    }
  }
}

function onSignal(signal: NodeJS.Signals): void {
  runCleanups()
  process.off(signal, onSignal)
  // Nobody else handles it: die of the signal as we would have without our handler.
  if (process.listenerCount(signal) === 0) process.kill(process.pid, signal)
}

/**
 * Registers a synchronous cleanup run when this process exits (normally, by
 * process.exit, or on SIGINT / SIGTERM / SIGHUP). Returns the function that unregisters it.
 */
export function onProcessExit(fn: Cleanup): () => void {
  if (!installed) {
    installed = true
    process.on('exit', runCleanups)
    for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.on(signal, onSignal)
  }
  cleanups.add(fn)
  return () => {
    cleanups.delete(fn)
  }
}

/**
 * Resolves true once our child has exited and been reaped (its 'exit' event: by then
 * every thread is gone and its sockets are closed), false after timeoutMs.
 */
export async function waitForExit(child: ChildProcess, timeoutMs: number): Promise<boolean> {
  if (child.exitCode !== null || child.signalCode !== null) return true
  return new Promise<boolean>((resolve) => {
    const timer = setTimeout(() => {
      child.off('exit', onExit)
      resolve(false)
    }, timeoutMs)
    const onExit = () => {
      clearTimeout(timer)
      resolve(true)
    }
    child.once('exit', onExit)
  })
}

/**
 * Resolves when `pid` (not necessarily our child) no longer exists or is a zombie, false
 * after timeoutMs. For our own children prefer waitForExit(): a multi-threaded process's
 * leader can show as a zombie while its other threads (and its sockets) still go away.
 */
export async function waitForPidExit(pid: number, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs
  while (Date.now() < deadline) {
    if (!pidAlive(pid)) return true
    await sleep(50)
  }
  return !pidAlive(pid)
}

export function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0)
  } catch {
    return false
  }
  try {
    // a zombie (exited, not yet reaped) counts as gone
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8')
    return !/^\d+ \(.*\) Z/.test(stat)
  } catch {
    return true
  }
}

export const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms))

/** Polls `probe` until it returns true; throws `describe()` after timeoutMs. */
export async function waitUntil(
  probe: () => Promise<boolean>,
  opts: {timeoutMs: number; intervalMs?: number; what: string; abort?: () => string | undefined},
): Promise<void> {
  const deadline = Date.now() + opts.timeoutMs
  for (;;) {
    const aborted = opts.abort?.()
    if (aborted) throw new Error(`${opts.what}: ${aborted}`)
    if (await probe().catch(() => false)) return
    if (Date.now() > deadline) throw new Error(`${opts.what}: not ready after ${opts.timeoutMs} ms`)
    await sleep(opts.intervalMs ?? 100)
  }
}
