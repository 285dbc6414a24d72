/**
 * Start-up path: the heavy modules (AWS SDK, chromadb, inquirer, listr2, pg, ioredis, execa,
 * fastify) must be imported only by the commands that use them. A module-resolution hook
 * (ESM `register` + CJS `Module._load`) records every module the binary loads.
 */
import {execa} from 'execa'
import {chmodSync, cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync} from 'node:fs'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {describe, expect, it} from 'vitest'

const root = join(import.meta.dirname, '..', '..')
const bin = join(root, 'bin', 'run.js')
const HEAVY = ['pg', 'ioredis', '@aws-sdk', 'chromadb', 'listr2', '@inquirer', 'execa', 'fastify']

const tracer = mkdtempSync(join(tmpdir(), 'charge-ops-trace-'))
writeFileSync(
  join(tracer, 'hooks.mjs'),
  `import {appendFileSync} from 'node:fs'
export async function resolve(specifier, context, next) {
  const result = await next(specifier, context)
  appendFileSync(process.env.MODULE_TRACE_FILE, result.url + '\\n')
  return result
}
`,
)
writeFileSync(
  join(tracer, 'register.mjs'),
  `import {appendFileSync} from 'node:fs'
import Module, {register} from 'node:module'
register('./hooks.mjs', import.meta.url)
const load = Module._load
Module._load = function (request, parent, isMain) {
  try { appendFileSync(process.env.MODULE_TRACE_FILE, Module._resolveFilename(request, parent, isMain) + '\\n') } catch {}
  return load.apply(this, arguments)
}
`,
)

async function loadedPackages(
  args: string[],
  cwd = root,
  env: Record<string, string> = {},
): Promise<{packages: Set<string>; exitCode?: number}> {
  const trace = join(mkdtempSync(join(tmpdir(), 'charge-ops-trace-')), 'modules.txt')
  writeFileSync(trace, '')
  const r = await execa('node', ['--import', join(tracer, 'register.mjs'), bin, ...args], {
    reject: false,
    cwd,
    stdin: 'ignore',
    env: {CI: 'true', MODULE_TRACE_FILE: trace, ...env},
  })
  const packages = new Set<string>()
  for (const line of readFileSync(trace, 'utf8').split('\n')) {
    const match = /node_modules\/((?:@[^/]+\/)?[^/]+)\//.exec(line)
    if (match) packages.add(match[1])
  }
  return {packages, exitCode: r.exitCode}
}

const heavyIn = (packages: Set<string>) =>
  [...packages].filter((p) => HEAVY.some((h) => p === h || p.startsWith(`${h}/`)))

/** a data directory whose pg_wal holds one segment (a PostgreSQL 15 long page header), charge-ops.yaml in it and in conf/ */
function walFixture(): string {
  const dir = mkdtempSync(join(tmpdir(), 'charge-ops-trace-'))
  mkdirSync(join(dir, 'pg_wal'))
  mkdirSync(join(dir, 'conf'))
  const segment = Buffer.alloc(16 * 1024 * 1024)
  segment.writeUInt16LE(0xd110, 0)
  segment.writeUInt16LE(0x0002, 2)
  segment.writeUInt32LE(1, 4)
  segment.writeBigUInt64LE(7311234567890123456n, 24)
  segment.writeUInt32LE(16 * 1024 * 1024, 32)
  segment.writeUInt32LE(8192, 36)
  writeFileSync(join(dir, 'pg_wal', '000000010000000000000001'), segment)
  writeFileSync(join(dir, 'charge-ops.yaml'), `stack: from-cwd\nbackup:\n  repository: ${join(dir, 'repo')}\n`)
  writeFileSync(
    join(dir, 'conf', 'charge-ops.yaml'),
    `stack: from-config\nbackup:\n  repository: ${join(dir, 'repo')}\n`,
  )
  return dir
}

