#!/usr/bin/env node
// bench/wal-push (issue 17, item 3). `wal push` per segment against pgBackRest 2.45's
// `archive-push` on the same real WAL segments of a PostgreSQL 15 cluster, both run as the
// server's OS user, one process per segment from the data directory (as PostgreSQL's archiver
// runs archive_command), in the same run, interleaved segment by segment (rotating order):
//   charge-ops          wal push %p --repo R --stack S                          (sync)
//   charge-ops config   wal push %p --config charge-ops.yaml                    (sync, no --stack)
//   charge-ops async    the archive_command of `wal archive-command --async --process-max 2` (shell fast path, then wal push --async)
//   pgbackrest          pgbackrest --stanza=bench archive-push %p               (sync; compress-type zst level 1, as charge-ops)
//   pgbackrest async    the same with --archive-async --process-max 2
//   zstd -1             zstd -q -1 of the segment to a file (the compression alone, for scale)
// The async forms get a pg_wal of their own with archive_status/*.ready marks; after each call
// the mark turns .done, as PostgreSQL does. Budget (issue 17): charge-ops ≤ 1.0× pgBackRest per
// segment, sync and async. Prints the load average. Needs `apt-get install pgbackrest` (Debian: 2.45).
// Usage: npm run build && node --import tsx bench/wal-push.mjs [--segments 24]
import {spawnSync} from 'node:child_process'
import {
  chmodSync,
  chownSync,
  copyFileSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  renameSync,
  writeFileSync,
} from 'node:fs'
import {loadavg, cpus} from 'node:os'
import {join} from 'node:path'
import {ENTRY, log, numberArg} from './lib/preamble.mjs'

const SEGMENTS = numberArg('--segments', 24)

