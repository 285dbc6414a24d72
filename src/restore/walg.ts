/**
 * `restore pitr` with backup.engine: wal-g: `wal-g backup-fetch` into an empty directory (run as
 * the directory's owner), then the same recovery settings as the native path with a
 * restore_command of `charge-ops wal fetch --engine wal-g`. wal-g writes global/pg_control while it
 * extracts, so the native "pg_control last" guarantee does not hold here: recovery.signal is
 * written only after backup-fetch succeeded, and without it an interrupted directory still lacks
 * the recovery settings — remove it and rerun.
 */
import {appendFile, chmod, chown, mkdir, writeFile} from 'node:fs/promises'
import {join, resolve} from 'node:path'

import type {Settings} from '../config/settings.js'
import type {Logger} from '../output/logger.js'
import {restoreCommand} from '../wal/command-lines.js'
import {describeTarget, recoveryConf, type RecoveryTarget} from './pitr-target.js'
import {assertRestorableDataDir, startAndAwaitRecovery, targetOwner, type RecoveryOutcome} from './pitr.js'

export interface WalgRestoreOptions {
  settings: Settings
  repository: string
  stack: string
  awsEnvFile?: string
  target: RecoveryTarget
  dataDir: string
  backupName?: string
  archive?: 'keep' | 'off'
  start?: {port: number; timeoutSec?: number}
  logger: Logger
}

export interface WalgRestoreResult {
  engine: 'wal-g'
  backup: string
  target: string
  dataDir: string
  restoreCommand: string
  started: boolean
  recovery?: RecoveryOutcome
}

export async function restoreWithWalg(options: WalgRestoreOptions): Promise<WalgRestoreResult> {
  const dataDir = resolve(options.dataDir)
  const {exists} = await assertRestorableDataDir(dataDir)
  const owner = await targetOwner(dataDir, exists)
  if (!exists) await mkdir(dataDir, {mode: 0o700})
  await chmod(dataDir, 0o700)
  if (owner) await chown(dataDir, owner.uid, owner.gid)
  const {walgEnvFromSettings, walgPlans} = await import('../backup/walg.js')
  const env = await walgEnvFromSettings({...options.settings, repository: options.repository, stack: options.stack})
  const plan = walgPlans.backupFetch(env, dataDir, options.backupName ?? 'LATEST')
  const {run} = await import('../core/proc/exec.js')
  options.logger.info(`wal-g ${plan.args.join(' ')}`)
  await run(plan.command, plan.args, {env: plan.env, uid: owner?.uid, gid: owner?.gid, purpose: 'wal-g backup-fetch'})
  const command = restoreCommand({
    repository: options.repository,
    stack: options.stack,
    awsEnvFile: options.awsEnvFile,
    engine: 'wal-g',
  })
  await appendFile(
    join(dataDir, 'postgresql.auto.conf'),
    recoveryConf({
      target: options.target,
      restoreCommand: command,
      port: options.start?.port,
      archive: options.archive,
    }),
  )
  await writeFile(join(dataDir, 'recovery.signal'), '', {mode: 0o600})
  if (owner) {
    await chown(join(dataDir, 'postgresql.auto.conf'), owner.uid, owner.gid)
    await chown(join(dataDir, 'recovery.signal'), owner.uid, owner.gid)
  }
  const result: WalgRestoreResult = {
    engine: 'wal-g',
    backup: options.backupName ?? 'LATEST',
    target: describeTarget(options.target),
    dataDir,
    restoreCommand: command,
    started: false,
  }
  if (options.start) {
    result.recovery = await startAndAwaitRecovery(
      dataDir,
      options.start.port,
      options.start.timeoutSec ?? 3600,
      owner,
      options.logger,
    )
    result.started = true
  }
  return result
}
