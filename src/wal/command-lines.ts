/**
 * The exact archive_command / restore_command lines charge-ops writes or prints. Self-contained:
 * absolute node and entry paths (postgres has no PATH of yours), repository and stack in the
 * line, S3 credentials only by file path. Never a secret.
 */
import {existsSync} from 'node:fs'
import {fileURLToPath} from 'node:url'
import {dirname, resolve} from 'node:path'

import {shellFetchSpoolPath, shellPushSpoolPath} from './spool.js'

export interface CommandLineOptions {
  repository: string
  stack: string
  awsEnvFile?: string
  /** wal-g: the line runs `wal-g wal-push / wal-fetch` through charge-ops */
  engine?: 'native' | 'wal-g'
  /** absolute path of the node binary (default: this process's) */
  node?: string
  /** absolute path of charge-ops' bin/run.js (default: this installation's) */
  entry?: string
  /** restore_command: `--prefetch K` (0 / undefined: none) */
  prefetch?: number
  /** archive_command: `--async --process-max N` */
  asyncProcessMax?: number
  /** archive_command: `--queue-max SIZE` (src/wal/queue.ts) */
  queueMax?: string
}

/** bin/run.js of this installation (dist/src/wal/ → ../../../bin/run.js; src/wal/ under tsx → ../../bin). */
export function defaultEntry(): string {
  const here = dirname(fileURLToPath(import.meta.url))
  const fromDist = resolve(here, '../../../bin/run.js')
  return here.includes(`${'/dist/'}`) ? fromDist : resolve(here, '../../bin/run.js')
}

/** Quotes one word for the shell PostgreSQL runs the command with (/bin/sh). */
export function shellQuote(word: string): string {
  return /^[A-Za-z0-9_@%+=:,./-]+$/.test(word) ? word : `'${word.replaceAll("'", `'\\''`)}'`
}

function common(options: CommandLineOptions): string[] {
  const words = ['--repo', options.repository, '--stack', options.stack]
  if (options.awsEnvFile) words.push('--aws-env-file', options.awsEnvFile)
  if (options.engine === 'wal-g') words.push('--engine', 'wal-g')
  return words
}

function prefix(options: CommandLineOptions): string[] {
  return [options.node ?? process.execPath, options.entry ?? defaultEntry()]
}

export function archiveCommand(options: CommandLineOptions): string {
  const asyncWords =
    options.asyncProcessMax && options.engine !== 'wal-g'
      ? ['--async', '--process-max', String(options.asyncProcessMax)]
      : []
  const queueWords = options.queueMax && options.engine !== 'wal-g' ? ['--queue-max', options.queueMax] : []
  const line = [...prefix(options), 'wal', 'push', '%p', ...common(options), ...asyncWords, ...queueWords]
    .map((w) => (w === '%p' ? w : shellQuote(w)))
    .join(' ')
  if (asyncWords.length === 0) return line
  // the async form's shell fast path: a segment the push-ahead worker pushed (the repository
  // confirmed it, src/wal/async-push.ts) ends with one sha256 of %p equal to the record's — proof
  // that pg_wal holds exactly those bytes — and no Node start; anything else goes to charge-ops.
  // openssl, not coreutils' sha256sum: Debian's sha256sum does not use the CPU's SHA instructions
  // (16 MB: 275 ms vs 112 ms on the shared test machine under load). No openssl, an empty or
  // short record: the test fails and charge-ops checks the record itself.
  const spool = shellPushSpoolPath({repository: options.repository, stack: options.stack})
  return `${spool}; test -f "$f.sha256" && read h x < "$f.sha256" && test \${#h} -eq 64 && set -- $(openssl dgst -sha256 -r %p 2>/dev/null) && test "$1" = "$h" && rm -f "$f.sha256" "$f.ok" || exec ${line}`
}

/** dist/src/wal/fetch-main.js of this installation, when built (the fast restore_command entry). */
export function fastFetchEntry(): string | undefined {
  const here = dirname(fileURLToPath(import.meta.url))
  const root = here.includes('/dist/') ? resolve(here, '../../..') : resolve(here, '../..')
  const entry = resolve(root, 'dist/src/wal/fetch-main.js')
  return existsSync(entry) ? entry : undefined
}

/**
 * The restore_command. With `fast` (what `restore pitr` and `recover` write) it runs charge-ops'
 * fetch entry directly, skipping the CLI framework's start-up on every segment; same code and exit
 * codes. With `fast` and `prefetch` it starts with the shell fast path of src/wal/prefetch.ts: a
 * segment the prefetcher already spooled (complete, verified, renamed into place in this boot's folder) is handed
 * over with one `mv`; anything else (not spooled yet, .history / .partial / .backup, another
 * timeline) goes to the Node fetch, which also keeps the prefetcher running. The spool folder in the
 * line is the one of this repository, stack and cluster (`systemIdentifier`, from cluster.json).
 */
export function restoreCommand(options: CommandLineOptions & {fast?: boolean; systemIdentifier?: string}): string {
  const fast = options.fast && options.engine !== 'wal-g' ? fastFetchEntry() : undefined
  const prefetch = options.prefetch && options.engine !== 'wal-g' ? ['--prefetch', String(options.prefetch)] : []
  const quote = (w: string) => (w === '%p' || w === '%f' ? w : shellQuote(w))
  if (fast) {
    const line = [options.node ?? process.execPath, fast, '%f', '%p', ...common(options), ...prefetch]
      .map(quote)
      .join(' ')
    if (prefetch.length === 0) return line
    // relative to the data directory (PostgreSQL's cwd): the line stays right if the directory moves
    const spool = shellFetchSpoolPath({
      repository: options.repository,
      stack: options.stack,
      systemIdentifier: options.systemIdentifier,
    })
    return `${spool}; test -f "$f" && mv -f "$f" %p || exec ${line}`
  }
  return [...prefix(options), 'wal', 'fetch', '%f', '%p', ...common(options), ...prefetch].map(quote).join(' ')
}

/** A postgresql.conf string value (single quotes doubled). */
export function confString(value: string): string {
  return `'${value.replaceAll("'", "''")}'`
}

/** charge-ops.yaml inside the compose stack's postgres (and ops) containers: init mounts it there. */
export const CONTAINER_CONFIG = '/etc/charge-ops/charge-ops.yaml'

/**
 * The archive_command of the compose stack's postgres image (charge-ops on its PATH, the mounted
 * charge-ops.yaml naming repository, stack and engine). The engine is on the line as well, so that
 * the line says what it runs; init writes the same line.
 */
export function containerArchiveCommand(options: {engine?: 'native' | 'wal-g'} = {}): string {
  return [
    'charge-ops',
    'wal',
    'push',
    '%p',
    '--config',
    CONTAINER_CONFIG,
    ...(options.engine === 'wal-g' ? ['--engine', 'wal-g'] : []),
  ].join(' ')
}

export function containerRestoreCommand(options: {engine?: 'native' | 'wal-g'} = {}): string {
  return [
    'charge-ops',
    'wal',
    'fetch',
    '%f',
    '%p',
    '--config',
    CONTAINER_CONFIG,
    ...(options.engine === 'wal-g' ? ['--engine', 'wal-g'] : []),
  ].join(' ')
}
