/**
 * Compression of backup streams: the zstd binary (multi-threaded, `-T<n>`) when present, gzip
 * (node:zlib, in-process) only as the fallback. PostgreSQL 15's pg_dump compresses only with
 * gzip, so dumps are taken with -Z0 and piped through zstd.
 */
import {cpus} from 'node:os'
import type {Readable, Transform} from 'node:stream'

import type {CompressionAlgorithm} from '../repository/manifest.js'

export interface CompressionSpec {
  algorithm: CompressionAlgorithm
  level: number
  /** zstd worker threads (0 in config = one per core) */
  threads: number
}

export const PART_SUFFIX: Record<CompressionAlgorithm, string> = {zstd: '.zst', gzip: '.gz', none: ''}

let zstdVersion: Promise<string | undefined> | undefined

/** The installed zstd's version, or undefined when the binary is missing. */
export function detectZstd(): Promise<string | undefined> {
  zstdVersion ??= (async () => {
    const {run} = await import('../core/proc/exec.js')
    try {
      const {stdout} = await run('zstd', ['--version'])
      return /v?(\d+\.\d+\.\d+)/.exec(stdout)?.[1] ?? stdout.trim()
    } catch {
      return undefined
    }
  })()
  return zstdVersion
}

/** What will really be used: the requested algorithm, or gzip when zstd is missing (with a warning). */
export async function resolveCompression(
  requested: {algorithm: 'zstd' | 'gzip'; level: number; threads: number},
  warn: (m: string) => void = () => {},
): Promise<CompressionSpec & {toolVersion?: string}> {
  const threads = requested.threads > 0 ? requested.threads : Math.max(1, cpus().length)
  if (requested.algorithm === 'zstd') {
    const version = await detectZstd()
    if (version) return {algorithm: 'zstd', level: requested.level, threads, toolVersion: version}
    warn('zstd is not installed; falling back to gzip (slower, larger). Install it: apt-get install -y zstd')
  }
  return {
    algorithm: 'gzip',
    level: Math.min(requested.level, 9),
    threads: 1,
    toolVersion: `node-zlib ${process.versions.zlib}`,
  }
}

export function zstdCompressArgs(spec: CompressionSpec): string[] {
  return ['-q', '-c', `-T${spec.threads}`, `-${spec.level}`]
}

/** An in-process gzip transform (fallback). */
export async function gzipTransform(level: number): Promise<Transform> {
  const {createGzip} = await import('node:zlib')
  return createGzip({level})
}

/**
 * Decompresses a stored stream. Returns a readable of plaintext and a promise that settles when
 * the decompressor has exited cleanly (rejects on corrupt input).
 */
export async function decompressStream(
  source: Readable,
  algorithm: CompressionAlgorithm,
): Promise<{stream: Readable; done: Promise<void>}> {
  if (algorithm === 'none') return {stream: source, done: Promise.resolve()}
  if (algorithm === 'gzip') {
    const {createGunzip} = await import('node:zlib')
    const gunzip = createGunzip()
    const done = new Promise<void>((resolve, reject) => {
      gunzip.on('end', resolve)
      gunzip.on('error', reject)
      source.on('error', reject)
    })
    source.pipe(gunzip)
    return {stream: gunzip, done}
  }
  const {startChild} = await import('./child.js')
  const child = await startChild('zstd', ['-d', '-q', '-c'], {stdin: 'pipe', stdout: 'pipe', purpose: 'decompressing'})
  source.on('error', (error) => child.stdin?.destroy(error))
  child.stdin!.on('error', () => {})
  source.pipe(child.stdin!)
  const done = child.done.then(() => undefined)
  return {stream: child.stdout!, done}
}
