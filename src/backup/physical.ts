/**
 * `backup base` (native engine): pg_basebackup streamed as a tar (`-D - -Ft -X none`), through
 * `zstd`, straight into the repository — no local staging copy. The WAL the backup needs comes
 * from the archive (archive_command = charge-ops wal push), so before writing the manifest we
 * wait until the backup's last segment is archived: a base backup whose WAL is not in the
 * repository is not restorable and is never marked complete.
 */
import {ConfigError, UnreachableError} from '../errors.js'
import type {Logger} from '../output/logger.js'
import {
  newBackupId,
  partKey,
  writeManifest,
  type BackupManifest,
  type BackupManifestInput,
} from '../repository/manifest.js'
import type {RepositoryStorage} from '../repository/storage.js'
import {ensureClusterIdentity, findWalObject} from '../wal/archive.js'
import {parseLsn, parseWalFileName, segmentName, segnoBefore, segnoOf} from '../wal/names.js'

export interface BaseBackupOptions {
  storage: RepositoryStorage
  stack: string
  databaseUrl: string
  logger: Logger
  progress?: (label: string) => {add(n: number): void; done(note?: string): void}
  compressionLevel?: number
  /** seconds to wait for the backup's WAL to be archived */
  walTimeoutSec?: number
  now?: () => Date
}

export interface BasebackupPositions {
  startLsn: string
  timeline: number
  stopLsn: string
}

/** What every base backup records, whichever engine copied the files (pg_basebackup or the file engine). */
export interface BaseBackupFacts {
  id: string
  stack: string
  startedAt: Date
  finishedAt: Date
  server: {version: string; sysid: string}
  postgresMajor: number
  positions: {startLsn: string; stopLsn: string; timeline: number}
  /** the WAL segments from start to stop, all of them archived */
  segments: string[]
}

/** A base backup's manifest: the shared facts plus the engine's own tools, parts and base fields. */
export function baseManifest(
  facts: BaseBackupFacts,
  engine: Pick<BackupManifestInput, 'tools' | 'compression' | 'encryption' | 'parts'> & {
    base?: Partial<NonNullable<BackupManifestInput['base']>>
  },
): BackupManifestInput {
  return {
    formatVersion: 1,
    id: facts.id,
    kind: 'base',
    stack: facts.stack,
    startedAt: facts.startedAt.toISOString(),
    finishedAt: facts.finishedAt.toISOString(),
    durationMs: facts.finishedAt.getTime() - facts.startedAt.getTime(),
    postgresVersion: facts.server.version,
    tools: engine.tools,
    compression: engine.compression,
    ...(engine.encryption === undefined ? {} : {encryption: engine.encryption}),
    parts: engine.parts,
    base: {
      startLsn: facts.positions.startLsn,
      stopLsn: facts.positions.stopLsn,
      timeline: facts.positions.timeline,
      startWalFile: facts.segments[0],
      stopWalFile: facts.segments.at(-1),
      systemIdentifier: facts.server.sysid,
      engine: 'native',
      walSegments: facts.segments,
      postgresMajor: facts.postgresMajor,
      ...engine.base,
    },
  }
}

/**
 * Reads a backup history file (`<segment>.<offset>.backup`, archived by the server at the end of
 * every base backup): the authoritative start / stop positions. `pg_basebackup -X none` does not
 * print them.
 */
