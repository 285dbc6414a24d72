// Cleanup for benchmarks: everything a bench starts (servers, child process groups, scratch dirs)
// is undone on normal exit, on an error, and on Ctrl-C / SIGTERM / SIGHUP.
//
//   onCleanup(fn)      register an (async) undo step; steps run last-registered first
//   track(child)       a child spawned with {detached: true} (its own process group): killed on interrupt
//   runCleanups()      run the steps once (idempotent); call it in a finally
//   installSignalHandlers()  on a signal: kill the tracked groups, run the steps, exit 128+n
import {spawn} from 'node:child_process'

const steps = []
const children = new Set()
let ran

export function onCleanup(fn) {
  steps.push(fn)
  return () => {
    const i = steps.indexOf(fn)
    if (i !== -1) steps.splice(i, 1)
  }
}

export function track(child) {
  children.add(child)
  child.once('exit', () => children.delete(child))
  return child
}

/** SIGTERM to every tracked process group, SIGKILL to those still there after `graceMs`. */
export async function killTracked(graceMs = 2000) {
  const live = [...children]
  const signal = (sig) => {
    for (const c of live) {
      try {
        process.kill(-c.pid, sig)
      } catch {
        try {
          c.kill(sig)
        } catch {}
      }
    }
  }
  if (live.length === 0) return
  signal('SIGTERM')
  const deadline = Date.now() + graceMs
  while (Date.now() < deadline && live.some((c) => c.exitCode === null && c.signalCode === null)) {
    await new Promise((r) => setTimeout(r, 50))
  }
  signal('SIGKILL')
}

export function runCleanups() {
  ran ??= (async () => {
    await killTracked()
    while (steps.length > 0) {
      const fn = steps.pop()
      try {
        await fn()
      } catch (error) {
        process.stderr.write(`cleanup: ${error?.message ?? error}\n`)
      }
    }
  })()
  return ran
}

export function installSignalHandlers() {
  const codes = {SIGINT: 130, SIGTERM: 143, SIGHUP: 129}
  let interrupted = false
  for (const [sig, code] of Object.entries(codes)) {
    process.on(sig, () => {
      if (interrupted) return // a second Ctrl-C while cleaning up: keep cleaning up
      interrupted = true
      process.stderr.write(`\n${sig}: stopping what the benchmark started…\n`)
      runCleanups().finally(() => process.exit(code))
    })
  }
}

/**
 * Removes `dir` even if this process is SIGKILLed: a detached shell blocks on a pipe from us and
 * removes the dir at EOF, unless told "cancel" (returned function; call it once the dir is gone).
 */
export function removeOnDeath(dir) {
  const w = spawn(
    'bash',
    [
      '-c',
      'if IFS= read -r l && [ "$l" = cancel ]; then exit 0; fi; rm -rf -- "$1"',
      'charge-ops-bench-rm-watchdog',
      dir,
    ],
    {stdio: ['pipe', 'ignore', 'ignore'], detached: true, cwd: '/'},
  )
  w.on('error', () => {})
  w.unref()
  w.stdin.unref?.()
  return () => w.stdin.end('cancel\n')
}
