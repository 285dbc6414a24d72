/**
 * An S3-protocol server on loopback for tests: the npm package s3rver (works with the
 * v3 SDK, multipart included), on a free port with its own temp directory.
 *
 * In-process by default; `startS3({process: true})` runs it as a child process
 * (test/support/s3-server.mjs) that a test can kill() mid-upload.
 */
import {spawn, type ChildProcess} from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import {fileURLToPath} from 'node:url'
import type {S3ClientConfig} from '@aws-sdk/client-s3'
import S3rver from 's3rver'
import {onProcessExit, waitForExit} from './process.js'

export interface StartS3Options {
  /** Buckets to create (default: ['charge-ops-test']); `bucket` is the first. */
  buckets?: string[]
  /** Run s3rver in a child process (killable mid-request) instead of in this process. */
  process?: boolean
  /** Storage directory (kept by stop() when given; default a temp dir that stop() removes). */
  dir?: string
}

export interface S3Server {
  /** http://127.0.0.1:PORT */
  endpoint: string
  host: string
  port: number
  region: string
  accessKeyId: string
  secretAccessKey: string
  /** The first bucket. */
  bucket: string
  buckets: string[]
  /** s3rver's storage directory. */
  dir: string
  /**
   * AWS_ENDPOINT_URL_S3, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_REGION, plus
   * AWS_REQUEST_CHECKSUM_CALCULATION / AWS_RESPONSE_CHECKSUM_VALIDATION = WHEN_REQUIRED
   * (s3rver predates the SDK's default CRC32 trailers).
   */
  env: Record<string, string>
  /** Options for `new S3Client(...)`: endpoint, region, credentials, forcePathStyle, checksum modes. */
  clientConfig(): S3ClientConfig
  /** An object of the first bucket as text, straight from the server; undefined when there is none (404). */
  readObject(key: string): Promise<string | undefined>
  /** Child-process mode only: the server's pid. */
  pid?: number
  /** Child-process mode only: send a signal (default SIGKILL, a crash) and wait for the exit. */
  kill(signal?: NodeJS.Signals): Promise<void>
  /** Closes the server and removes its temp dir. Idempotent. */
  stop(): Promise<void>
}

const HOST = '127.0.0.1'
const REGION = 'us-east-1'
const ACCESS_KEY = 'S3RVER'
const SECRET_KEY = 'S3RVER'

/** Path of the child-process entry (test/support/s3-server.mjs). */
export const S3_SERVER_ENTRY = fileURLToPath(new URL('./s3-server.mjs', import.meta.url))

function describe(port: number, buckets: string[], dir: string): Omit<S3Server, 'kill' | 'stop' | 'pid'> {
  const endpoint = `http://${HOST}:${port}`
  const clientConfig = (): S3ClientConfig => ({
    endpoint,
    region: REGION,
    forcePathStyle: true,
    credentials: {accessKeyId: ACCESS_KEY, secretAccessKey: SECRET_KEY},
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
  })
  return {
    endpoint,
    host: HOST,
    port,
    region: REGION,
    accessKeyId: ACCESS_KEY,
    secretAccessKey: SECRET_KEY,
    bucket: buckets[0]!,
    buckets,
    dir,
    env: {
      AWS_ENDPOINT_URL_S3: endpoint,
      AWS_ACCESS_KEY_ID: ACCESS_KEY,
      AWS_SECRET_ACCESS_KEY: SECRET_KEY,
      AWS_REGION: REGION,
      AWS_REQUEST_CHECKSUM_CALCULATION: 'WHEN_REQUIRED',
      AWS_RESPONSE_CHECKSUM_VALIDATION: 'WHEN_REQUIRED',
    },
    clientConfig,
    async readObject(key) {
      const {S3Client, GetObjectCommand} = await import('@aws-sdk/client-s3')
      const client = new S3Client(clientConfig())
      try {
        const out = await client.send(new GetObjectCommand({Bucket: buckets[0], Key: key}))
        return await out.Body!.transformToString()
      } catch (error) {
        if ((error as {$metadata?: {httpStatusCode?: number}}).$metadata?.httpStatusCode === 404) return undefined
        throw error
      } finally {
        client.destroy()
      }
    },
  }
}

