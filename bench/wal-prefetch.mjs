#!/usr/bin/env node
// bench/wal-prefetch (issue 17, item 2). Recovery of ≥ 64 archived WAL segments by PostgreSQL 15
// from the same base backup, three ways, in one run:
//   cp        restore_command = 'cp /plain/%f %p' from an uncompressed local copy (the physical limit)
//   direct    charge-ops' restore_command (dist/src/wal/fetch-main.js), one repository read per call
//   prefetch  the same with --prefetch 8 (what `restore pitr` writes by default)
// Timed: pg_ctl start → the server says it promoted (src/restore/pitr-start.ts). Budget (issue 17):
// charge-ops ≤ 1.15× cp. Prints the ratios and the machine load.
// Usage: npm run build && node --import tsx bench/wal-prefetch.mjs [--segments 64] [--prefetch 8] [--legs cp,direct,prefetch]
import {spawnSync} from 'node:child_process'
import {appendFileSync, readdirSync} from 'node:fs'
import {loadavg} from 'node:os'
import {join} from 'node:path'
import {ENTRY, log, numberArg} from './lib/preamble.mjs'

const SEGMENTS = numberArg('--segments', 64)
const PREFETCH = numberArg('--prefetch', 8)
const LEGS = (
  process.argv.includes('--legs') ? process.argv[process.argv.indexOf('--legs') + 1] : 'cp,direct,prefetch'
).split(',')

const {startPostgres, freePort} = await import('../test/support/index.ts')
const {archiveCommand, confString} = await import('../src/wal/command-lines.ts')
const {restorePitr} = await import('../src/restore/pitr.ts')
const {parseTarget} = await import('../src/restore/pitr-target.ts')
const {startAndAwaitRecovery} = await import('../src/restore/pitr-start.ts')
const {LocalStorage} = await import('../src/repository/local-storage.ts')
const {silentLogger} = await import('../src/output/logger.ts')

