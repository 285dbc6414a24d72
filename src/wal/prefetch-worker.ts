#!/usr/bin/env node
/**
 * The prefetch worker of `wal fetch --prefetch` (src/wal/prefetch.ts starts it, bound to the
 * fetch that needs it): fetches the named segments, `--process-max` at a time, each decompressed
 * and checksum-verified before it is written into the spool under a temp name and renamed
 * (src/wal/spool.ts). A segment not in the archive is skipped quietly (the end of the archive);
 * any other failure is printed and the exit status is 1 — the segment is then fetched directly
 * when PostgreSQL asks for it, and fails there in the open if it is damaged.
 */
import {readWal} from './archive.js'
import {writeSpoolSegment} from './spool.js'

async function main(argv: string[]): Promise<number> {
  const flags: Record<string, string> = {}
  const names: string[] = []
  for (let i = 0; i < argv.length; i++) {
    if (argv[i].startsWith('--')) flags[argv[i].slice(2)] = argv[++i]
    else names.push(argv[i])
  }
  if (!flags.repo || !flags.stack || !flags.dir) {
    process.stderr.write('usage: prefetch-worker.js --repo R --stack S --dir SPOOL [--process-max N] NAME…\n')
    return 2
  }
  const {openRepository} = await import('../repository/open.js')
  const storage = await openRepository(flags.repo)
  const queue = [...names]
  let failed = 0
  const one = async (): Promise<void> => {
    for (let name = queue.shift(); name !== undefined; name = queue.shift()) {
      try {
        const found = await readWal(storage, flags.stack, name)
        if (found) await writeSpoolSegment(flags.dir, name, found.data)
      } catch (error) {
        failed++
        process.stderr.write(`charge-ops wal fetch: prefetching ${name} failed: ${(error as Error).message.split('\n')[0]}\n`)
      }
    }
  }
  const workers = Math.max(1, Math.min(Number(flags['process-max']) || 2, names.length))
  await Promise.all(Array.from({length: workers}, one))
  return failed ? 1 : 0
}

process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true'
process.exitCode = await main(process.argv.slice(2))
