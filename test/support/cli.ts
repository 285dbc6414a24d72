/**
 * The built CLI (bin/run.js) as a user, cron or PostgreSQL runs it, and the named kill / pause
 * points of src/core/faults.ts: one runner instead of a `cli()` per test file, and one way to
 * assert that a point was really reached (its `<point>.reached` marker) instead of guessing.
 *
 *   const r = runCli(['backup', 'list', '--json'], {env})                       // sync, like spawnSync
 *   const {reached} = await runToKillPoint('backup.part.streaming', args, {env, faultDir})
 *   const paused = pauseAt('restore.files.space-checked', args, {env, faultDir})
 *   await paused.reached(); …; paused.resume(); const r = await paused.exited
 *
 * runToKillPoint / pauseAt spawn asynchronously: a server this test process runs (in-process S3)
 * keeps answering while the CLI works. runCli blocks (spawnSync) — use startCli with such a server.
 */
import {spawn, spawnSync, type ChildProcess} from 'node:child_process'
import fs from 'node:fs'
import path from 'node:path'

import {expect} from 'vitest'

export const ROOT = path.resolve(import.meta.dirname, '../..')
export const ENTRY = path.join(ROOT, 'bin/run.js')

export interface CliOptions {
  /** added to the environment (over process.env, or over the bare one with `bareEnv`); undefined removes */
  env?: Record<string, string | undefined>
  /** start from PATH, HOME=/tmp and NO_COLOR=1 only (as PostgreSQL's archive_command or cron run it), not process.env */
  bareEnv?: boolean
  /** default: the repository root */
  cwd?: string
  /** written to stdin (otherwise stdin is closed) */
  input?: string
  /** ms, then SIGKILL; default 180 000 */
  timeout?: number
  /** run as this OS user (e.g. a PgCluster's osUser: the server's user, as archive_command would) */
  user?: {uid: number; gid: number}
  /** through bin/run.js' shebang, as the installed `charge-ops` runs, not `node bin/run.js` */
  shebang?: boolean
}

export interface CliResult {
  code: number | null
  signal: NodeJS.Signals | null
  stdout: string
  stderr: string
  /** stdout + stderr, for assertion messages */
  out: string
}

/** The marker a fault point writes: the pid of the process that reached it, and the point's detail. */
export type Reached = {pid: number; children?: number[]} & Record<string, any>

export interface FaultOptions extends CliOptions {
  /** CHARGE_OPS_FAULT_DIR: where the `<point>.reached` marker (and `<point>.resume`) live */
  faultDir: string
}

function environment(opts: CliOptions): NodeJS.ProcessEnv {
  const base: NodeJS.ProcessEnv = opts.bareEnv
    ? {PATH: process.env.PATH, HOME: '/tmp', NO_COLOR: '1'}
    : {...process.env}
  const env = {...base, ...opts.env}
  for (const key of Object.keys(env)) if (env[key] === undefined) delete env[key]
  return env
}

function command(args: string[], opts: CliOptions): [string, string[]] {
  return opts.shebang ? [ENTRY, args] : [process.execPath, ['--', ENTRY, ...args]]
}

function spawnOptions(opts: CliOptions) {
  return {cwd: opts.cwd ?? ROOT, env: environment(opts), uid: opts.user?.uid, gid: opts.user?.gid}
}

/** Runs the CLI to completion (blocking this process) and returns its exit and output. */
export function runCli(args: string[], opts: CliOptions = {}): CliResult {
  const [cmd, argv] = command(args, opts)
  const r = spawnSync(cmd, argv, {
    ...spawnOptions(opts),
    input: opts.input,
    encoding: 'utf8',
    timeout: opts.timeout ?? 180_000,
    killSignal: 'SIGKILL',
    maxBuffer: 64 * 1024 * 1024,
  })
  if (r.error && r.status === null && r.signal === null) throw r.error
  return {
    code: r.status,
    signal: r.signal,
    stdout: r.stdout ?? '',
    stderr: r.stderr ?? '',
    out: (r.stdout ?? '') + (r.stderr ?? ''),
  }
}

export interface RunningCli {
  child: ChildProcess
  /** the output so far */
  stdout(): string
  stderr(): string
  /** resolves when the process has exited */
  exited: Promise<CliResult>
}

