/**
 * Streaming children for physical backup / restore pipelines (pg_basebackup | zstd, zstd -d | tar).
 * node:child_process directly: src/core/proc/exec.ts's `spawn` is async and so resolves to the finished
 * result, which cannot be piped while it runs.
 */
import {spawn as nodeSpawn, type ChildProcess, type SpawnOptions} from 'node:child_process'

import {boundToParent} from '../core/proc/child-lifetime.js'
import {ExternalCommandError, type ExitCodeValue} from '../errors.js'
import {notFound} from '../core/proc/exec.js'
import {redact} from '../output/redact.js'

export interface StreamingChild {
  child: ChildProcess
  /** resolves when the child exits successfully; rejects with a described error otherwise */
  done: Promise<void>
  stderr: () => string
}

export function startChild(
  file: string,
  args: string[],
  options: SpawnOptions & {failureExitCode?: ExitCodeValue; purpose?: string} = {},
): StreamingChild {
  const {failureExitCode, purpose, ...spawnOptions} = options
  // bound: the child dies with this process, even on SIGKILL (src/core/proc/child-lifetime.ts)
  const bound = boundToParent(file, args, {...process.env, ...spawnOptions.env})
  const child = bound
    ? nodeSpawn(bound.file, bound.args, {stdio: ['pipe', 'pipe', 'pipe'], ...spawnOptions})
    : nodeSpawn(file, args, {stdio: ['pipe', 'pipe', 'pipe'], ...spawnOptions})
  let text = ''
  child.stderr?.on('data', (chunk: Buffer) => {
    text += chunk.toString()
    if (text.length > 256 * 1024) text = text.slice(-128 * 1024)
  })
  child.stdin?.on('error', () => {})
  const done = new Promise<void>((resolve, reject) => {
    child.on('error', (error: NodeJS.ErrnoException) => reject(error.code === 'ENOENT' ? notFound(file) : error))
    child.on('close', (code, signal) => {
      if (code === 0) return resolve()
      const tail = redact(text.trim()).split('\n').slice(-8).join('\n')
      reject(
        new ExternalCommandError(
          `${file} ${args.join(' ')}`,
          `${purpose ? `${purpose}: ` : ''}${file} ${signal ? `was killed by ${signal}` : `exited with code ${code}`}${tail ? `\n${tail}` : ''}`,
          {
            exitCode: failureExitCode,
          },
        ),
      )
    })
  })
  done.catch(() => {})
  return {child, done, stderr: () => text}
}
