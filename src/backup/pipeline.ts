/**
 * producer child (pg_dump, tar) → compressor → [encryption] → repository, never through a temp
 * file and never buffered in memory.
 *
 * With zstd the producer's stdout is handed to zstd as its stdin file descriptor (a kernel pipe
 * between the two children, no copy through this process); progress is read from zstd's
 * /proc/<pid>/io. Into a local repository without encryption zstd writes the part's temp file
 * itself and this process only hashes the file behind it (LocalStorage.putProduced): at 1.1 GB
 * `backup db` went from 1.64× to 0.92× raw pg_dump on 2 cores (docs/backup.md, Performance).
 * With encryption or S3 the compressed bytes flow through this process; with the gzip fallback
 * through node:zlib here.
 */
import {faultPoint} from '../core/faults.js'
import type {BackupPart} from '../repository/manifest.js'
import {bytesRead, startChild, type StreamingChild} from './child.js'
import {zstdCompressArgs} from './compression.js'
import type {LocalStorage} from '../repository/local-storage.js'
import {partKey} from '../repository/manifest.js'
import {describeStorageError, storePart, type BackupContext} from './context.js'

export interface Producer {
  file: string
  args: string[]
  env?: Record<string, string>
  cwd?: string
  purpose: string
  /** exit codes that are warnings, not failures (GNU tar: 1 = "file changed as we read it") */
  allowExitCodes?: number[]
}

export interface StreamedPart {
  part: BackupPart
  /** uncompressed bytes the producer wrote */
  rawBytes?: number
  producerStderr: string
}

export async function streamProducerToPart(
  ctx: BackupContext,
  id: string,
  name: string,
  producer: Producer,
  meta: Omit<BackupPart, 'name' | 'bytes' | 'sha256' | 'compression'>,
  options: {label: string; totalBytes?: number; onStarted?: (child: StreamingChild) => void} = {label: name},
): Promise<StreamedPart> {
  const progress = ctx.progress(options.label, options.totalBytes)
  const children: StreamingChild[] = []
  const killAll = () => {
    for (const c of children) c.kill('SIGKILL')
  }
  let timer: NodeJS.Timeout | undefined
  const direct = directTarget(ctx)
  if (direct) return streamProducerToFile(ctx, direct, id, name, producer, meta, options, progress)
  try {
    let source
    let rawCounter: () => Promise<number | undefined>
    if (ctx.compression.algorithm === 'zstd') {
      const zstd = await startChild('zstd', zstdCompressArgs(ctx.compression), {
        stdin: 'pipe',
        stdout: 'pipe',
        stderr: 'pipe',
        purpose: 'compressing with zstd',
      })
      children.push(zstd)
      const prod = await startChild(producer.file, producer.args, {
        stdin: 'ignore',
        stdout: zstd.stdin,
        env: producer.env,
        cwd: producer.cwd,
        purpose: producer.purpose,
        allowExitCodes: producer.allowExitCodes,
      })
      children.push(prod)
      // The producer writes into its own copy of the pipe. Ours is closed only once the producer
      // has exited (closing it earlier can shut the socket down for both), so that zstd then sees EOF.
      prod.child.once('exit', () => zstd.stdin!.destroy())
      options.onStarted?.(prod)
      source = zstd.stdout!
      let last = 0
      rawCounter = async () => bytesRead(zstd.pid)
      timer = setInterval(async () => {
        const n = await rawCounter()
        if (n !== undefined && n > last) {
          progress.add(n - last)
          last = n
        }
      }, 500)
      timer.unref()
    } else {
      const {gzipTransform} = await import('./compression.js')
      const prod = await startChild(producer.file, producer.args, {
        stdin: 'ignore',
        stdout: 'pipe',
        env: producer.env,
        cwd: producer.cwd,
        purpose: producer.purpose,
        allowExitCodes: producer.allowExitCodes,
      })
      children.push(prod)
      options.onStarted?.(prod)
      const gzip = await gzipTransform(ctx.compression.level)
      let raw = 0
      prod.stdout!.on('data', (chunk: Buffer) => {
        raw += chunk.length
        progress.add(chunk.length)
      })
      prod.stdout!.on('error', (error) => gzip.destroy(error))
      source = prod.stdout!.pipe(gzip)
      rawCounter = async () => raw
    }
    const stored = storePart(ctx, id, name, source, meta)
    // Whichever fails first (a child or the upload) kills the rest so nothing hangs; its error
    // is the one reported (the others are consequences of the kill).
    let firstError: unknown
    const watched = [...children.map((c) => c.done), stored].map((p) =>
      p.catch((error) => {
        if (firstError === undefined) firstError = error
        killAll()
        source.destroy()
        throw error
      }),
    )
    const results = await Promise.allSettled(watched)
    // A repository that failed (no space, not writable, unreachable) explains the children's broken
    // pipes, even when their exit was noticed first.
    const storeResult = results.at(-1)!
    if (storeResult.status === 'rejected' && (storeResult.reason as {exitCode?: number})?.exitCode === 5)
      throw storeResult.reason
    if (firstError !== undefined) throw firstError
    const part = (results.at(-1) as PromiseFulfilledResult<BackupPart>).value
    const prodDone = (results[children.length - 1] as PromiseFulfilledResult<{exitCode: number; stderr: string}>).value
    const rawBytes = await rawCounter()
    if (rawBytes !== undefined) progress.add(Math.max(0, rawBytes - progress.bytes))
    progress.done(`stored ${name}`)
    return {part, rawBytes, producerStderr: prodDone.stderr}
  } catch (error) {
    killAll()
    throw error
  } finally {
    if (timer) clearInterval(timer)
  }
}