describe('start-up imports', () => {
  it.each([
    [
      'without --stack (charge-ops.yaml in the cwd)',
      ['wal', 'push', 'pg_wal/000000010000000000000001', '--repo', 'repo'],
      {},
    ],
    ['with --config only', ['wal', 'push', 'pg_wal/000000010000000000000001', '--config', 'conf/charge-ops.yaml'], {}],
    [
      'with CHARGE_OPS_CONFIG only',
      ['wal', 'push', 'pg_wal/000000010000000000000001'],
      {CHARGE_OPS_CONFIG: 'conf/charge-ops.yaml'},
    ],
  ])('wal push %s archives without loading oclif (archive_command hot path)', async (_form, args, env) => {
    const dir = walFixture()
    const {packages, exitCode} = await loadedPackages(args, dir, env)
    expect(exitCode).toBe(0)
    expect(packages.has('@oclif/core')).toBe(false)
    const stack = args.includes('--repo') ? 'from-cwd' : 'from-config'
    expect(existsSync(join(dir, 'repo', stack, 'wal', '00000001', '000000010000000000000001.zst'))).toBe(true)
  })

  it('wal push / wal fetch with --repo and --stack load no package at all (the config stack, zod and yaml, only when a flag is missing)', async () => {
    // PostgreSQL forks these once per 16 MB segment; a static import of the config loader cost ~100 ms a call
    const dir = walFixture()
    const push = await loadedPackages(
      ['wal', 'push', 'pg_wal/000000010000000000000001', '--repo', 'repo', '--stack', 's'],
      dir,
    )
    expect(push.exitCode).toBe(0)
    expect([...push.packages]).toEqual([])
    const fetch = await loadedPackages(
      ['wal', 'fetch', '000000010000000000000001', 'pg_wal/RECOVERYXLOG', '--repo', 'repo', '--stack', 's'],
      dir,
    )
    expect(fetch.exitCode).toBe(0)
    expect(
      readFileSync(join(dir, 'pg_wal', 'RECOVERYXLOG')).equals(
        readFileSync(join(dir, 'pg_wal', '000000010000000000000001')),
      ),
    ).toBe(true)
    expect([...fetch.packages]).toEqual([])
    // the tracer sees packages: the same push without --stack reads charge-ops.yaml through yaml
    expect(
      (await loadedPackages(['wal', 'push', 'pg_wal/000000010000000000000001', '--repo', 'repo'], dir)).packages.has(
        'yaml',
      ),
    ).toBe(true)
  })

  it('charge-ops --version answers without loading any package (not even oclif)', async () => {
    const {packages, exitCode} = await loadedPackages(['--version'])
    expect(exitCode).toBe(0)
    expect([...packages]).toEqual([])
  })

  it.each([[['--help']], [['config', 'validate', '--help']]])('charge-ops %s loads no heavy module', async (args) => {
    const {packages, exitCode} = await loadedPackages(args)
    expect(exitCode).toBe(0)
    expect(packages.has('@oclif/core')).toBe(true) // the tracer works
    expect(heavyIn(packages)).toEqual([])
  })

  it('config validate without --connect loads no heavy module; with --connect it loads pg and ioredis', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'charge-ops-trace-'))
    cpSync(join(root, 'test', 'fixtures', 'config', 'good'), dir, {recursive: true})
    // git does not keep 0600 modes: make the secret-holding files private as a real install has them
    for (const secretFile of ['.env', 'redis.conf']) chmodSync(join(dir, secretFile), 0o600)
    const offline = await loadedPackages(['config', 'validate', '--host-ram', '16GB'], dir)
    expect(offline.exitCode).toBe(0)
    expect(heavyIn(offline.packages)).toEqual([])

    writeFileSync(
      join(dir, 'refused.env'),
      'DATABASE_URL=postgresql://u:p@127.0.0.1:1/db\nREDIS_URL=redis://127.0.0.1:1/0\nSECRET_KEY=0123456789abcdef0123456789abcdef01\n',
    )
    const online = await loadedPackages(['config', 'validate', 'refused.env', '--connect', '--timeout', '2'], dir)
    expect(online.exitCode).toBe(5)
    expect(heavyIn(online.packages).sort()).toEqual(['ioredis', 'pg'])
  })
})
