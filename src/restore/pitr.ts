/**
 * `restore pitr` (native engine): pick the newest base backup before the target, prove the
 * archive holds every segment from that backup on (no hole), stream the tar into an EMPTY data
 * directory, write the recovery settings, and only then put `global/pg_control` in place — a
 * directory without it cannot be started, so an interrupted restore is never mistaken for a
 * database. With `start`, run the server, wait for the end of recovery and report where it
 * stopped (src/restore/pitr-start.ts: decided by the server, not by its log); PostgreSQL 15
 * refuses to promote when a target lies beyond the archive, and that failure is surfaced, never
 * reported as done.
 */
import {createHash} from 'node:crypto'
import {existsSync} from 'node:fs'
import {appendFile, chmod, chown, mkdir, open, readdir, readFile, rename, rm, stat, writeFile} from 'node:fs/promises'
import {dirname, join, resolve} from 'node:path'
import {Transform, Writable} from 'node:stream'
import {pipeline} from 'node:stream/promises'

import {faultPoint} from '../core/faults.js'
import {ChecksFailedError, UsageError} from '../errors.js'
import type {Logger} from '../output/logger.js'
import {backupIdTime, findPart, listBackups, partKey, type BackupManifest} from '../repository/manifest.js'
import type {RepositoryStorage} from '../repository/storage.js'
import {listArchive, readClusterIdentity, readWal} from '../wal/archive.js'
import {restoreCommand} from '../wal/command-lines.js'
import {DEFAULT_SPOOL_DIR} from '../wal/spool.js'
import {checkContinuity, type ContinuityReport} from '../wal/continuity.js'
import {lastArchivedCommit, targetMicros} from '../wal/last-commit.js'
import {formatLsn, parseLsn, segnoOf} from '../wal/names.js'
import {describeTarget, recoveryConf, type RecoveryTarget} from './pitr-target.js'
import {startAndAwaitRecovery, type Owner, type RecoveryOutcome} from './pitr-start.js'

export {parseRecoveryLog, startAndAwaitRecovery, type RecoveryOutcome} from './pitr-start.js'

export const PARTIAL_CONTROL = 'global/pg_control.charge-ops-partial'

/**
 * The mark of a restore writing a data directory: `{owner}` (src/core/proc/pid.ts: pid, /proc start
 * time, host, command), written before the first file and removed once the directory is complete,
 * before the server is started. A directory holding it was filled by a charge-ops restore that never
 * finished and never started a server on it: when that run is dead, the rerun clears it and restores
 * again (a kill -9 of `restore pitr` used to leave a directory every rerun refused as not empty).
 */
export const RESTORE_MARK = 'charge-ops-restore.json'

export interface PitrOptions {
  storage: RepositoryStorage
  stack: string
  /** repository location as written into restore_command (absolute path or s3:// URL) */
  repository: string
  awsEnvFile?: string
  target: RecoveryTarget
  dataDir: string
  backupId?: string
  archive?: 'keep' | 'off'
  targetTimeline?: string
  start?: {port: number; timeoutSec?: number}
  /** port written into postgresql.auto.conf (default: start.port) */
  port?: number
  logger: Logger
  progress?: (label: string, total?: number) => {add(n: number): void; done(note?: string): void}
  /** charge-ops entry for restore_command (tests / installs); default this installation */
  entry?: string
  /** with `start`: credentials to ask the restored server whether it promoted (host/port replaced) */
  databaseUrl?: string
  /** file-engine backups: the key their blocks were encrypted with, and parallel block readers */
  encryption?: import('../backup/encryption.js').EncryptionKey
  jobs?: number
  /** restore_command prefetches this many segments ahead (`wal fetch --prefetch`); 0/undefined: none */
  walPrefetch?: number
  /** the command named by the data directory's RESTORE_MARK (default `restore pitr`) */
  command?: string
}

export interface PitrResult {
  backupId: string
  baseStopLsn: string
  target: string
  dataDir: string
  archive: {timeline: number; firstSegment: string; lastSegment: string; segments: number}
  restoreCommand: string
  started: boolean
  recovery?: RecoveryOutcome
}

// ------------------------------------------------------------------ data directory safety

