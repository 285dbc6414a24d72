/**
 * The one runner for child processes. Wraps execa so that:
 *  - a missing binary is an UnreachableError (exit 5) that says how to install it;
 *  - a failing command is an ExternalCommandError whose message holds the redacted command and the
 *    last lines of its stderr, never a secret;
 *  - secrets go to children through `env`, never argv (argv is world-readable in /proc and ps).
 */
import type {Options} from 'execa'

import {boundToParent} from './child-lifetime.js'
import {ExternalCommandError, UnreachableError, type ExitCodeValue} from '../../errors.js'
import {redact} from '../../output/redact.js'

/** How to install each outside program charge-ops drives, for "not found" errors. */
export const INSTALL_HINTS: Record<string, string> = {
  pg_dump: 'apt-get install -y postgresql-client-15',
  pg_restore: 'apt-get install -y postgresql-client-15',
  psql: 'apt-get install -y postgresql-client-15',
  pg_basebackup: 'apt-get install -y postgresql-client-15',
  pg_ctl: 'apt-get install -y postgresql-15',
  pg_waldump: 'apt-get install -y postgresql-15',
  initdb: 'apt-get install -y postgresql-15',
  postgres: 'apt-get install -y postgresql-15',
  'redis-server': 'apt-get install -y redis-server',
  'redis-cli': 'apt-get install -y redis-tools',
  zstd: 'apt-get install -y zstd',
  tar: 'apt-get install -y tar',
  'wal-g': 'download wal-g from its GitHub releases (not packaged for Debian) and put it on PATH',
  docker: 'install Docker Engine and the compose plugin',
  kubectl: 'install kubectl (https://kubernetes.io/docs/tasks/tools/)',
}

export interface RunOptions extends Pick<Options, 'cwd' | 'env' | 'timeout' | 'input' | 'uid' | 'gid'> {
  /** exit code to use when the command fails (default 1) */
  failureExitCode?: ExitCodeValue
  /** what the command was for, used in the error message */
  purpose?: string
  /** exit codes that still count as a result (pg_waldump exits 1 at the end of the WAL it is given) */
  okExitCodes?: readonly number[]
}

export interface RunResult {
  stdout: string
  stderr: string
  exitCode: number
}

function displayCommand(file: string, args: readonly string[]): string {
  return redact([file, ...args].map((a) => (/\s/.test(a) ? JSON.stringify(a) : a)).join(' '))
}

function tail(text: string, lines = 8): string {
  return text.trim().split('\n').slice(-lines).join('\n')
}

export function notFound(file: string): UnreachableError {
  const base = file.split('/').pop() ?? file
  return new UnreachableError(`${base} was not found on PATH`, {
    code: 'TOOL_NOT_FOUND',
    hint: INSTALL_HINTS[base] ? `Install it: ${INSTALL_HINTS[base]}` : `Install ${base} or put it on PATH.`,
  })
}

/** Runs a command to completion and returns its output; throws a described error on failure. */
export async function run(file: string, args: readonly string[], options: RunOptions = {}): Promise<RunResult> {
  const {execa} = await import('execa')
  const {failureExitCode, purpose, okExitCodes, ...execaOptions} = options
  // bound: the child dies with this process, even when it is killed with SIGKILL (src/core/proc/child-lifetime.ts)
  const bound = boundToParent(file, args, {...process.env, ...execaOptions.env})
  if (!bound) throw notFound(file)
  try {
    const result = await execa(bound.file, bound.args, {
      ...execaOptions,
      extendEnv: true,
      reject: true,
      stripFinalNewline: true,
    })
    return {stdout: String(result.stdout ?? ''), stderr: String(result.stderr ?? ''), exitCode: result.exitCode ?? 0}
  } catch (error) {
    const e = error as {exitCode?: number; signal?: string; timedOut?: boolean; stdout?: unknown; stderr?: unknown}
    if (okExitCodes && e.exitCode !== undefined && !e.signal && !e.timedOut && okExitCodes.includes(e.exitCode)) {
      return {stdout: String(e.stdout ?? ''), stderr: String(e.stderr ?? ''), exitCode: e.exitCode}
    }
    throw toCommandError(error, file, args, {failureExitCode, purpose})
  }
}

export function toCommandError(
  error: unknown,
  file: string,
  args: readonly string[],
  options: {failureExitCode?: ExitCodeValue; purpose?: string} = {},
): Error {
  const err = error as {
    code?: string
    exitCode?: number
    stderr?: unknown
    signal?: string
    timedOut?: boolean
    isCanceled?: boolean
  }
  if (err?.code === 'ENOENT') return notFound(file)
  const command = displayCommand(file, args)
  const stderr = typeof err?.stderr === 'string' ? tail(redact(err.stderr)) : ''
  const how = err?.timedOut
    ? 'timed out'
    : err?.signal
      ? `was killed by ${err.signal}`
      : `exited with code ${err?.exitCode ?? '?'}`
  const what = options.purpose ? `${options.purpose}: ` : ''
  return new ExternalCommandError(command, `${what}${command.split(' ')[0]} ${how}${stderr ? `\n${stderr}` : ''}`, {
    exitCode: options.failureExitCode,
    data: {command},
    cause: error,
  })
}
