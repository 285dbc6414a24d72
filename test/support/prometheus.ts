/**
 * Prometheus' own tools for tests: `promtool` (Debian's `prometheus` package) judges the metrics
 * charge-ops writes and the rules `charge-ops monitoring` generates; startDaemon() runs the real
 * Prometheus, Alertmanager and exporters for the end-to-end alerting test. Missing → a loud
 * failure with the install command, never a skip.
 */
import {requireBinary} from './binaries.js'
import {freePort} from './ports.js'
import {cleanEnv, onProcessExit, runUnchecked, spawnTied, waitForExit, waitUntil, type RunResult} from './process.js'

export const PROMETHEUS_INSTALL_HINT =
  'apt-get install -y prometheus prometheus-alertmanager prometheus-pushgateway prometheus-postgres-exporter prometheus-redis-exporter prometheus-node-exporter'

export function promtoolPath(): string {
  return requireBinary('promtool', PROMETHEUS_INSTALL_HINT)
}

/** `promtool check metrics` on an exposition text: exit code and every lint finding (stdout + stderr). */
export async function promtoolCheckMetrics(text: string): Promise<{code: number | null; findings: string}> {
  const r = await runUnchecked(promtoolPath(), ['check', 'metrics'], {input: text, timeoutMs: 30_000})
  return {code: r.code, findings: `${r.stdout}${r.stderr}`.trim()}
}

/** Runs promtool with arguments (check rules / test rules / check config). */
export function promtool(args: string[], opts: {cwd?: string} = {}): Promise<RunResult> {
  return runUnchecked(promtoolPath(), args, {cwd: opts.cwd, timeoutMs: 60_000})
}

export interface Daemon {
  name: string
  port: number
  /** http://127.0.0.1:PORT */
  url: string
  pid: number
  /** its stdout + stderr so far */
  log(): string
  /** SIGTERM, then SIGKILL after 5 s; waits for the exit. Idempotent. */
  stop(): Promise<void>
}

/**
 * Starts one of Prometheus' Go daemons (prometheus, alertmanager, the exporters) on a free
 * loopback port, tied to this process (PR_SET_PDEATHSIG + exit cleanup), and waits until
 * `readyPath` answers 200. `args(port)` builds its argv for the port; secrets go in `env`.
 * A port taken between freePort() and the bind is retried with another.
 */
export async function startDaemon(opts: {
  name: string
  bin: string
  args: (port: number) => string[]
  env?: Record<string, string>
  readyPath?: string
  cwd?: string
  timeoutMs?: number
}): Promise<Daemon> {
  const bin = requireBinary(opts.bin, PROMETHEUS_INSTALL_HINT)
  for (let attempt = 1; ; attempt++) {
    const port = await freePort()
    let log = ''
    let exited: string | undefined
    const child = spawnTied(bin, opts.args(port), {
      cwd: opts.cwd,
      env: cleanEnv(opts.env),
      stdio: ['ignore', 'pipe', 'pipe'],
    })
    child.stdout!.setEncoding('utf8').on('data', (d: string) => (log += d))
    child.stderr!.setEncoding('utf8').on('data', (d: string) => (log += d))
    child.once('error', (error) => (exited = `spawn failed: ${error.message}`))
    child.once('exit', (code, signal) => (exited ??= `${opts.name} exited (${signal ?? `code ${code}`})`))
    const unregister = onProcessExit(() => {
      if (exited === undefined) child.kill('SIGKILL')
    })
    const url = `http://127.0.0.1:${port}`
    let stopped = false
    const daemon: Daemon = {
      name: opts.name,
      port,
      url,
      pid: child.pid!,
      log: () => log,
      async stop() {
        if (stopped) return
        stopped = true
        if (exited === undefined) {
          child.kill('SIGTERM')
          if (!(await waitForExit(child, 5000))) {
            child.kill('SIGKILL')
            await waitForExit(child, 5000)
          }
        }
        unregister()
      },
    }
    try {
      await waitUntil(async () => (await fetch(`${url}${opts.readyPath ?? '/metrics'}`)).ok, {
        timeoutMs: opts.timeoutMs ?? 30_000,
        intervalMs: 100,
        what: `${opts.name} on port ${port}`,
        abort: () => exited,
      })
      return daemon
    } catch (error) {
      await daemon.stop()
      if (attempt < 4 && /address already in use/i.test(log)) continue
      throw new Error(`${(error as Error).message}\n--- ${opts.name} output\n${log.slice(-4000)}`)
    }
  }
}