export async function assertRestorableDataDir(dataDir: string, logger?: Logger): Promise<{exists: boolean}> {
  if (existsSync(join(dataDir, 'postmaster.pid'))) {
    throw new UsageError(`${dataDir} belongs to a server (postmaster.pid exists): refusing to restore over it`, {
      code: 'PITR_DATADIR_RUNNING',
      hint: 'Restore into a new, empty directory; stop and move the old cluster aside only after the restored one is verified.',
    })
  }
  let entries: string[]
  try {
    const s = await stat(dataDir)
    if (!s.isDirectory()) throw new UsageError(`${dataDir} is not a directory`, {code: 'PITR_DATADIR'})
    entries = (await readdir(dataDir)).filter((e) => e !== 'lost+found')
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') {
      if (!existsSync(dirname(dataDir)))
        throw new UsageError(`the parent of ${dataDir} does not exist`, {code: 'PITR_DATADIR'})
      return {exists: false}
    }
    throw error
  }
  if (entries.length > 0 && (await clearInterruptedRestore(dataDir, entries, logger))) return {exists: true}
  if (entries.length > 0) {
    const interrupted = existsSync(join(dataDir, PARTIAL_CONTROL))
    throw new UsageError(
      `${dataDir} is not empty (${entries.length} entries${interrupted ? ': an interrupted charge-ops restore — it has no global/pg_control and cannot start' : ''}); refusing to restore into it`,
      {
        code: 'PITR_DATADIR_NOT_EMPTY',
        hint: interrupted
          ? `Remove ${dataDir} and rerun.`
          : 'Restore into a new, empty directory. Nothing was changed.',
      },
    )
  }
  return {exists: true}
}

/**
 * A directory a dead charge-ops restore was writing (its RESTORE_MARK names a run that no longer
 * runs, and no server runs on it): emptied, so the rerun restores again. True when cleared. A mark
 * naming a live run — another restore into the same directory — is refused: never two writers.
 */
async function clearInterruptedRestore(dataDir: string, entries: string[], logger?: Logger): Promise<boolean> {
  if (!entries.includes(RESTORE_MARK)) return false
  const {ownerState, describeOwner} = await import('../core/proc/pid.js')
  let owner: import('../core/proc/pid.js').ProcessOwner | undefined
  try {
    owner = (
      JSON.parse(await readFile(join(dataDir, RESTORE_MARK), 'utf8')) as {
        owner?: import('../core/proc/pid.js').ProcessOwner
      }
    ).owner
  } catch {
    owner = undefined // torn or foreign: not proof that the directory is ours to clear
  }
  if (!owner || typeof owner.pid !== 'number') return false
  if (ownerState(owner) !== 'dead') {
    throw new UsageError(`${dataDir} is being written by ${describeOwner(owner)}: refusing to restore into it`, {
      code: 'PITR_DATADIR_NOT_EMPTY',
      hint: `Wait for that run to finish, or restore into another directory. If it runs on another host and is gone, remove ${dataDir} and rerun.`,
      data: {owner},
    })
  }
  logger?.warn(
    `${dataDir} holds an unfinished restore left by ${describeOwner(owner)}, which no longer runs (no server was started on it): cleared, restoring again`,
  )
  for (const entry of entries) await rm(join(dataDir, entry), {recursive: true, force: true})
  return true
}

// ------------------------------------------------------------------ choosing a base backup

/**
 * A base backup whose manifest cannot be read or parsed is never skipped silently: if it could be
 * the one to choose (newer than the choice; for a time target, started before it), the restore is
 * refused — naming it — rather than falling back to an older backup and replaying more WAL from
 * further back, or missing data the unreadable one holds. `--backup ID` chooses explicitly.
 */