export function parseBackupHistory(
  text: string,
): (BasebackupPositions & {label?: string; stopTimeline?: number}) | undefined {
  const start = /START WAL LOCATION: ([0-9A-F]+\/[0-9A-F]+)/i.exec(text)
  const stop = /STOP WAL LOCATION: ([0-9A-F]+\/[0-9A-F]+)/i.exec(text)
  const tl = /START TIMELINE: (\d+)/.exec(text)
  if (!start || !stop) return undefined
  return {
    startLsn: start[1],
    stopLsn: stop[1],
    timeline: tl ? Number(tl[1]) : Number.parseInt(/\(file ([0-9A-F]{8})/.exec(text)?.[1] ?? '1', 16),
    label: /^LABEL: (.*)$/m.exec(text)?.[1],
    stopTimeline: /STOP TIMELINE: (\d+)/.exec(text) ? Number(/STOP TIMELINE: (\d+)/.exec(text)![1]) : undefined,
  }
}

/** Waits for the backup history file carrying `label` to be archived and returns its positions. */
async function awaitBackupHistory(
  storage: RepositoryStorage,
  stack: string,
  label: string,
  since: Date,
  timeoutSec: number,
): Promise<BasebackupPositions | undefined> {
  const {listArchive, readWal} = await import('../wal/archive.js')
  const deadline = Date.now() + timeoutSec * 1000
  const seen = new Set<string>()
  for (;;) {
    const candidates = (await listArchive(storage, stack)).filter(
      (f) => f.kind === 'backup' && !seen.has(f.key) && f.mtime.getTime() >= since.getTime() - 60_000,
    )
    for (const f of candidates.reverse()) {
      seen.add(f.key)
      const read = await readWal(storage, stack, f.name)
      const parsed = read ? parseBackupHistory(read.data.toString()) : undefined
      if (parsed?.label === label) return parsed
    }
    if (Date.now() > deadline) return undefined
    await new Promise((resolve) => setTimeout(resolve, 250))
  }
}

/** The segments a base backup needs, start to stop (inclusive), as PostgreSQL names them. */
export function baseWalSegments(timeline: number, startLsn: string, stopLsn: string): string[] {
  const out: string[] = []
  for (let s = segnoOf(parseLsn(startLsn)); s <= segnoBefore(parseLsn(stopLsn)); s++) out.push(segmentName(timeline, s))
  return out
}

export async function backupBase(options: BaseBackupOptions): Promise<BackupManifest> {
  const {trapSignals, BackupInterrupted} = await import('./physical-wait.js')
  const signals = trapSignals()
  try {
    return await backupBaseTrapped(options, signals.interrupted)
  } catch (error) {
    // cleaned up and unlocked: end the way the signal would have ended us
    if (error instanceof BackupInterrupted) signals.reraise(error.signal)
    throw error
  } finally {
    signals.dispose()
  }
}

type DatabaseTarget = ReturnType<typeof import('../postgres/connection.js').parseDatabaseUrl>

/** The server's identity, refused unless it archives WAL (a base backup without it cannot be restored). */
async function archivingServer(target: DatabaseTarget, storage: RepositoryStorage, stack: string) {
  const {withClient} = await import('../postgres/connection.js')
  const server = await withClient(target, async (client) => {
    const {rows} = await client.query<{sysid: string; version: string; mode: string; command: string; level: string}>(
      `SELECT (SELECT system_identifier::text FROM pg_control_system()) AS sysid, current_setting('server_version') AS version,
              current_setting('archive_mode') AS mode, current_setting('archive_command') AS command, current_setting('wal_level') AS level`,
    )
    return rows[0]
  })
  if (server.mode === 'off' || !server.command || server.command === '(disabled)') {
    throw new ConfigError(
      'archive_mode / archive_command are not set: a base backup without archived WAL cannot be restored',
      {
        code: 'WAL_ARCHIVE_OFF',
        hint: 'Configure archiving first (`charge-ops wal archive-command` prints the lines), restart PostgreSQL, run `charge-ops wal check`.',
      },
    )
  }
  const major = Number(server.version.split('.')[0])
  await ensureClusterIdentity(
    storage,
    stack,
    {systemIdentifier: server.sysid, postgresMajor: major},
    'this server (backup base)',
  )
  return {server, major}
}

interface BaseStream {
  storage: RepositoryStorage
  key: string
  id: string
  label: string
  env: NodeJS.ProcessEnv
  level: number
  walTimeout: number
  watch: import('./physical-wait.js').ArchiveWaitMonitor
  interrupted: Promise<NodeJS.Signals>
  progress?: {add(n: number): void; done(note?: string): void}
}

/**
 * pg_basebackup | zstd into the part's key. Ends early (children stopped, the server's wait ended,
 * the part deleted) when the server's wait for WAL archiving expires or a signal comes.
 */
async function streamBasePart(o: BaseStream): Promise<{stored: {bytes: number; sha256: string}; raw: number}> {
  const {startChild} = await import('./physical-process.js')
  const {BackupInterrupted, walNotArchivedError} = await import('./physical-wait.js')
  const {faultPoint} = await import('../core/faults.js')
  const basebackup = startChild(
    'pg_basebackup',
    ['-D', '-', '-Ft', '-X', 'none', '-c', 'fast', '-v', '--label', o.label],
    {env: o.env, purpose: 'base backup'},
  )
  const zstd = startChild('zstd', ['-q', `-${o.level}`, '-T0', '-c'], {purpose: 'compression'})
  basebackup.child.stdout!.pipe(zstd.child.stdin!)
  let raw = 0
  basebackup.child.stdout!.on('data', (chunk: Buffer) => {
    raw += chunk.length
    o.progress?.add(chunk.length)
    // kill point: pg_basebackup and zstd streaming, the part half written (first MiB passed)
    if (raw - chunk.length < 1 << 20 && raw >= 1 << 20)
      void faultPoint('backup.base.streaming', () => ({children: [basebackup.child.pid, zstd.child.pid], id: o.id}))
  })
  try {
    const streaming = Promise.all([o.storage.put(o.key, zstd.child.stdout!, {}), basebackup.done, zstd.done])
    streaming.catch(() => {})
    const outcome = await Promise.race([
      streaming.then((r) => ({kind: 'done' as const, stored: r[0]})),
      o.watch.expired.then(() => ({kind: 'expired' as const})),
      o.interrupted.then((signal) => ({kind: 'signal' as const, signal})),
    ])
    if (outcome.kind !== 'done') {
      // stop the client, then end the server's wait (its walsender does not notice the client is gone)
      basebackup.child.kill('SIGTERM')
      zstd.child.kill('SIGTERM')
      const archiver = await o.watch.abort()
      await streaming.catch(() => {})
      await o.storage.delete(o.key).catch(() => {})
      if (outcome.kind === 'signal') throw new BackupInterrupted(outcome.signal)
      throw walNotArchivedError(
        o.id,
        "the server's wait for the backup's last WAL segment to be archived did not end",
        o.walTimeout,
        archiver,
      )
    }
    return {stored: outcome.stored, raw}
  } catch (error) {
    basebackup.child.kill('SIGTERM')
    zstd.child.kill('SIGTERM')
    await o.storage.delete(o.key).catch(() => {})
    if (error instanceof BackupInterrupted || (error as {code?: string}).code === 'BACKUP_WAL_NOT_ARCHIVED') throw error
    const err = basebackup.stderr()
    if (/could not connect|Connection refused|no pg_hba|authentication failed/i.test(err)) {
      throw new UnreachableError(`pg_basebackup cannot connect: ${err.trim().split('\n').slice(-3).join(' ')}`, {
        code: 'PG_UNREACHABLE',
        hint: 'pg_basebackup needs a replication connection: a role with REPLICATION and a `host replication` line in pg_hba.conf.',
      })
    }
    throw error
  }
}

/**
 * The backup is only restorable once its WAL (start → stop) is in the archive: the server archives
 * a backup history file after the stop segment; waits for ours (bounded too), then for the last segment.
 */
async function awaitBaseWal(
  storage: RepositoryStorage,
  stack: string,
  o: {
    id: string
    label: string
    startedAt: Date
    walTimeout: number
    watch: import('./physical-wait.js').ArchiveWaitMonitor
    interrupted: Promise<NodeJS.Signals>
  },
) {
  const {BackupInterrupted, walNotArchivedError} = await import('./physical-wait.js')
  const positions = await Promise.race([
    awaitBackupHistory(storage, stack, o.label, o.startedAt, o.walTimeout),
    o.interrupted.then((signal) => Promise.reject(new BackupInterrupted(signal))),
  ])
  const archiverNow = async () => (await o.watch.abort()) ?? undefined
  if (!positions)
    throw walNotArchivedError(
      o.id,
      "the backup's history file did not reach the repository",
      o.walTimeout,
      await archiverNow(),
    )
  const segments = baseWalSegments(positions.timeline, positions.startLsn, positions.stopLsn)
  const last = segments.at(-1)!
  if (!(await findWalObject(storage, stack, parseWalFileName(last)!)))
    throw walNotArchivedError(
      o.id,
      `WAL segment ${last} did not reach the repository`,
      o.walTimeout,
      await archiverNow(),
    )
  return {positions, segments}
}

async function backupBaseTrapped(
  options: BaseBackupOptions,
  interrupted: Promise<NodeJS.Signals>,
): Promise<BackupManifest> {
  const {storage, stack, logger} = options
  const now = options.now ?? (() => new Date())
  const {parseDatabaseUrl, libpqEnv} = await import('../postgres/connection.js')
  const target = parseDatabaseUrl(options.databaseUrl)
  const {server, major} = await archivingServer(target, storage, stack)

  const {acquireLock} = await import('../repository/lock.js')
  const release = await acquireLock(storage, stack, {command: 'backup base'})
  let monitor: import('./physical-wait.js').ArchiveWaitMonitor | undefined
  try {
    const startedAt = now()
    const id = newBackupId('base', startedAt)
    const label = `charge-ops ${id}`
    const {watchArchiveWait} = await import('./physical-wait.js')
    // PGAPPNAME names our walsender in pg_stat_activity (pg_basebackup's own name is only a fallback)
    const applicationName = `charge-ops backup base ${id}`
    const env = {...process.env, ...libpqEnv(target), PGAPPNAME: applicationName}
    const level = options.compressionLevel ?? 1
    const walTimeout = options.walTimeoutSec ?? 120
    logger.info(`backup ${id}: pg_basebackup from ${target.host}:${target.port} → ${storage.location}`)
    monitor = await watchArchiveWait(target, applicationName, walTimeout, logger)
    const watch = monitor
    const progress = options.progress?.(`backup ${id}`)
    const {stored, raw} = await streamBasePart({
      storage,
      key: partKey(stack, id, 'base.tar.zst'),
      id,
      label,
      env,
      level,
      walTimeout,
      watch,
      interrupted,
      progress,
    })
    const finishedAt = now()
    progress?.done(`${raw} bytes → ${stored.bytes} stored`)

    logger.info(`waiting for the backup's WAL and history file to be archived (up to ${walTimeout}s)`)
    const {positions, segments} = await awaitBaseWal(storage, stack, {
      id,
      label,
      startedAt,
      walTimeout,
      watch,
      interrupted,
    })
    await watch.stop()

    const {run} = await import('../core/proc/exec.js')
    const toolVersion = (await run('pg_basebackup', ['--version'])).stdout.trim()
    const {faultPoint} = await import('../core/faults.js')
    // kill point: the part stored and its WAL archived, the manifest (what makes it restorable) not yet written
    await faultPoint('backup.base.before-manifest', () => ({id}))
    return await writeManifest(
      storage,
      stack,
      baseManifest(
        {id, stack, startedAt, finishedAt, server, postgresMajor: major, positions, segments},
        {
          tools: {pg_basebackup: toolVersion},
          compression: {algorithm: 'zstd', level},
          parts: [
            {
              name: 'base.tar.zst',
              component: 'base',
              bytes: stored.bytes,
              sha256: stored.sha256,
              compression: 'zstd',
              format: 'pg_basebackup-tar',
              contentBytes: raw,
            },
          ],
        },
      ),
    )
  } finally {
    await monitor?.stop()
    await release()
  }
}