/** Starts the CLI without waiting (this process keeps running its own servers meanwhile). */
export function startCli(args: string[], opts: CliOptions = {}): RunningCli {
  const [cmd, argv] = command(args, opts)
  const child = spawn(cmd, argv, {
    ...spawnOptions(opts),
    stdio: [opts.input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'],
    timeout: opts.timeout ?? 180_000,
    killSignal: 'SIGKILL',
  })
  let stdout = ''
  let stderr = ''
  child.stdout!.setEncoding('utf8').on('data', (d: string) => (stdout += d))
  child.stderr!.setEncoding('utf8').on('data', (d: string) => (stderr += d))
  if (opts.input !== undefined) child.stdin!.end(opts.input)
  const exited = new Promise<CliResult>((resolve, reject) => {
    child.once('error', reject)
    child.once('close', (code, signal) => resolve({code, signal, stdout, stderr, out: stdout + stderr}))
  })
  return {child, stdout: () => stdout, stderr: () => stderr, exited}
}

const marker = (faultDir: string, point: string) => path.join(faultDir, `${point}.reached`)

/**
 * The environment that makes a process kill itself at `point` (for a CLI started some other way:
 * by a restore_command line, a prefetcher); a stale marker of an earlier run is removed first.
 */
export function killPointEnv(point: string, faultDir: string): Record<string, string> {
  fs.rmSync(marker(faultDir, point), {force: true})
  return {CHARGE_OPS_KILL_AT: point, CHARGE_OPS_FAULT_DIR: faultDir}
}

function parsed(file: string): Reached | undefined {
  try {
    return JSON.parse(fs.readFileSync(file, 'utf8'))
  } catch {
    return undefined
  }
}

/** Asserts that `point` was reached and returns its marker. */
export function readReached(faultDir: string, point: string, context = ''): Reached {
  expect(fs.existsSync(marker(faultDir, point)), `${point} was not reached${context ? `: ${context}` : ''}`).toBe(true)
  return JSON.parse(fs.readFileSync(marker(faultDir, point), 'utf8'))
}

/**
 * Runs the CLI with CHARGE_OPS_KILL_AT=point; resolves once it is dead. Asserts that the point was
 * reached and that the process died by its SIGKILL; returns the run plus the point's marker.
 */
export async function runToKillPoint(
  point: string,
  args: string[],
  opts: FaultOptions,
): Promise<CliResult & {reached: Reached}> {
  const env = {...opts.env, ...killPointEnv(point, opts.faultDir)}
  const result = await startCli(args, {...opts, env}).exited
  const reached = readReached(opts.faultDir, point, result.stderr)
  expect(result.signal, `${point}: ${result.out}`).toBe('SIGKILL')
  return {...result, reached}
}

export interface PausedCli extends RunningCli {
  /** resolves with the marker once the point is reached; rejects if the CLI exits first or after timeoutMs */
  reached(timeoutMs?: number): Promise<Reached>
  /** lets the paused process go on (creates `<point>.resume`) */
  resume(): void
}

/** Starts the CLI with CHARGE_OPS_PAUSE_AT=point: it stops there until resume() (to act at a known moment). */
export function pauseAt(point: string, args: string[], opts: FaultOptions): PausedCli {
  fs.rmSync(marker(opts.faultDir, point), {force: true})
  fs.rmSync(path.join(opts.faultDir, `${point}.resume`), {force: true})
  const running = startCli(args, {
    ...opts,
    env: {...opts.env, CHARGE_OPS_PAUSE_AT: point, CHARGE_OPS_FAULT_DIR: opts.faultDir},
  })
  let exited = false
  void running.exited.then(
    () => (exited = true),
    () => (exited = true),
  )
  return {
    ...running,
    async reached(timeoutMs = 120_000) {
      const deadline = Date.now() + timeoutMs
      // the marker is created, then written: wait for a whole one
      for (;;) {
        const found = parsed(marker(opts.faultDir, point))
        if (found) return found
        if (exited)
          throw new Error(`${point} not reached: the CLI exited first\n${running.stdout()}${running.stderr()}`)
        if (Date.now() > deadline)
          throw new Error(`${point} not reached after ${timeoutMs} ms\n${running.stdout()}${running.stderr()}`)
        await new Promise((r) => setTimeout(r, 25))
      }
    },
    resume() {
      fs.writeFileSync(path.join(opts.faultDir, `${point}.resume`), '')
    },
  }
}
