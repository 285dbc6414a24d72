/**
 * A real Chroma server for tests: scripts/chroma-server (the `chroma` CLI of the
 * chromadb npm package, under a newer glibc where needed) on a free loopback port.
 *
 * Chroma ignores SIGTERM and SIGINT and then spins a CPU, so it runs in its own process
 * group and is always stopped with SIGKILL of the whole group. Any group still running
 * when this process exits (normally, by process.exit, SIGINT, SIGTERM, SIGHUP) is
 * SIGKILLed, and the server also gets PR_SET_PDEATHSIG=SIGKILL (setpriv) so it dies with
 * this process even when this process is SIGKILLed.
 */
import {spawn, type ChildProcess} from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import {fileURLToPath} from 'node:url'
import {freePort} from './ports.js'
import {onProcessExit, tiedToParent, waitForExit, waitUntil} from './process.js'

export interface StartChromaOptions {
  /** Persist directory (kept by stop() when given; default a temp dir that stop() removes). */
  dataDir?: string
  /** Heartbeat timeout; default 60 s, 180 s when the glibc cache has yet to be filled. */
  timeoutMs?: number
}

export interface ChromaServer {
  /** http://127.0.0.1:PORT */
  url: string
  host: string
  port: number
  dataDir: string
  /** The process group leader (the server itself, after the script's exec). */
  pid: number
  /** The server's stdout + stderr (file). */
  logFile: string
  /** SIGKILL of the whole process group, then waits for the exit. Idempotent. */
  stop(): Promise<void>
}

const HOST = '127.0.0.1'

/** scripts/chroma-server, found from this file's location. */
export const CHROMA_SERVER_SCRIPT = fileURLToPath(new URL('../../scripts/chroma-server', import.meta.url))

function killGroup(pgid: number): void {
  try {
    process.kill(-pgid, 'SIGKILL')
  } catch {
    // already gone
  }
}

function glibcCacheReady(): boolean {
  const cache = process.env.CHROMA_GLIBC_CACHE ?? path.join(os.homedir(), '.cache/charge-ops/glibc-trixie')
  return fs.existsSync(path.join(cache, 'root'))
}

async function heartbeat(port: number): Promise<boolean> {
  const response = await fetch(`http://${HOST}:${port}/api/v2/heartbeat`, {signal: AbortSignal.timeout(2000)})
  if (!response.ok) return false
  const body = (await response.json()) as Record<string, unknown>
  return typeof body['nanosecond heartbeat'] === 'number'
}

export async function startChroma(opts: StartChromaOptions = {}): Promise<ChromaServer> {
  if (!fs.existsSync(CHROMA_SERVER_SCRIPT)) throw new Error(`startChroma: ${CHROMA_SERVER_SCRIPT} is missing`)

  const workDir = fs.mkdtempSync(path.join(os.tmpdir(), 'charge-ops-chroma-'))
  const dataDir = opts.dataDir ? path.resolve(opts.dataDir) : path.join(workDir, 'data')
  fs.mkdirSync(dataDir, {recursive: true})
  const logFile = path.join(workDir, 'chroma.log')
  const timeoutMs = opts.timeoutMs ?? (glibcCacheReady() ? 60_000 : 180_000)
  const removeWorkDir = () => fs.rmSync(workDir, {recursive: true, force: true, maxRetries: 3})

  for (let attempt = 1; ; attempt++) {
    const port = await freePort()
    const logFd = fs.openSync(logFile, 'a')
    const [cmd, args] = tiedToParent(CHROMA_SERVER_SCRIPT, ['--path', dataDir, '--port', String(port), '--host', HOST])
    let child: ChildProcess
    try {
      child = spawn(cmd, args, {
        detached: true, // its own process group: stop() kills the whole group
        stdio: ['ignore', logFd, logFd],
        env: {...process.env, CHROMA_NODE: process.env.CHROMA_NODE ?? process.execPath, NO_COLOR: '1'},
      })
    } finally {
      fs.closeSync(logFd)
    }
    const pid = child.pid!
    // last chance: SIGKILL the group when this process exits or is interrupted
    const unregister = onProcessExit(() => {
      killGroup(pid)
      removeWorkDir()
    })
    let exited: string | undefined
    child.once('exit', (code, signal) => (exited = `chroma-server exited (${signal ?? `code ${code}`})`))
    child.once('error', (error) => (exited = `spawn failed: ${error.message}`))

    const stopGroup = async () => {
      killGroup(pid)
      unregister()
      if (!(await waitForExit(child, 10_000))) throw new Error(`chroma-server pid ${pid} survived SIGKILL for 10 s`)
    }

    try {
      await waitUntil(() => heartbeat(port), {
        timeoutMs,
        intervalMs: 100,
        what: `chroma-server on port ${port}`,
        abort: () => exited,
      })
    } catch (error) {
      await stopGroup()
      const log = fs.existsSync(logFile) ? fs.readFileSync(logFile, 'utf8') : ''
      if (attempt < 4 && /address already in use|AddrInUse/i.test(log)) continue
      removeWorkDir()
      throw new Error(`${(error as Error).message}\n--- ${logFile}\n${log.slice(-4000)}`)
    }

    let stopped = false
    return {
      url: `http://${HOST}:${port}`,
      host: HOST,
      port,
      dataDir,
      pid,
      logFile,
      async stop() {
        if (stopped) return
        stopped = true
        await stopGroup()
        removeWorkDir() // opts.dataDir, when given, lies outside workDir and is kept
      },
    }
  }
}
