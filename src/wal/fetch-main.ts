#!/usr/bin/env node
/**
 * The restore_command that `restore pitr` writes: `node …/dist/src/wal/fetch-main.js %f %p --repo R
 * --stack S [--aws-env-file F]`. The same code as `charge-ops wal fetch` (src/wal/fetch.ts) without
 * the oclif start-up, because PostgreSQL runs it once per segment and once per timeline-history
 * probe, serially, for the whole recovery. Exit status as `wal fetch`: 0 restored, 1 not archived,
 * 126 the archive has a problem (PostgreSQL then stops recovery instead of promoting early).
 */
import {FETCH_ABORT_EXIT} from './fetch.js'
import {parseHotInvocation, runHotInvocation} from './hot-path.js'

async function main(argv: string[]): Promise<number> {
  const invocation = parseHotInvocation('fetch', argv)
  if (!invocation) {
    process.stderr.write('usage: fetch-main.js NAME DEST --repo REPO --stack STACK [--aws-env-file FILE]\n')
    return FETCH_ABORT_EXIT
  }
  return runHotInvocation(invocation)
}

process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true'
process.exitCode = await main(process.argv.slice(2))