/** A local repository without encryption: zstd can write the part file itself. */
function directTarget(ctx: BackupContext): LocalStorage | undefined {
  const storage = ctx.storage as Partial<LocalStorage>
  if (
    ctx.compression.algorithm !== 'zstd' ||
    ctx.encryption ||
    ctx.storage.kind !== 'local' ||
    typeof storage.putProduced !== 'function'
  )
    return undefined
  return ctx.storage as LocalStorage
}

const NO_SPACE = /No space left on device|Disk quota exceeded/i

/**
 * producer → zstd → the repository's temp file, both hops kernel pipes / file writes: this process
 * only hashes the file behind zstd (LocalStorage.putProduced), so on a busy machine nothing in the
 * data path waits for Node's event loop.
 */
async function streamProducerToFile(
  ctx: BackupContext,
  storage: LocalStorage,
  id: string,
  name: string,
  producer: Producer,
  meta: Omit<BackupPart, 'name' | 'bytes' | 'sha256' | 'compression'>,
  options: {totalBytes?: number; onStarted?: (child: StreamingChild) => void},
  progress: ReturnType<BackupContext['progress']>,
): Promise<StreamedPart> {
  let zstdPid: number | undefined
  let last = 0
  const timer = setInterval(async () => {
    const n = await bytesRead(zstdPid)
    if (n !== undefined && n > last) {
      progress.add(n - last)
      last = n
    }
  }, 500)
  timer.unref()
  let producerStderr = ''
  try {
    const stored = await storage.putProduced(
      partKey(ctx.stack, id, name),
      async (fd, signal) => {
        const children: StreamingChild[] = []
        const killAll = () => {
          for (const c of children) c.kill('SIGKILL')
        }
        signal.addEventListener('abort', killAll, {once: true})
        try {
          const zstd = await startChild('zstd', [...zstdCompressArgs(ctx.compression), '--no-sparse'], {
            stdin: 'pipe',
            stdout: fd,
            stderr: 'pipe',
            purpose: 'compressing with zstd',
          })
          children.push(zstd)
          zstdPid = zstd.pid
          const prod = await startChild(producer.file, producer.args, {
            stdin: 'ignore',
            stdout: zstd.stdin,
            env: producer.env,
            cwd: producer.cwd,
            purpose: producer.purpose,
            allowExitCodes: producer.allowExitCodes,
          })
          children.push(prod)
          prod.child.once('exit', () => zstd.stdin!.destroy())
          options.onStarted?.(prod)
          await faultPoint('backup.part.streaming', () => ({part: name, children: [zstd.pid, prod.pid]}))
          // Whichever child fails first kills the other; its error is the one reported.
          let firstError: unknown
          const results = await Promise.allSettled(
            children.map((c) =>
              c.done.catch((error) => {
                firstError ??= error
                killAll()
                throw error
              }),
            ),
          )
          const zstdResult = results[0]
          // zstd writing into a full repository: report it as the repository's failure (exit 5).
          if (zstdResult.status === 'rejected' && NO_SPACE.test(String((zstdResult.reason as Error)?.message))) {
            throw Object.assign(new Error(`no space left in the repository`), {
              code: 'ENOSPC',
              cause: zstdResult.reason,
            })
          }
          if (firstError !== undefined) throw firstError
          producerStderr = (results[1] as PromiseFulfilledResult<{stderr: string}>).value.stderr
        } catch (error) {
          killAll()
          throw error
        }
      },
      {ifNotExists: true},
    )
    const rawBytes = await bytesRead(zstdPid)
    if (rawBytes !== undefined) progress.add(Math.max(0, rawBytes - progress.bytes))
    progress.done(`stored ${name}`)
    const part: BackupPart = {
      ...meta,
      name,
      bytes: stored.bytes,
      sha256: stored.sha256,
      compression: 'zstd',
      encryption: null,
    }
    return {part, rawBytes, producerStderr}
  } catch (error) {
    throw describeStorageError(error, name)
  } finally {
    clearInterval(timer)
  }
}