export function chooseBaseBackup(
  bases: BackupManifest[],
  target: RecoveryTarget,
  backupId?: string,
  invalid: {id: string; error: string; unreadable?: boolean}[] = [],
): BackupManifest {
  const usable = bases.filter((m) => m.kind === 'base' && m.base && (m.base.engine ?? 'native') === 'native')
  const damaged = invalid.filter((i) => /-base-/.test(i.id))
  const refuse = (bad: {id: string; error: string; unreadable?: boolean}, why: string) =>
    bad.unreadable
      ? new UsageError(`base backup ${bad.id}${why}: its manifest cannot be read — ${bad.error}`, {
          code: 'REPOSITORY_UNREADABLE',
          hint: `Fix its ownership (chown -R <repository owner>: <repository>) and rerun; or choose another backup explicitly with --backup.`,
          data: {backup: bad.id},
        })
      : new ChecksFailedError(`base backup ${bad.id}${why}: its manifest is damaged — ${bad.error}`, {
          code: 'MANIFEST_INVALID',
          hint: 'Run `charge-ops backup verify`; choose another backup explicitly with --backup.',
          data: {backup: bad.id},
        })
  if (backupId) {
    const bad = damaged.find((i) => i.id === backupId)
    if (bad) throw refuse(bad, '')
    const found = usable.find((m) => m.id === backupId)
    if (!found)
      throw new UsageError(`no complete native base backup ${backupId}`, {
        code: 'BACKUP_NOT_FOUND',
        hint: 'Run `charge-ops backup list`.',
      })
    return found
  }
  const newestFirst = [...usable].sort((a, b) => (a.id < b.id ? 1 : -1))
  let found: BackupManifest | undefined
  if (target.kind === 'time') found = newestFirst.find((m) => new Date(m.finishedAt).getTime() <= target.time.getTime())
  else if (target.kind === 'lsn') found = newestFirst.find((m) => parseLsn(m.base!.stopLsn) <= target.lsn)
  else found = newestFirst[0]
  const skipped = damaged.find(
    (i) =>
      (!found || i.id > found.id) &&
      (target.kind !== 'time' || (backupIdTime(i.id)?.getTime() ?? 0) <= target.time.getTime()),
  )
  if (skipped) throw refuse(skipped, found ? ` is newer than ${found.id}, the backup that would be used instead` : '')
  if (!found) {
    throw new UsageError(
      usable.length === 0
        ? 'no complete native base backup in the repository'
        : `no base backup finished before ${describeTarget(target)}`,
      {
        code: 'PITR_NO_BASE',
        hint:
          usable.length === 0
            ? 'Take one with `charge-ops backup base`.'
            : `The oldest base backup is ${newestFirst.at(-1)!.id}; a recovery cannot stop before its base backup ends.`,
      },
    )
  }
  return found
}

// ------------------------------------------------------------------ archive check

export async function checkArchiveFor(
  storage: RepositoryStorage,
  stack: string,
  base: BackupManifest,
  target: RecoveryTarget,
  targetTimeline?: string,
): Promise<ContinuityReport> {
  const archive = await listArchive(storage, stack)
  const histories = new Map<number, string>()
  for (const f of archive.filter((a) => a.kind === 'history')) {
    const read = await readWal(storage, stack, f.name)
    if (read) histories.set(f.timeline, read.data.toString())
  }
  const tl =
    targetTimeline && /^\d+$/.test(targetTimeline)
      ? Number(targetTimeline)
      : targetTimeline === 'current'
        ? base.base!.timeline
        : 'latest'
  const report = checkContinuity({
    archive,
    histories,
    baseTimeline: base.base!.timeline,
    baseStartLsn: parseLsn(base.base!.startLsn),
    baseStopLsn: parseLsn(base.base!.stopLsn),
    targetTimeline: tl,
  })
  if (report.baseIncomplete) {
    throw new ChecksFailedError(
      `WAL segment ${report.baseIncomplete}, needed to make base backup ${base.id} consistent, is missing from the archive`,
      {
        code: 'PITR_WAL_MISSING',
        hint: 'This base backup cannot be restored; choose an older one with --backup, and check archiving with `charge-ops wal check`.',
      },
    )
  }
  if (report.missing) {
    throw new ChecksFailedError(
      `WAL segment ${report.missing} is missing from the archive (segments after it exist): recovery would stop there and promote with data missing`,
      {
        code: 'PITR_WAL_MISSING',
        hint: `Find ${report.missing} (the server's pg_wal, another copy of the repository) and push it with \`charge-ops wal push\`; or recover to a target before it with --target-lsn/--target-time.`,
        data: {missing: report.missing, lastContiguous: report.lastSegment},
      },
    )
  }
  if (target.kind === 'lsn' && segnoOf(target.lsn) > report.lastSegno) {
    throw new ChecksFailedError(
      `target LSN ${formatLsn(target.lsn)} lies beyond the archived WAL (the archive ends with ${report.lastSegment})`,
      {
        code: 'PITR_TARGET_BEYOND_ARCHIVE',
        hint: 'Run `charge-ops wal check` on the source to archive the current segment, or pick an earlier target.',
      },
    )
  }
  // S3's Last-Modified has whole seconds (the object stored at 12:00:00.900 says 12:00:00.000): only
  // a target past the next second is beyond for sure; the pg_waldump check below decides the rest
  if (
    target.kind === 'time' &&
    report.newestArchivedAt &&
    target.time.getTime() >= report.newestArchivedAt.getTime() + 1000
  ) {
    throw new ChecksFailedError(
      `target time ${target.time.toISOString()} lies beyond the archived WAL (newest segment ${report.lastSegment} archived at ${report.newestArchivedAt.toISOString()})`,
      {
        code: 'PITR_TARGET_BEYOND_ARCHIVE',
        hint: 'Run `charge-ops wal check` on the source to archive the current segment, or pick an earlier target.',
      },
    )
  }
  if (target.kind === 'time') {
    // PostgreSQL stops a time target only before a later commit: without one in the archive it runs
    // out of WAL and refuses to promote — caught here, before anything is copied (and without --start
    // nobody would see it until the server was started by hand)
    const last = await lastArchivedCommit({
      storage,
      stack,
      path: report.path,
      timeline: report.timeline,
      firstSegment: report.firstSegment,
      lastSegno: report.lastSegno,
    })
    if (!last || last.micros <= targetMicros(target.time, target.text)) {
      throw new ChecksFailedError(
        `target time ${target.time.toISOString()} lies beyond the archived WAL: ${last ? `its last commit is ${last.text} (${last.segment}, LSN ${last.lsn})` : `no commit was archived after base backup ${base.id}`}, and recovery stops only before a commit later than the target`,
        {
          code: 'PITR_TARGET_BEYOND_ARCHIVE',
          hint: 'Run `charge-ops wal check` on the source to archive the current segment (once a transaction has committed after the target), pick an earlier target, or use --latest.',
          data: {lastCommit: last?.text, segment: last?.segment},
        },
      )
    }
  }
  return report
}

