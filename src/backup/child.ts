/**
 * Streaming children for backup pipelines (pg_dump → zstd → repository, tar → zstd …).
 *
 * Why not src/core/proc/exec.ts' `spawn`: it is an async function returning execa's ResultPromise, a
 * thenable, so awaiting it waits for the child to exit; and execa tracks every stream it is given,
 * so handing one child's pipe to another as a raw file descriptor (the kernel pipe that keeps
 * pg_dump's output out of this process) makes it report a premature close. This is a small
 * node:child_process wrapper instead; failures still go through exec.ts' `toCommandError` /
 * `notFound` (redacted command, stderr tail, install hints). Secrets travel in `env` only.
 */
import {spawn as spawnChild, type ChildProcess, type StdioNull, type StdioPipe} from 'node:child_process'
import type {Readable, Stream, Writable} from 'node:stream'

import {boundToParent} from '../core/proc/child-lifetime.js'
import type {ExitCodeValue} from '../errors.js'

export interface StreamingChild {
  readonly child: ChildProcess
  readonly pid?: number
  readonly stdin?: Writable
  readonly stdout?: Readable
  /** resolves when the child exited 0 (or with an allowed code), rejects with a described error */
  readonly done: Promise<{exitCode: number; stderr: string}>
  kill(signal?: NodeJS.Signals): void
}

export interface StartChildOptions {
  stdin?: StdioPipe | StdioNull | Stream
  stdout?: StdioPipe | StdioNull | Stream | number
  stderr?: StdioPipe | StdioNull
  /** merged over process.env */
  env?: Record<string, string>
  cwd?: string
  purpose?: string
  /** exit codes that count as success (GNU tar 1 = "file changed as we read it") */
  allowExitCodes?: number[]
  failureExitCode?: ExitCodeValue
}

const STDERR_KEEP = 64 * 1024

export async function startChild(
  file: string,
  args: string[],
  options: StartChildOptions = {},
): Promise<StreamingChild> {
  const {toCommandError, notFound} = await import('../core/proc/exec.js')
  const env = options.env ? {...process.env, ...options.env} : process.env
  // bound: the child dies with this process, even when it is killed with SIGKILL (src/core/proc/child-lifetime.ts)
  const bound = boundToParent(file, args, env)
  if (!bound) throw notFound(file)
  const child = spawnChild(bound.file, bound.args, {
    stdio: [options.stdin ?? 'ignore', options.stdout ?? 'pipe', options.stderr ?? 'pipe'],
    env,
    cwd: options.cwd,
  })
  let stderr = ''
  child.stderr?.setEncoding('utf8')
  child.stderr?.on('data', (text: string) => {
    stderr = (stderr + text).slice(-STDERR_KEEP)
  })
  const done = new Promise<{exitCode: number; stderr: string}>((resolve, reject) => {
    child.once('error', (error: NodeJS.ErrnoException) => {
      reject(
        error.code === 'ENOENT'
          ? notFound(file)
          : toCommandError(error, file, args, {purpose: options.purpose, failureExitCode: options.failureExitCode}),
      )
    })
    child.once('close', (code, signal) => {
      if (code === 0 || (code !== null && (options.allowExitCodes ?? []).includes(code)))
        return resolve({exitCode: code, stderr})
      reject(
        toCommandError({exitCode: code ?? undefined, signal: signal ?? undefined, stderr}, file, args, {
          purpose: options.purpose,
          failureExitCode: options.failureExitCode,
        }),
      )
    })
  })
  done.catch(() => {})
  return {
    child,
    pid: child.pid,
    stdin: child.stdin ?? undefined,
    stdout: child.stdout ?? undefined,
    done,
    kill: (signal: NodeJS.Signals = 'SIGTERM') => {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal)
    },
  }
}

/**
 * A child that reads `source` on its stdin and whose stdout is not wanted (tar extracting, zstd
 * writing a file itself, pg_restore): `fed` settles when the source has been written into it. The
 * stdin's EPIPE is not an error of its own: when the child stops reading early, its exit (`done`)
 * says why. Callers settle `done` and `fed` in the order their error reporting needs.
 */
export async function startFedChild(
  file: string,
  args: string[],
  source: Readable,
  options: Omit<StartChildOptions, 'stdin' | 'stdout'>,
): Promise<StreamingChild & {fed: Promise<void>}> {
  const child = await startChild(file, args, {stderr: 'pipe', ...options, stdin: 'pipe', stdout: 'ignore'})
  child.stdin!.on('error', () => {})
  const {pipeline} = await import('node:stream/promises')
  return {...child, fed: pipeline(source, child.stdin!)}
}

/** Bytes a child has read so far (Linux /proc/<pid>/io rchar), for progress on native pipes. */
export async function bytesRead(pid: number | undefined): Promise<number | undefined> {
  if (!pid) return undefined
  try {
    const {readFile} = await import('node:fs/promises')
    const text = await readFile(`/proc/${pid}/io`, 'utf8')
    const m = /^rchar:\s*(\d+)/m.exec(text)
    return m ? Number(m[1]) : undefined
  } catch {
    return undefined
  }
}