if (spawnSync('pgbackrest', ['version'], {encoding: 'utf8'}).status !== 0) {
  log('pgbackrest is not installed (apt-get install pgbackrest)')
  process.exit(2)
}
const {startPostgres, waitUntil} = await import('../test/support/index.ts')
const {archiveCommand} = await import('../src/wal/command-lines.ts')
const pg = await startPostgres({name: 'bench-push'})
const owner = pg.osUser ? {uid: pg.osUser.uid, gid: pg.osUser.gid} : {}
const own = (path) => pg.osUser && chownSync(path, pg.osUser.uid, pg.osUser.gid)
try {
  const load0 = loadavg()[0]
  const plain = pg.serverDir('plain')
  await pg.restart({
    archive_mode: 'on',
    wal_level: 'replica',
    archive_timeout: '0',
    archive_command: `cp %p ${plain}/%f`,
  })
  await pg.query(
    'CREATE TABLE samples (id bigserial PRIMARY KEY, session_id int, voltage_v float8, current_a float8, soc_pct float8)',
  )
  for (let i = 0; i < SEGMENTS; i++) {
    await pg.query(
      'INSERT INTO samples (session_id, voltage_v, current_a, soc_pct) SELECT g / 100, 300 + random() * 100, random() * 250, random() * 100 FROM generate_series(1, 110000) g',
    )
    await pg.query('SELECT pg_switch_wal()')
  }
  const segs = () =>
    readdirSync(plain)
      .filter((f) => /^[0-9A-F]{24}$/.test(f))
      .sort()
  await waitUntil(async () => segs().length >= SEGMENTS, {timeoutMs: 300_000, what: 'segments archived'})
  const names = segs().slice(-SEGMENTS)
  log(`${names.length} real segments (${names[0]} … ${names.at(-1)}) — load ${load0.toFixed(1)}`)

  // one pg_wal (+ archive_status) per form, so the async forms see their own .ready marks
  const walOf = (form) => {
    const dir = pg.serverDir(`${form}-data`)
    const wal = join(dir, 'pg_wal')
    mkdirSync(join(wal, 'archive_status'), {recursive: true})
    for (const name of names) {
      copyFileSync(join(plain, name), join(wal, name))
      writeFileSync(join(wal, 'archive_status', `${name}.ready`), '')
    }
    for (const p of [
      wal,
      join(wal, 'archive_status'),
      ...readdirSync(wal).map((f) => join(wal, f)),
      ...readdirSync(join(wal, 'archive_status')).map((f) => join(wal, 'archive_status', f)),
    ])
      own(p)
    return {dir, wal}
  }
  const conf = join(pg.serverDir('conf'), 'charge-ops.yaml')
  writeFileSync(conf, `stack: bench\nbackup:\n  repository: ${pg.serverDir('repo-config')}\n`)
  own(conf)

  // pgBackRest: one stanza per form (its own repository), created against the running cluster
  const pgbr = (form, extra = {}) => {
    const dir = pg.serverDir(`pgbr-${form}`)
    const file = join(dir, 'pgbackrest.conf')
    const lines = [
      '[global]',
      `repo1-path=${join(dir, 'repo')}`,
      'compress-type=zst',
      'compress-level=1',
      `lock-path=${join(dir, 'lock')}`,
      `spool-path=${join(dir, 'spool')}`,
      'log-level-console=warn',
      'log-level-file=off',
      ...Object.entries(extra).map(([k, v]) => `${k}=${v}`),
      '[bench]',
      `pg1-path=${pg.dataDir}`,
      `pg1-port=${pg.port}`,
      `pg1-socket-path=${pg.baseDir}`,
      `pg1-user=${pg.user}`,
    ]
    writeFileSync(file, lines.join('\n') + '\n')
    own(file)
    const r = spawnSync('pgbackrest', [`--config=${file}`, '--stanza=bench', 'stanza-create'], {
      encoding: 'utf8',
      ...owner,
      env: {PATH: process.env.PATH, PGPASSWORD: pg.password},
    })
    if (r.status !== 0) throw new Error(`pgbackrest stanza-create: ${r.stderr || r.stdout}`)
    return file
  }

  const forms = []
  const add = (name, setup) => forms.push({name, ...setup(), ms: 0})
  add('charge-ops', () => {
    const {dir, wal} = walOf('co-sync')
    const repo = pg.serverDir('repo-sync')
    return {
      dir,
      run: (seg) => ['node', [ENTRY, 'wal', 'push', join(wal, seg), '--repo', repo, '--stack', 'bench']],
      wal,
    }
  })
  add('charge-ops config', () => {
    const {dir, wal} = walOf('co-config')
    return {dir, run: (seg) => ['node', [ENTRY, 'wal', 'push', join(wal, seg), '--config', conf]], wal}
  })
  add('charge-ops async', () => {
    // the archive_command line `wal archive-command --async` prints (shell fast path + charge-ops), run by /bin/sh from the data directory
    const {dir, wal} = walOf('co-async')
    // the archiver runs archive_command in a live server's data directory: its postmaster.pid (the
    // running cluster's) is what lets the call start the push-ahead worker beside it (src/wal/async-push.ts)
    copyFileSync(join(pg.dataDir, 'postmaster.pid'), join(dir, 'postmaster.pid'))
    own(join(dir, 'postmaster.pid'))
    const line = archiveCommand({
      repository: pg.serverDir('repo-async'),
      stack: 'bench',
      node: process.execPath,
      entry: ENTRY,
      asyncProcessMax: 2,
    })
    // stderr into a file, as the archiver's goes to the server log: the push-ahead worker the call
    // starts inherits it, and a pipe held open by it would make spawnSync wait for the worker to end
    // (PostgreSQL waits for the command's process only)
    const serverLog = join(dir, 'server.log')
    writeFileSync(serverLog, '')
    own(serverLog)
    return {
      dir,
      cwd: dir,
      run: (seg) => [
        '/bin/sh',
        ['-c', `${line.replaceAll('%p', `pg_wal/${seg}`).replaceAll('%f', seg)} 2>>${serverLog}`],
      ],
      wal,
      serverLog,
    }
  })
  add('pgbackrest', () => {
    const {dir, wal} = walOf('pgbr-sync-data')
    const file = pgbr('sync')
    return {
      dir,
      run: (seg) => ['pgbackrest', [`--config=${file}`, '--stanza=bench', 'archive-push', join(wal, seg)]],
      wal,
    }
  })
  add('pgbackrest async', () => {
    const {dir, wal} = walOf('pgbr-async-data')
    const file = pgbr('async', {'archive-async': 'y', 'process-max': '2'})
    return {
      dir,
      run: (seg) => [
        'pgbackrest',
        [`--config=${file}`, '--stanza=bench', `--pg1-path=${dir}`, 'archive-push', join(wal, seg)],
      ],
      wal,
    }
  })
  add('zstd -1', () => {
    const {dir, wal} = walOf('zstd')
    const out = pg.serverDir('zstd-out')
    return {dir, run: (seg) => ['zstd', ['-q', '-1', '-f', join(wal, seg), '-o', join(out, `${seg}.zst`)]], wal}
  })
  // pgBackRest's async form reads pg1-path/pg_wal: give it a data directory of its own (pg_control, PG_VERSION)
  const asyncData = forms.find((f) => f.name === 'pgbackrest async').dir
  mkdirSync(join(asyncData, 'global'), {recursive: true})
  copyFileSync(join(pg.dataDir, 'global', 'pg_control'), join(asyncData, 'global', 'pg_control'))
  copyFileSync(join(pg.dataDir, 'PG_VERSION'), join(asyncData, 'PG_VERSION'))
  for (const p of [join(asyncData, 'global'), join(asyncData, 'global', 'pg_control'), join(asyncData, 'PG_VERSION')])
    own(p)
  chmodSync(asyncData, 0o700)

  const env = {PATH: process.env.PATH, HOME: '/tmp', PGPASSWORD: pg.password}
  names.forEach((seg, i) => {
    for (let k = 0; k < forms.length; k++) {
      const form = forms[(i + k) % forms.length]
      const [file, args] = form.run(seg)
      const t0 = performance.now()
      const r = spawnSync(file, args, {cwd: form.cwd ?? pg.dataDir, encoding: 'utf8', env, ...owner})
      form.ms += performance.now() - t0
      if (r.status !== 0)
        throw new Error(
          `${form.name} ${seg}: exit ${r.status}: ${r.stderr}${form.serverLog ? readFileSync(form.serverLog, 'utf8') : ''}`,
        )
      renameSync(join(form.wal, 'archive_status', `${seg}.ready`), join(form.wal, 'archive_status', `${seg}.done`))
    }
  })
  const load1 = loadavg()[0]
  const asyncLog = forms.find((f) => f.serverLog)?.serverLog
  if (asyncLog) log(`async form's server log: ${readFileSync(asyncLog, 'utf8').trim() || '(empty)'}`)
  const per = Object.fromEntries(forms.map((f) => [f.name, f.ms / names.length]))
  log('')
  for (const f of forms) log(`${f.name.padEnd(18)} ${per[f.name].toFixed(0).padStart(5)} ms per segment`)
  log('')
  const ratio = (a, b, budget) =>
    `${(per[a] / per[b]).toFixed(2)}×${budget ? `   (budget ≤ ${budget}×: ${per[a] / per[b] <= budget ? 'PASS' : 'MISS'})` : ''}`
  log(`wal push / pgbackrest archive-push (sync):                 ${ratio('charge-ops', 'pgbackrest', 1.0)}`)
  log(`wal push --config (no --stack) / pgbackrest (sync):        ${ratio('charge-ops config', 'pgbackrest', 1.0)}`)
  log(
    `wal push --async / pgbackrest --archive-async:             ${ratio('charge-ops async', 'pgbackrest async', 1.0)}`,
  )
  log(`wal push / zstd -1 alone:                                  ${ratio('charge-ops', 'zstd -1')}`)
  log(`load average ${load0.toFixed(1)} → ${load1.toFixed(1)} on ${cpus().length} cores; ${names.length} segments`)
} finally {
  await pg.stop()
}