const pg = await startPostgres({name: 'bench-prefetch', conf: {max_wal_size: '4GB', checkpoint_timeout: '30min'}})
const owner = pg.osUser ? {uid: pg.osUser.uid, gid: pg.osUser.gid} : undefined
const started = []
try {
  const load0 = loadavg()[0]
  const repo = pg.serverDir('repo')
  const plain = pg.serverDir('plain')
  const stack = 'bench'
  await pg.restart({
    archive_mode: 'on',
    wal_level: 'replica',
    archive_timeout: '0',
    archive_command: `${archiveCommand({repository: repo, stack, entry: ENTRY, node: process.execPath})} && cp %p ${plain}/%f`,
  })
  await pg.query(
    'CREATE TABLE samples (id bigserial PRIMARY KEY, session_id int, voltage_v float8, current_a float8, soc_pct float8)',
  )
  const base = spawnSync(process.execPath, [ENTRY, 'backup', 'base', '--repo', repo, '--stack', stack], {
    encoding: 'utf8',
    env: {PATH: process.env.PATH, HOME: '/tmp', DATABASE_URL: pg.url()},
    uid: owner?.uid,
    gid: owner?.gid,
  })
  if (base.status !== 0) throw new Error(`backup base failed: ${base.stderr}`)
  // ~14 MB of WAL per segment: real replay work, not empty switched segments
  for (let i = 0; i < SEGMENTS; i++) {
    await pg.query(
      'INSERT INTO samples (session_id, voltage_v, current_a, soc_pct) SELECT g / 100, 300 + random() * 100, random() * 250, random() * 100 FROM generate_series(1, 110000) g',
    )
    await pg.query('SELECT pg_switch_wal()')
  }
  const check = spawnSync(
    process.execPath,
    [ENTRY, 'wal', 'check', '--repo', repo, '--stack', stack, '--timeout', '600'],
    {encoding: 'utf8', env: {PATH: process.env.PATH, HOME: '/tmp', DATABASE_URL: pg.url()}},
  )
  if (check.status !== 0) throw new Error(`wal check failed: ${check.stderr}`)
  const expected = (await pg.query('SELECT count(*)::text AS n FROM samples'))[0].n
  log(
    `archived ${readdirSync(plain).filter((f) => /^[0-9A-F]{24}$/.test(f)).length} segments (plain copy) — load ${load0.toFixed(1)}`,
  )

  const recover = async (name, variant) => {
    const dataDir = join(pg.serverDir('restores'), name)
    const result = await restorePitr({
      storage: new LocalStorage(repo),
      stack,
      repository: repo,
      target: parseTarget({latest: true}),
      dataDir,
      archive: 'off',
      logger: silentLogger,
      entry: ENTRY,
      walPrefetch: variant === 'prefetch' ? PREFETCH : 0,
    })
    // the last restore_command in postgresql.auto.conf wins
    if (variant === 'cp')
      appendFileSync(join(dataDir, 'postgresql.auto.conf'), `restore_command = ${confString(`cp ${plain}/%f %p`)}\n`)
    const port = await freePort()
    started.push(dataDir)
    const outcome = await startAndAwaitRecovery(dataDir, port, 1200, owner, silentLogger, {databaseUrl: pg.url()})
    const {default: pgLib} = await import('pg')
    const c = new pgLib.Client({host: '127.0.0.1', port, user: pg.user, password: pg.password, database: 'postgres'})
    await c.connect()
    const n = (await c.query('SELECT count(*)::text AS n FROM samples')).rows[0].n
    await c.end()
    spawnSync(join(pg.binDir, 'pg_ctl'), ['stop', '-D', dataDir, '-m', 'immediate', '-w'], {
      uid: owner?.uid,
      gid: owner?.gid,
    })
    if (n !== expected) throw new Error(`${name}: ${n} rows recovered, expected ${expected}`)
    // the prefetcher's own account (server log): how many segments the shell fast path took from the spool
    const {readFileSync} = await import('node:fs')
    const accountRe = /prefetch \(timeline \d+\): [^;\n]+; (\d+) segment\(s\) prefetched, (\d+) handed over/
    for (let i = 0; variant === 'prefetch' && i < 40 && !accountRe.test(readFileSync(outcome.logFile, 'utf8')); i++)
      await new Promise((r) => setTimeout(r, 50))
    const account = accountRe.exec(readFileSync(outcome.logFile, 'utf8'))
    const restored = (readFileSync(outcome.logFile, 'utf8').match(/restored log file "[0-9A-F]{24}"/g) ?? []).length
    log(
      `${name.padEnd(9)} ${(outcome.durationMs / 1000).toFixed(1)} s  (${result.archive.segments} segments in the archive, ${restored} restored, rows exact${account ? `; ${account[2]} handed over from the spool` : ''}; load ${loadavg()[0].toFixed(1)})`,
    )
    return outcome.durationMs
  }
  const cp = await recover('cp', 'cp')
  const direct = LEGS.includes('direct') ? await recover('direct', 'direct') : undefined
  const prefetch = LEGS.includes('prefetch') ? await recover('prefetch', 'prefetch') : undefined
  const load1 = loadavg()[0]
  log('')
  if (direct) log(`recovery, charge-ops direct / cp:               ${(direct / cp).toFixed(2)}×`)
  if (prefetch)
    log(
      `recovery, charge-ops --prefetch ${PREFETCH} / cp:        ${(prefetch / cp).toFixed(2)}×   (budget ≤ 1.15×: ${prefetch / cp <= 1.15 ? 'PASS' : 'MISS'})`,
    )
  if (direct && prefetch)
    log(`recovery, --prefetch ${PREFETCH} / direct:                ${(prefetch / direct).toFixed(2)}×`)
  log(`load average ${load0.toFixed(1)} → ${load1.toFixed(1)} on ${(await import('node:os')).cpus().length} cores`)
} finally {
  for (const dataDir of started)
    spawnSync(join(pg.binDir, 'pg_ctl'), ['stop', '-D', dataDir, '-m', 'immediate', '-w'], {
      uid: owner?.uid,
      gid: owner?.gid,
    })
  await pg.stop()
}
