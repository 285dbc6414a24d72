#!/usr/bin/env node
/**
 * The restore_command that `restore pitr` writes: `node …/dist/src/wal/fetch-main.js %f %p --repo R
 * --stack S [--aws-env-file F]`. The same code as `charge-ops wal fetch` (src/wal/fetch.ts) without
 * the oclif start-up, because PostgreSQL runs it once per segment and once per timeline-history
 * probe, serially, for the whole recovery. Exit status as `wal fetch`: 0 restored, 1 not archived,
 * 126 the archive has a problem (PostgreSQL then stops recovery instead of promoting early).
 */
import {FETCH_ABORT_EXIT, FETCH_MISSING_EXIT, fetchWal} from './fetch.js'

async function main(argv: string[]): Promise<number> {
  const positional: string[] = []
  const flags: Record<string, string> = {}
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]
    if (arg.startsWith('--')) {
      const eq = arg.indexOf('=')
      if (eq > 0) flags[arg.slice(2, eq)] = arg.slice(eq + 1)
      else flags[arg.slice(2)] = argv[++i] ?? ''
    } else positional.push(arg)
  }
  const [name, destination] = positional
  if (!name || !destination || positional.length !== 2 || Object.keys(flags).some((k) => !['repo', 'stack', 'aws-env-file'].includes(k))) {
    process.stderr.write('usage: fetch-main.js NAME DEST --repo REPO --stack STACK [--aws-env-file FILE]\n')
    return FETCH_ABORT_EXIT
  }
  try {
    const {openWalRepository} = await import('./context.js')
    const {storage, stack} = await openWalRepository({repo: flags.repo, stack: flags.stack, 'aws-env-file': flags['aws-env-file']})
    const result = await fetchWal({storage, stack, name, destination})
    return result.status === 'missing' ? FETCH_MISSING_EXIT : 0
  } catch (error) {
    const [{describeError}, {redact}] = await Promise.all([import('../errors.js'), import('../output/redact.js')])
    const described = describeError(error)
    process.stderr.write(redact(`error: wal fetch ${name}: ${described.message}\n${described.hint ? `  hint: ${described.hint}\n` : ''}`))
    return FETCH_ABORT_EXIT
  }
}

process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true'
process.exitCode = await main(process.argv.slice(2))
