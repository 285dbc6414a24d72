/**
 * PostgreSQL forks its archive_command once per 16 MB WAL segment and its restore_command once per
 * segment during recovery, serially: their start-up is on the critical path. Loading oclif costs
 * ~100 ms of the ~150 ms a push takes, so `bin/run.js` hands the plain forms of `wal push` and
 * `wal fetch` to this module, which runs the very same domain code (src/wal/archive.ts,
 * src/wal/fetch.ts) and prints errors the way the base command does. Every documented form of the
 * two lines qualifies: --repo/--stack/--aws-env-file, the async and prefetch flags, and the
 * repository from charge-ops.yaml (--config / CHARGE_OPS_CONFIG / ./charge-ops.yaml, read with the
 * CLI's own loader). Anything else (--help, --json, --verbose, --engine wal-g, short flags …)
 * goes through oclif as usual.
 */
import {FETCH_ABORT_EXIT, FETCH_MISSING_EXIT} from './fetch.js'

const HOT_FLAGS: Record<string, readonly string[]> = {
  push: [
    'repo',
    'stack',
    'aws-env-file',
    'compression',
    'async',
    'process-max',
    'spool',
    'queue-max',
    'config',
    'env-file',
    'quiet',
  ],
  fetch: ['repo', 'stack', 'aws-env-file', 'prefetch', 'process-max', 'spool', 'config', 'env-file', 'quiet'],
}
/** flags without a value (--quiet changes nothing here: a successful push or fetch prints nothing) */
const BOOLEAN_FLAGS = new Set(['async', 'quiet'])
const POSITIONALS: Record<string, number> = {push: 1, fetch: 2}
/**
 * The bounds oclif enforces on these flags (commands/wal/push.ts, fetch.ts): a value outside goes
 * to oclif, which refuses it as bad input (exit 2) — here `--process-max 0` or `500` ran as given
 */
const NUMERIC_BOUNDS: Record<string, readonly [number, number]> = {prefetch: [0, 256], 'process-max': [1, 64]}

export interface HotInvocation {
  verb: 'push' | 'fetch'
  positional: string[]
  flags: Record<string, string>
}

/** Parses `push PATH --repo R …` / `fetch NAME DEST --repo R …`; undefined when oclif must handle it. */
export function parseHotInvocation(verb: string, argv: readonly string[]): HotInvocation | undefined {
  const allowed = HOT_FLAGS[verb]
  if (!allowed) return undefined
  const positional: string[] = []
  const flags: Record<string, string> = {}
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]
    if (arg.startsWith('-')) {
      if (!arg.startsWith('--')) return undefined
      const eq = arg.indexOf('=')
      const name = eq > 0 ? arg.slice(2, eq) : arg.slice(2)
      if (!allowed.includes(name)) return undefined
      if (BOOLEAN_FLAGS.has(name)) {
        if (eq > 0) return undefined
        flags[name] = 'true'
        continue
      }
      const value = eq > 0 ? arg.slice(eq + 1) : argv[++i]
      if (value === undefined) return undefined
      flags[name] = value
    } else positional.push(arg)
  }
  if (positional.length !== POSITIONALS[verb]) return undefined
  for (const [numeric, [min, max]] of Object.entries(NUMERIC_BOUNDS)) {
    const value = flags[numeric]
    if (value !== undefined && (!/^\d{1,3}$/.test(value) || Number(value) < min || Number(value) > max))
      return undefined
  }
  if (verb === 'push' && flags.compression && !['zstd', 'gzip'].includes(flags.compression)) return undefined
  return {verb: verb as HotInvocation['verb'], positional, flags}
}

async function printError(error: unknown, what: string): Promise<number> {
  const [{describeError}, {redact}] = await Promise.all([import('../errors.js'), import('../output/redact.js')])
  const described = describeError(error)
  process.stderr.write(
    redact(`error: ${what}: ${described.message}\n${described.hint ? `  hint: ${described.hint}\n` : ''}`),
  )
  return described.exitCode
}

/**
 * Where the repository is: the command line, else charge-ops.yaml (--config, CHARGE_OPS_CONFIG or
 * ./charge-ops.yaml, and the .env it names) through the same loader as the full CLI — only
 * without oclif, and only read when --repo or --stack is missing.
 */
async function openRepositoryOf(flags: Record<string, string>) {
  const {openWalRepository} = await import('./context.js')
  if ((flags.repo ?? process.env.CHARGE_OPS_REPO) && flags.stack) return openWalRepository(flags)
  const {loadSettings} = await import('../config/settings.js')
  const settings = loadSettings({configPath: flags.config, envFile: flags['env-file']})
  return openWalRepository(flags, () => settings)
}

/** Runs a hot invocation; returns the process exit code. */
export async function runHotInvocation(invocation: HotInvocation): Promise<number> {
  process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true'
  if (invocation.verb === 'push') {
    const [path] = invocation.positional
    try {
      if (invocation.flags['queue-max']) {
        // loud, in the server log, on every call past the limit: before the push, which may fail
        const {checkQueue, parseQueueMax} = await import('./queue.js')
        const warning = await checkQueue(path, parseQueueMax(invocation.flags['queue-max']))
        if (warning) process.stderr.write(`charge-ops wal push ${path}: ${warning}\n`)
      }
      const {storage, stack, repository} = await openRepositoryOf(invocation.flags)
      const compression = (invocation.flags.compression ?? 'zstd') as 'zstd' | 'gzip'
      if (invocation.flags.async) {
        const {pushWalAsync} = await import('./async-push.js')
        const result = await pushWalAsync({
          storage,
          stack,
          repository,
          path,
          compression,
          processMax: Number(invocation.flags['process-max'] ?? 2),
          spool: invocation.flags.spool,
        })
        // the segment is stored: a worker that could not start only costs speed, said in the server log
        if (result.workerProblem)
          process.stderr.write(
            `charge-ops wal push ${path}: ${result.workerProblem}; the segments are pushed when asked\n`,
          )
      } else {
        const {pushWal} = await import('./archive.js')
        await pushWal({storage, stack, path, compression})
      }
      return 0
    } catch (error) {
      return printError(error, `wal push ${path}`)
    }
  }
  const [name, destination] = invocation.positional
  try {
    const {fetchWal} = await import('./fetch.js')
    const {storage, stack, repository} = await openRepositoryOf(invocation.flags)
    const count = Number(invocation.flags.prefetch ?? 0)
    const prefetch =
      count > 0
        ? {
            count,
            processMax: Number(invocation.flags['process-max'] ?? 2),
            root: invocation.flags.spool,
            repository,
            stack,
          }
        : undefined
    const result = await fetchWal({storage, stack, name, destination, prefetch})
    // the asked file is in place: a failed prefetch only costs speed, said in the server log
    if (result.prefetchProblem)
      process.stderr.write(
        `charge-ops wal fetch ${name}: ${result.prefetchProblem}; the segments are fetched directly\n`,
      )
    return result.status === 'missing' ? FETCH_MISSING_EXIT : 0
  } catch (error) {
    await printError(error, `wal fetch ${name}`)
    // Any failure that is not "not archived" must stop recovery (exit > 125), never promote early.
    return FETCH_ABORT_EXIT
  }
}
