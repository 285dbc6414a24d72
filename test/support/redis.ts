/**
 * A throwaway redis-server for tests: free loopback port, its own temp dir, no
 * persistence unless asked (--save ''), in the foreground as a child of this process
 * (and killed with it, see process.ts). The password is written to a 0600 config file,
 * never put on the command line.
 */
import {type ChildProcess} from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import {Redis} from 'ioredis'
import {REDIS_INSTALL_HINT, requireBinary} from './binaries.js'
import {freePort} from './ports.js'
import {cleanEnv, onProcessExit, spawnTied, waitForExit, waitUntil} from './process.js'

export interface StartRedisOptions {
  /** requirepass; also in url. */
  password?: string
  /** Extra redis-server arguments (`--appendonly yes`, `--save 60 1` …); they override the defaults. */
  args?: string[]
  /** Working dir (--dir) for RDB / AOF files; kept by stop() when given, else a temp dir that stop() removes. */
  dir?: string
  /** Readiness timeout (default 20 s). */
  timeoutMs?: number
}

export interface RedisServer {
  host: string
  port: number
  password?: string
  /** redis://[:PASSWORD@]127.0.0.1:PORT */
  url: string
  pid: number
  /** The server's --dir. */
  dir: string
  /** redis-server's stdout + stderr so far (its log). */
  log(): string
  /** SHUTDOWN NOSAVE, then SIGTERM, then SIGKILL; waits for the exit. Idempotent. */
  stop(): Promise<void>
}

const HOST = '127.0.0.1'

function hasArg(args: string[], name: string): boolean {
  return args.some((a) => a === `--${name}`)
}

export async function startRedis(opts: StartRedisOptions = {}): Promise<RedisServer> {
  const bin = requireBinary('redis-server', REDIS_INSTALL_HINT)
  const extra = opts.args ?? []
  const workDir = fs.mkdtempSync(path.join(os.tmpdir(), 'charge-ops-redis-'))
  const dir = opts.dir ? path.resolve(opts.dir) : path.join(workDir, 'data')
  fs.mkdirSync(dir, {recursive: true})

  // the password travels in a 0600 config file, not in argv (visible in ps)
  const confFile = path.join(workDir, 'redis.conf')
  const conf =
    opts.password === undefined
      ? ''
      : `requirepass "${opts.password.replaceAll('\\', '\\\\').replaceAll('"', '\\"')}"\n`
  fs.writeFileSync(confFile, conf, {mode: 0o600})

  const removeWorkDir = () => fs.rmSync(workDir, {recursive: true, force: true, maxRetries: 3})
  const timeoutMs = opts.timeoutMs ?? 20_000

  for (let attempt = 1; ; attempt++) {
    const port = hasArg(extra, 'port') ? Number(extra[extra.indexOf('--port') + 1]) : await freePort()
    const args = [confFile]
    if (!hasArg(extra, 'port')) args.push('--port', String(port))
    if (!hasArg(extra, 'bind')) args.push('--bind', HOST)
    if (!hasArg(extra, 'save')) args.push('--save', '')
    if (!hasArg(extra, 'dir')) args.push('--dir', dir)
    if (!hasArg(extra, 'daemonize')) args.push('--daemonize', 'no')
    if (!hasArg(extra, 'logfile')) args.push('--logfile', '')
    args.push(...extra)

    let log = ''
    let exited: string | undefined
    const child: ChildProcess = spawnTied(bin, args, {cwd: workDir, env: cleanEnv(), stdio: ['ignore', 'pipe', 'pipe']})
    child.stdout!.setEncoding('utf8').on('data', (d: string) => (log += d))
    child.stderr!.setEncoding('utf8').on('data', (d: string) => (log += d))
    child.once('error', (error) => (exited = `spawn failed: ${error.message}`))
    child.once('exit', (code, signal) => (exited ??= `redis-server exited (${signal ?? `code ${code}`})`))
    const pid = child.pid!
    const unregister = onProcessExit(() => {
      try {
        process.kill(pid, 'SIGKILL')
      } catch {
        // gone
      }
      removeWorkDir() // opts.dir, when given, lies outside workDir and is kept
    })

    const ping = async () => {
      const client = new Redis({
        host: HOST,
        port,
        password: opts.password,
        lazyConnect: true,
        maxRetriesPerRequest: 0,
        enableOfflineQueue: false,
        retryStrategy: () => null,
        connectTimeout: 1000,
      })
      client.on('error', () => {})
      try {
        await client.connect()
        return (await client.ping()) === 'PONG'
      } finally {
        client.disconnect()
      }
    }

    try {
      await waitUntil(ping, {timeoutMs, intervalMs: 50, what: `redis-server on port ${port}`, abort: () => exited})
    } catch (error) {
      unregister()
      if (exited === undefined) {
        child.kill('SIGKILL')
        await waitForExit(child, 5000)
      }
      if (attempt < 4 && !hasArg(extra, 'port') && /Address already in use/i.test(log)) continue
      removeWorkDir()
      throw new Error(`${(error as Error).message}\n--- redis-server output\n${log.slice(-4000)}`)
    }

    let stopped = false
    const url =
      opts.password === undefined
        ? `redis://${HOST}:${port}`
        : `redis://:${encodeURIComponent(opts.password)}@${HOST}:${port}`
    return {
      host: HOST,
      port,
      password: opts.password,
      url,
      pid,
      dir,
      log: () => log,
      async stop() {
        if (stopped) return
        stopped = true
        if (exited === undefined) {
          const client = new Redis({
            host: HOST,
            port,
            password: opts.password,
            lazyConnect: true,
            retryStrategy: () => null,
            maxRetriesPerRequest: 0,
          })
          client.on('error', () => {})
          try {
            await client.connect()
            await client.call('SHUTDOWN', 'NOSAVE').catch(() => {}) // the connection drops: expected
          } catch {
            // not reachable: fall back to signals
          } finally {
            client.disconnect()
          }
          if (!(await waitForExit(child, 5000))) {
            child.kill('SIGTERM')
            if (!(await waitForExit(child, 5000))) {
              child.kill('SIGKILL')
              await waitForExit(child, 5000)
            }
          }
        }
        unregister()
        removeWorkDir() // opts.dir, when given, lies outside workDir and is kept
      },
    }
  }
}
