/**
 * A buffer through an outside filter (zstd on one WAL segment or one block): bytes in on stdin,
 * bytes out of stdout. Small and hot (one per segment), so plain `spawn` rather than execa — but
 * bound to this process like every other child (child-lifetime.ts): a `wal push` killed by
 * PostgreSQL's archiver mid-segment leaves no zstd behind.
 */
import {spawn} from 'node:child_process'

import {boundToParent} from './child-lifetime.js'

export function filterBuffer(file: string, args: readonly string[], input: Buffer): Promise<Buffer> {
  const bound = boundToParent(file, args)
  // the same shape as spawn's own ENOENT, so callers that treat "not installed" apart still can
  if (!bound) return Promise.reject(Object.assign(new Error(`${file} was not found on PATH`), {code: 'ENOENT'}))
  return new Promise((resolve, reject) => {
    const child = spawn(bound.file, bound.args, {stdio: ['pipe', 'pipe', 'pipe']})
    const out: Buffer[] = []
    const err: Buffer[] = []
    child.stdout.on('data', (c: Buffer) => out.push(c))
    child.stderr.on('data', (c: Buffer) => err.push(c))
    child.on('error', reject)
    // a filter that exits early (corrupt input) closes its stdin: the failure is its exit status
    child.stdin.on('error', () => {})
    child.on('close', (code, signal) => {
      if (code === 0) resolve(Buffer.concat(out))
      else
        reject(
          new Error(
            `${file} ${args.join(' ')} failed (${signal ?? `exit ${code}`}): ${Buffer.concat(err).toString().trim()}`,
          ),
        )
    })
    child.stdin.end(input)
  })
}