// ------------------------------------------------------------------ restore

/** As root, the restored files belong to whoever owns the target (or its parent): the server's OS user. */
export async function targetOwner(dataDir: string, exists: boolean): Promise<Owner | undefined> {
  if (typeof process.getuid !== 'function' || process.getuid() !== 0) return undefined
  const s = await stat(exists ? dataDir : dirname(dataDir))
  return {uid: s.uid, gid: s.gid}
}

async function writeDurable(path: string, text: string): Promise<void> {
  const handle = await open(path, 'w', 0o600)
  try {
    await handle.writeFile(text)
    await handle.sync()
  } finally {
    await handle.close()
  }
  await fsyncPath(dirname(path))
}

async function fsyncPath(path: string): Promise<void> {
  const handle = await open(path, 'r')
  try {
    await handle.sync()
  } finally {
    await handle.close()
  }
}

/**
 * The target directory private (and the server user's), marked as being restored by this run
 * until it is complete: a rerun tells a dead run's leftovers from a live run's work.
 */
async function claimDataDir(
  dataDir: string,
  exists: boolean,
  owner: Owner | undefined,
  backupId: string,
  command: string,
): Promise<string> {
  if (!exists) await mkdir(dataDir, {mode: 0o700})
  await chmod(dataDir, 0o700)
  if (owner) await chown(dataDir, owner.uid, owner.gid)
  const mark = join(dataDir, RESTORE_MARK)
  const {currentOwner} = await import('../core/proc/pid.js')
  await writeDurable(
    mark,
    JSON.stringify({owner: currentOwner(command), backupId, startedAt: new Date().toISOString()}) + '\n',
  )
  if (owner) await chown(mark, owner.uid, owner.gid)
  return mark
}

/** Recovery settings, then recovery.signal, then pg_control under its real name — each durable before the next. */
async function writeRecoverySettings(dataDir: string, owner: Owner | undefined, settings: string): Promise<void> {
  const autoConf = join(dataDir, 'postgresql.auto.conf')
  await appendFile(autoConf, settings)
  const signal = join(dataDir, 'recovery.signal')
  await writeFile(signal, '', {mode: 0o600})
  for (const stale of ['postmaster.pid', 'postmaster.opts', 'standby.signal']) {
    if (existsSync(join(dataDir, stale)))
      await rename(join(dataDir, stale), join(dataDir, `${stale}.charge-ops-removed`))
  }
  await mkdir(join(dataDir, 'pg_wal', 'archive_status'), {recursive: true, mode: 0o700})
  if (owner) {
    for (const p of [autoConf, signal, join(dataDir, 'pg_wal'), join(dataDir, 'pg_wal', 'archive_status')])
      await chown(p, owner.uid, owner.gid)
  }
  const {run} = await import('../core/proc/exec.js')
  await run('sync', ['-f', dataDir], {purpose: 'flushing the restored files'})
  await rename(join(dataDir, PARTIAL_CONTROL), join(dataDir, 'global', 'pg_control'))
  await fsyncPath(join(dataDir, 'global'))
}

