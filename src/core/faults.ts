/**
 * Named fault points for the crash tests (docs/conventions.md lists every one).
 *
 *   await faultPoint('backup.files.chroma-copy')
 *
 * Inert unless a test names the point in the environment — one property read, no I/O:
 *  - CHARGE_OPS_KILL_AT=<name>   this process SIGKILLs itself there (a `kill -9` at a known moment);
 *  - CHARGE_OPS_PAUSE_AT=<name>  it stops there until the test creates `<name>.resume` in the
 *                                fault dir (to stop S3, run a prune … at a known moment).
 * Both first write `<name>.reached` (JSON: the pid, and the point's detail) into CHARGE_OPS_FAULT_DIR (default: the
 * working directory), fsynced, so a test can assert that the point was really reached instead of
 * guessing from a timer. Several names may be given, comma-separated; the first one reached acts.
 * Why a kill from inside rather than a signal from the test: a timer races the work (the kill lands
 * before, after or in a different step from run to run); a point is the same moment every time.
 */
import {closeSync, existsSync, fsyncSync, openSync, writeSync} from 'node:fs'
import {join} from 'node:path'

function named(variable: string, name: string): boolean {
  const value = process.env[variable]
  return value !== undefined && value !== '' && value.split(',').includes(name)
}

function markReached(name: string, detail?: Record<string, unknown>): string {
  const dir = process.env.CHARGE_OPS_FAULT_DIR ?? process.cwd()
  const fd = openSync(join(dir, `${name}.reached`), 'w')
  try {
    writeSync(fd, JSON.stringify({pid: process.pid, ...detail}) + '\n')
    fsyncSync(fd)
  } finally {
    closeSync(fd)
  }
  return dir
}

/**
 * A kill / pause point. Returns at once (undefined) unless a test named it. `detail` (e.g. the pids
 * of the children running at that moment) goes into the marker, for the test to check on.
 */
export function faultPoint(name: string, detail?: () => Record<string, unknown>): Promise<void> | undefined {
  if (named('CHARGE_OPS_KILL_AT', name)) {
    markReached(name, detail?.())
    process.kill(process.pid, 'SIGKILL')
  }
  if (named('CHARGE_OPS_PAUSE_AT', name)) {
    const resume = join(markReached(name, detail?.()), `${name}.resume`)
    return new Promise((resolve) => {
      const timer = setInterval(() => {
        if (!existsSync(resume)) return
        clearInterval(timer)
        resolve()
      }, 20)
    })
  }
  return undefined
}