export async function startS3(opts: StartS3Options = {}): Promise<S3Server> {
  const buckets = opts.buckets && opts.buckets.length > 0 ? opts.buckets : ['charge-ops-test']
  const workDir = opts.dir ? undefined : fs.mkdtempSync(path.join(os.tmpdir(), 'charge-ops-s3-'))
  const dir = opts.dir ? path.resolve(opts.dir) : workDir!
  fs.mkdirSync(dir, {recursive: true})
  const removeDir = () => {
    if (workDir) fs.rmSync(workDir, {recursive: true, force: true, maxRetries: 3})
  }

  if (!opts.process) {
    const server = new S3rver({
      address: HOST,
      port: 0,
      directory: dir,
      silent: true,
      configureBuckets: buckets.map((name) => ({name})),
    })
    let port: number
    try {
      ;({port} = await server.run())
    } catch (error) {
      removeDir()
      throw error
    }
    const unregister = onProcessExit(removeDir)
    let stopped = false
    return {
      ...describe(port, buckets, dir),
      async kill() {
        throw new Error('startS3: kill() needs startS3({process: true})')
      },
      async stop() {
        if (stopped) return
        stopped = true
        // close() waits for keep-alive sockets; SDK agents keep them open, so cap the wait
        await Promise.race([server.close().catch(() => {}), new Promise((r) => setTimeout(r, 2000).unref())])
        unregister()
        removeDir()
      },
    }
  }

  // ---- child-process mode
  const child: ChildProcess = spawn(
    process.execPath,
    [
      S3_SERVER_ENTRY,
      '--dir',
      dir,
      '--port',
      '0',
      '--address',
      HOST,
      '--buckets',
      buckets.join(','),
      '--exit-on-stdin-eof',
    ],
    {stdio: ['pipe', 'pipe', 'pipe']},
  )
  const pid = child.pid!
  const unregister = onProcessExit(() => {
    try {
      process.kill(pid, 'SIGKILL')
    } catch {
      // gone
    }
    removeDir()
  })
  let stderr = ''
  child.stderr!.setEncoding('utf8').on('data', (d: string) => (stderr += d))

  let port: number
  try {
    port = await new Promise<number>((resolve, reject) => {
      let out = ''
      const timer = setTimeout(() => reject(new Error('s3-server: no port after 20 s')), 20_000)
      child.stdout!.setEncoding('utf8').on('data', (d: string) => {
        out += d
        const line = out.split('\n')[0]
        if (out.includes('\n')) {
          clearTimeout(timer)
          try {
            resolve(Number(JSON.parse(line!).port))
          } catch (error) {
            reject(error)
          }
        }
      })
      child.once('error', reject)
      child.once('exit', (code, signal) => {
        clearTimeout(timer)
        reject(new Error(`s3-server exited (${signal ?? `code ${code}`}) before listening`))
      })
    })
  } catch (error) {
    child.kill('SIGKILL')
    await waitForExit(child, 10_000)
    unregister()
    removeDir()
    throw new Error(`${(error as Error).message}\n--- stderr\n${stderr.slice(-4000)}`)
  }

  const kill = async (signal: NodeJS.Signals = 'SIGKILL') => {
    child.kill(signal)
    await waitForExit(child, 10_000)
  }
  let stopped = false
  return {
    ...describe(port, buckets, dir),
    pid,
    kill,
    async stop() {
      if (stopped) return
      stopped = true
      child.kill('SIGTERM')
      if (!(await waitForExit(child, 5000))) await kill('SIGKILL')
      child.stdin?.destroy()
      unregister()
      removeDir()
    },
  }
}