export async function restorePitr(options: PitrOptions): Promise<PitrResult> {
  const {storage, stack, logger} = options
  const dataDir = resolve(options.dataDir)
  const {exists} = await assertRestorableDataDir(dataDir, logger)

  const {complete, invalid} = await listBackups(storage, stack, {kind: 'base'})
  const base = chooseBaseBackup(complete, options.target, options.backupId, invalid)
  const {isFileBackup} = await import('../backup/base-files.js')
  const fileBackup = isFileBackup(base)
  const part = fileBackup ? undefined : (findPart(base, 'base.tar.zst') ?? findPart(base, 'base'))
  if (!part && !fileBackup)
    throw new ChecksFailedError(`base backup ${base.id} has no base.tar.zst part`, {code: 'MANIFEST_INVALID'})
  const report = await checkArchiveFor(storage, stack, base, options.target, options.targetTimeline)
  logger.info(
    `base backup ${base.id} (stop ${base.base!.stopLsn}, timeline ${base.base!.timeline}); archive continuous ${report.firstSegment} … ${report.lastSegment} (${report.segmentCount} segments), recovering to ${describeTarget(options.target)}`,
  )

  const owner = await targetOwner(dataDir, exists)
  if (options.start && owner?.uid === 0) {
    throw new UsageError(`${exists ? dataDir : dirname(dataDir)} belongs to root: PostgreSQL cannot run as root`, {
      code: 'PITR_DATADIR_OWNER',
      hint: `Create ${dataDir} owned by the postgres user (install -d -o postgres -m 700 ${dataDir}).`,
    })
  }
  const mark = await claimDataDir(dataDir, exists, owner, base.id, options.command ?? 'restore pitr')

  if (fileBackup) {
    const {restoreFileBackup} = await import('./pitr-files.js')
    const restored = await restoreFileBackup({
      storage,
      manifest: base,
      dataDir,
      controlPath: join(dataDir, PARTIAL_CONTROL),
      owner,
      encryption: options.encryption,
      jobs: options.jobs,
      progress: options.progress,
    })
    logger.info(
      `restored ${restored.files} files (${restored.bytes} bytes) from ${restored.backups.join(', ')}; every block's checksum verified`,
    )
  } else await extractTar(storage, stack, base, part!, dataDir, owner, options.progress)
  if (!existsSync(join(dataDir, PARTIAL_CONTROL)))
    throw new ChecksFailedError(`base backup ${base.id} holds no global/pg_control`, {code: 'PITR_BASE_CORRUPT'})
  // kill point (docs/conventions.md): the base written, pg_control under its partial name — the
  // directory cannot be started; no recovery settings yet
  await faultPoint('restore.pitr.extracted')

  // recovery settings, then recovery.signal, then pg_control — each durable before the next
  // the prefetch spool is keyed by the repository's cluster too (src/wal/spool.ts)
  const systemIdentifier = options.walPrefetch
    ? (await readClusterIdentity(storage, stack))?.systemIdentifier
    : undefined
  const command = restoreCommand({
    repository: options.repository,
    stack,
    awsEnvFile: options.awsEnvFile,
    entry: options.entry,
    fast: true,
    prefetch: options.walPrefetch,
    systemIdentifier,
  })
  await writeRecoverySettings(
    dataDir,
    owner,
    recoveryConf({
      target: options.target,
      restoreCommand: command,
      port: options.start?.port ?? options.port,
      archive: options.archive,
      targetTimeline: options.targetTimeline,
    }),
  )
  // kill point: complete and startable, recovery settings in place, no server ever started on it
  await faultPoint('restore.pitr.before-start')
  // from here on a server may run on it: no longer ours to clear
  await rm(mark, {force: true})
  await fsyncPath(dataDir)

  const result: PitrResult = {
    backupId: base.id,
    baseStopLsn: base.base!.stopLsn,
    target: describeTarget(options.target),
    dataDir,
    archive: {
      timeline: report.timeline,
      firstSegment: report.firstSegment,
      lastSegment: report.lastSegment,
      segments: report.segmentCount,
    },
    restoreCommand: command,
    started: false,
  }
  if (!options.start) {
    logger.info(`restored into ${dataDir}; start it with pg_ctl -D ${dataDir} start (recovery runs, then promotes)`)
    return result
  }
  result.recovery = await startAndAwaitRecovery(
    dataDir,
    options.start.port,
    options.start.timeoutSec ?? 600,
    owner,
    logger,
    {databaseUrl: options.databaseUrl},
  )
  result.started = true
  // recovery is over: what the prefetch spooled beyond the target is never read
  if (options.walPrefetch) await rm(join(dataDir, DEFAULT_SPOOL_DIR, 'fetch'), {recursive: true, force: true})
  return result
}

