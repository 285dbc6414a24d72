/**
 * `backup base` (native engine): pg_basebackup streamed as a tar (`-D - -Ft -X none`), through
 * `zstd`, straight into the repository — no local staging copy. The WAL the backup needs comes
 * from the archive (archive_command = charge-ops wal push), so before writing the manifest we
 * wait until the backup's last segment is archived: a base backup whose WAL is not in the
 * repository is not restorable and is never marked complete.
 */
import {ConfigError, ExternalCommandError, UnreachableError} from '../errors.js'
import type {Logger} from '../output/logger.js'
import {newBackupId, partKey, writeManifest, type BackupManifest} from '../repository/manifest.js'
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

/** Reads start / stop positions from `pg_basebackup -v` stderr. */
export function parseBasebackupLog(stderr: string): BasebackupPositions | undefined {
  const start = /write-ahead log start point: ([0-9A-F]+\/[0-9A-F]+) on timeline (\d+)/i.exec(stderr)
  const stop = /write-ahead log end point: ([0-9A-F]+\/[0-9A-F]+)/i.exec(stderr)
  if (!start || !stop) return undefined
  return {startLsn: start[1], timeline: Number(start[2]), stopLsn: stop[1]}
}

/** The segments a base backup needs, start to stop (inclusive), as PostgreSQL names them. */
export function baseWalSegments(timeline: number, startLsn: string, stopLsn: string): string[] {
  const out: string[] = []
  for (let s = segnoOf(parseLsn(startLsn)); s <= segnoBefore(parseLsn(stopLsn)); s++) out.push(segmentName(timeline, s))
  return out
}

export async function backupBase(options: BaseBackupOptions): Promise<BackupManifest> {
  const {storage, stack, logger} = options
  const now = options.now ?? (() => new Date())
  const {parseDatabaseUrl, libpqEnv, withClient} = await import('../postgres/connection.js')
  const target = parseDatabaseUrl(options.databaseUrl)

  const server = await withClient(target, async (client) => {
    const {rows} = await client.query<{sysid: string; version: string; mode: string; command: string; level: string}>(
      `SELECT (SELECT system_identifier::text FROM pg_control_system()) AS sysid, current_setting('server_version') AS version,
              current_setting('archive_mode') AS mode, current_setting('archive_command') AS command, current_setting('wal_level') AS level`,
    )
    return rows[0]
  })
  if (server.mode === 'off' || !server.command || server.command === '(disabled)') {
    throw new ConfigError('archive_mode / archive_command are not set: a base backup without archived WAL cannot be restored', {
      code: 'WAL_ARCHIVE_OFF',
      hint: 'Configure archiving first (`charge-ops wal archive-command` prints the lines), restart PostgreSQL, run `charge-ops wal check`.',
    })
  }
  const major = Number(server.version.split('.')[0])
  await ensureClusterIdentity(storage, stack, {systemIdentifier: server.sysid, postgresMajor: major}, 'this server (backup base)')

  const {acquireLock} = await import('../repository/lock.js')
  const release = await acquireLock(storage, stack, {command: 'backup base'})
  try {
    const startedAt = now()
    const id = newBackupId('base', startedAt)
    const {startChild} = await import('./physical-process.js')
    const env = {...process.env, ...libpqEnv(target)}
    const level = options.compressionLevel ?? 1
    logger.info(`backup ${id}: pg_basebackup from ${target.host}:${target.port} → ${storage.location}`)
    const basebackup = startChild('pg_basebackup', ['-D', '-', '-Ft', '-X', 'none', '-c', 'fast', '-v', '--label', `charge-ops ${id}`], {env, purpose: 'base backup'})
    const zstd = startChild('zstd', ['-q', `-${level}`, '-T0', '-c'], {purpose: 'compression'})
    basebackup.child.stdout!.pipe(zstd.child.stdin!)
    const progress = options.progress?.(`backup ${id}`)
    let raw = 0
    basebackup.child.stdout!.on('data', (chunk: Buffer) => {
      raw += chunk.length
      progress?.add(chunk.length)
    })
    const key = partKey(stack, id, 'base.tar.zst')
    let stored: {bytes: number; sha256: string}
    try {
      ;[stored] = await Promise.all([storage.put(key, zstd.child.stdout!, {}), basebackup.done, zstd.done])
    } catch (error) {
      basebackup.child.kill('SIGTERM')
      zstd.child.kill('SIGTERM')
      await storage.delete(key).catch(() => {})
      const err = basebackup.stderr()
      if (/could not connect|Connection refused|no pg_hba|authentication failed/i.test(err)) {
        throw new UnreachableError(`pg_basebackup cannot connect: ${err.trim().split('\n').slice(-3).join(' ')}`, {code: 'PG_UNREACHABLE', hint: 'pg_basebackup needs a replication connection: a role with REPLICATION and a `host replication` line in pg_hba.conf.'})
      }
      throw error
    }
    const positions = parseBasebackupLog(basebackup.stderr())
    if (!positions) throw new ExternalCommandError('pg_basebackup', `pg_basebackup did not report its WAL positions:\n${basebackup.stderr().slice(-1000)}`)
    const finishedAt = now()
    progress?.done(`${raw} bytes → ${stored.bytes} stored`)

    // The backup is only restorable once its WAL (start → stop) is in the archive.
    const segments = baseWalSegments(positions.timeline, positions.startLsn, positions.stopLsn)
    const last = segments.at(-1)!
    const deadline = Date.now() + (options.walTimeoutSec ?? 120) * 1000
    logger.info(`waiting for ${last} (the backup's last WAL segment) to be archived`)
    while (!(await findWalObject(storage, stack, parseWalFileName(last)!))) {
      if (Date.now() > deadline) {
        throw new ExternalCommandError('archive_command', `the base backup's WAL ${last} was not archived within ${options.walTimeoutSec ?? 120}s; backup ${id} is left incomplete (no manifest)`, {
          hint: 'Check archive_command in the server log and run `charge-ops wal check`.',
        })
      }
      await new Promise((resolve) => setTimeout(resolve, 250))
    }

    const {run} = await import('../exec.js')
    const toolVersion = (await run('pg_basebackup', ['--version'])).stdout.trim()
    return await writeManifest(storage, stack, {
      formatVersion: 1,
      id,
      kind: 'base',
      stack,
      startedAt: startedAt.toISOString(),
      finishedAt: finishedAt.toISOString(),
      durationMs: finishedAt.getTime() - startedAt.getTime(),
      postgresVersion: server.version,
      tools: {pg_basebackup: toolVersion},
      compression: {algorithm: 'zstd', level},
      parts: [{name: 'base.tar.zst', component: 'base', bytes: stored.bytes, sha256: stored.sha256, compression: 'zstd', format: 'pg_basebackup-tar', contentBytes: raw}],
      base: {
        startLsn: positions.startLsn,
        stopLsn: positions.stopLsn,
        timeline: positions.timeline,
        startWalFile: segments[0],
        stopWalFile: last,
        systemIdentifier: server.sysid,
        engine: 'native',
        walSegments: segments,
        postgresMajor: major,
      },
    })
  } finally {
    await release()
  }
}
