// Preloaded into a node process (`node --import bench/lib/rss.mjs …`): when it exits, writes its
// own peak resident set size (VmHWM from /proc/self/status, in kB) to $CHARGE_OPS_BENCH_RSS_FILE.
// Only this process is measured, not its children (pg_dump, zstd, tar have their own memory).
import {readFileSync, writeFileSync} from 'node:fs'

const out = process.env.CHARGE_OPS_BENCH_RSS_FILE
if (out) {
  delete process.env.CHARGE_OPS_BENCH_RSS_FILE
  process.on('exit', () => {
    try {
      const kb = Number(/^VmHWM:\s+(\d+)\s+kB/m.exec(readFileSync('/proc/self/status', 'utf8'))?.[1])
      writeFileSync(out, `${kb}\n`)
    } catch {
      // no /proc: the figure is reported as missing
    }
  })
}