/** The pg_basebackup tar: repository → sha256 → zstd -d → tar -x (pg_control under a temporary name). */
async function extractTar(
  storage: RepositoryStorage,
  stack: string,
  base: BackupManifest,
  part: NonNullable<ReturnType<typeof findPart>>,
  dataDir: string,
  owner: Owner | undefined,
  progressFactory?: PitrOptions['progress'],
): Promise<void> {
  // stream: repository → sha256 → zstd -d → tar -x (pg_control under a temporary name)
  const {startChild} = await import('../backup/physical-process.js')
  const asOwner = owner ? {uid: owner.uid, gid: owner.gid} : {}
  const zstd = startChild('zstd', ['-q', '-d', '-c'], {...asOwner, purpose: 'decompressing the base backup'})
  // --ignore-zeros: read to EOF, never exit into our pipe's last write (see restore/logical.ts)
  const tar = startChild(
    'tar',
    [
      '-x',
      '-f',
      '-',
      '--ignore-zeros',
      '-C',
      dataDir,
      '--no-same-owner',
      `--transform=s,^global/pg_control$,${PARTIAL_CONTROL},`,
    ],
    {
      ...asOwner,
      stdio: ['pipe', 'ignore', 'pipe'],
      purpose: 'extracting the base backup',
    },
  )
  zstd.child.stdout!.pipe(tar.child.stdin!)
  const hash = createHash('sha256')
  const progress = progressFactory?.(`restore ${base.id}`, part.bytes)
  const hasher = new Transform({
    transform(chunk: Buffer, _enc, callback) {
      hash.update(chunk)
      progress?.add(chunk.length)
      callback(null, chunk)
    },
  })
  const key = partKey(stack, base.id, part.name)
  const corrupt = (digest: string) =>
    new ChecksFailedError(
      `base backup ${base.id}: ${part.name} checksum mismatch (manifest ${part.sha256.slice(0, 12)}…, read ${digest.slice(0, 12)}…); ${dataDir} was left without global/pg_control and cannot start`,
      {
        code: 'PITR_BASE_CORRUPT',
        hint: `Remove ${dataDir}; restore an older base backup with --backup, and run \`charge-ops backup verify\`.`,
        data: {backup: base.id, part: part.name},
      },
    )
  try {
    await Promise.all([pipeline(await storage.get(key), hasher, zstd.child.stdin!), zstd.done, tar.done])
  } catch (error) {
    // a damaged part usually kills zstd ("Decoding error", "Restored data doesn't match checksum")
    // before the stream ends and our digest is known: hash the stored part in full, so the
    // user hears "this backup is corrupt" (ours, with the next step) rather than zstd's words —
    // and any other failure (disk full, a killed tar) keeps its own error
    progress?.done()
    const whole = createHash('sha256')
    await pipeline(
      await storage.get(key),
      new Writable({write: (chunk: Buffer, _enc, cb) => (whole.update(chunk), cb())}),
    )
    const digest = whole.digest('hex')
    if (digest !== part.sha256) throw corrupt(digest)
    throw error
  }
  const digest = hash.digest('hex')
  progress?.done()
  if (digest !== part.sha256) throw corrupt(digest)
}

// ------------------------------------------------------------------ start and watch

/**
 * Server-side binaries (pg_ctl, pg_controldata) are not on PATH on Debian: look in
 * CHARGE_OPS_PG_BINDIR, then /usr/lib/postgresql/<major>/bin, then the newest installed major.
 */
