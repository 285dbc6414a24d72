/**
 * `restore db <id|latest>`: a logical backup (backup db / all) into the configured database or a
 * new one, never leaving a half-restored database under the target's name.
 *
 * Order (the target is touched only once every check passed):
 *  1. a PostgreSQL advisory lock per target (a second restore of the same database → exit 4);
 *  2. the backup's migration head against the installed service's migrations (newer → exit 2
 *     unless --force: the installed service would run against a schema it does not know);
 *  3. the target: a non-empty database is replaced only with --clean and a confirmation (--yes);
 *  4. maintenance mode on when the target is the live database (off again in a finally);
 *  5. pg_restore into a scratch database `<target>_restoring` on the same server (parallel with
 *     --jobs), the size + sha256 of the dump part computed as it streams past (a flipped byte → the
 *     scratch database is dropped, the target untouched, exit 1: it was never touched), then
 *     per-table row counts compared with the manifest (a difference → likewise, exit 1);
 *  6. the swap, one transaction: `ALTER DATABASE target RENAME TO target_pre_restore; ALTER
 *     DATABASE target_restoring RENAME TO target` (other sessions of both are terminated first);
 *  7. the previous database dropped (or kept under a timestamped name with --keep-previous).
 *
 * A kill at any moment leaves either the old database or the new one under the target name (the
 * swap is one transaction). A rerun finds `_restoring` (dropped: restored again) and
 * `_pre_restore` (the swap happened: dropped) and goes on.
 *
 * `pg_restore --clean --single-transaction` into the live database was the alternative: it cannot
 * run in parallel (pg_restore refuses --single-transaction with --jobs) and keeps the service's
 * tables locked for the whole restore; the swap keeps the old database readable until the end.
 */
import {faultPoint} from '../core/faults.js'
import {createHash} from 'node:crypto'

import type {Client} from 'pg'

import type {Settings} from '../config/settings.js'
import {requireSetting} from '../config/settings.js'
import {ChecksFailedError, ConfigError, LockHeldError, UsageError} from '../errors.js'
import type {Logger} from '../output/logger.js'
import type {Progress} from '../output/progress.js'
import {maskUrl, registerSecret} from '../output/redact.js'
import {connect, parseDatabaseUrl, withDatabase} from '../postgres/connection.js'
import {findPart, resolveBackup, type BackupManifest, type BackupPart} from '../repository/manifest.js'
import type {RepositoryStorage} from '../repository/storage.js'
import type {EncryptionKey} from '../backup/encryption.js'
import {quoteIdent} from '../postgres/sql.js'

export interface RestoreDbOptions {
  settings: Settings
  storage: RepositoryStorage
  stack: string
  /** backup id or `latest` */
  ref: string
  /** --target-db: restore into this database instead of DATABASE_URL's */
  targetDb?: string
  /** --admin-url: the connection that creates / renames databases (default DATABASE_URL) */
  adminUrl?: string
  /** pg_restore workers; default: defaultRestoreJobs (2 when staging space allows, else 1) */
  jobs?: number
  clean?: boolean
  /** restore a backup whose migration head is newer than the installed migrations */
  force?: boolean
  /** keep the replaced database under `<target>_pre_<stamp>` instead of dropping it */
  keepPrevious?: boolean
  /** directory of the installed service's migrations (default: resolveMigrationsDir) */
  migrationsDir?: string
  /** switch maintenance mode on while the live database is restored (default true) */
  maintenance?: boolean
  encryption?: EncryptionKey
  /** asked before a non-empty database is replaced (throws to refuse) */
  confirm: (question: string) => Promise<void>
  logger: Logger
  progress?: (label: string, totalBytes?: number) => Progress
  now?: () => Date
}

export interface RestoreDbResult {
  id: string
  database: string
  server: string
  /** the target is DATABASE_URL's database */
  live: boolean
  /** a database existed under the target name and was replaced */
  replaced: boolean
  /** the replaced database, kept with --keep-previous */
  previousKeptAs?: string
  jobs: number
  durationMs: number
  restoreMs: number
  tables: number
  rowCounts: Record<string, number>
  mismatches: string[]
  /** extensions left out: the restoring role may not create them (restore/extensions.ts) */
  skippedExtensions: string[]
  migrationHead: string | null
  installedMigrationHead: string | null
  maintenance: 'switched on and off' | 'already on' | 'not needed' | 'skipped'
  /** leftovers of an interrupted earlier restore that were cleaned up */
  recovered: string[]
}

const quoteLiteral = (s: string) => `'${s.replace(/'/g, "''")}'`

/** `name` + suffix within PostgreSQL's 63-byte identifier limit (a short hash keeps long names apart). */
export function derivedName(name: string, suffix: string): string {
  const full = `${name}${suffix}`
  if (Buffer.byteLength(full) <= 63) return full
  const hash = createHash('sha256').update(name).digest('hex').slice(0, 6)
  let head = name
  while (Buffer.byteLength(`${head}_${hash}${suffix}`) > 63) head = head.slice(0, -1)
  return `${head}_${hash}${suffix}`
}

export const scratchName = (target: string) => derivedName(target, '_restoring')
export const previousName = (target: string) => derivedName(target, '_pre_restore')

/** The highest migration version in a directory of migration files, or null when there are none. */
export async function installedMigrationHead(dir: string): Promise<string | null> {
  const {existsSync} = await import('node:fs')
  if (!existsSync(dir)) return null
  const {loadMigrations, compareVersions} = await import('../migrate/files.js')
  const files = loadMigrations(dir)
  let head: string | null = null
  for (const f of files) if (head === null || compareVersions(f.version, head) > 0) head = f.version
  return head
}

/** Refuses (exit 2) a backup whose schema is newer than the installed service's migrations. */
export async function checkMigrationHead(
  manifest: BackupManifest,
  installed: string | null,
  dir: string,
  force: boolean,
  logger: Logger,
): Promise<void> {
  const head = manifest.migrationHead ?? null
  if (head === null) {
    logger.debug(`backup ${manifest.id} records no migration head; not compared`)
    return
  }
  if (installed === null) {
    logger.warn(
      `no migrations found in ${dir}: cannot check the backup's migration head ${head} against the installed service`,
    )
    return
  }
  const {compareVersions} = await import('../migrate/files.js')
  if (!/^\d+$/.test(head) || compareVersions(head, installed) <= 0) return
  if (force) {
    logger.warn(
      `backup ${manifest.id} has migration head ${head}, newer than the installed service's ${installed} (${dir}); restoring anyway (--force)`,
    )
    return
  }
  throw new UsageError(
    `backup ${manifest.id} was taken at migration ${head}, newer than the installed service's migrations (head ${installed} in ${dir}) — nothing was restored`,
    {
      code: 'MIGRATION_HEAD_NEWER',
      hint: 'Upgrade the service to the release the backup came from first, or pass --force to restore anyway (the installed service may not work with that schema).',
      data: {backupHead: head, installedHead: installed, migrationsDir: dir},
    },
  )
}

/** Relations in non-system schemas (0 = an empty database). */
async function userRelations(url: string): Promise<number> {
  const client = await connect(url, {applicationName: 'charge-ops restore db'})
  try {
    const {rows} = await client.query<{n: number}>(
      `SELECT count(*)::int AS n FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg_toast%' AND n.nspname NOT LIKE 'pg_temp%'`,
    )
    return rows[0].n
  } finally {
    await client.end().catch(() => {})
  }
}

async function databaseExists(admin: Client, name: string): Promise<boolean> {
  return (await admin.query('SELECT 1 FROM pg_database WHERE datname = $1', [name])).rowCount === 1
}

async function terminateSessions(admin: Client, name: string): Promise<void> {
  await admin.query(
    'SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()',
    [name],
  )
}

/**
 * Waits (≤ 1 s, polling every 5 ms) until no session is connected to the databases: the backends of
 * pg_restore and of the row counts exit a moment after their clients closed, and a rename attempted
 * before that fails (55006) and would cost a 100 ms retry.
 */
async function waitForNoSessions(admin: Client, names: string[]): Promise<void> {
  const deadline = Date.now() + 1000
  while (Date.now() < deadline) {
    const {rows} = await admin.query<{n: number}>(
      'SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = ANY($1) AND pid <> pg_backend_pid()',
      [names],
    )
    if (rows[0].n === 0) return
    await new Promise((r) => setTimeout(r, 5))
  }
}

async function dropDatabase(admin: Client, name: string): Promise<void> {
  await admin.query(`DROP DATABASE IF EXISTS ${quoteIdent(name)} WITH (FORCE)`)
}

/** The admin connection: the server's `postgres` database (never the target: it would block the rename). */
async function connectAdmin(url: string, avoid: string[]): Promise<Client> {
  let lastError: unknown
  for (const db of ['postgres', 'template1']) {
    if (avoid.includes(db)) continue
    try {
      return await connect(withDatabase(url, db), {applicationName: 'charge-ops restore db'})
    } catch (error) {
      lastError = error
    }
  }
  throw lastError
}

/** Creates the scratch database like the target (encoding, locale, owner, database grants and settings). */
async function createScratch(admin: Client, scratch: string, like: string | undefined, logger: Logger): Promise<void> {
  if (!like) {
    await admin.query(`CREATE DATABASE ${quoteIdent(scratch)} TEMPLATE template0`)
    return
  }
  const {rows} = await admin.query<{
    encoding: string
    collate: string
    ctype: string
    owner: string
    acl: string | null
    oid: number
  }>(
    `SELECT pg_encoding_to_char(d.encoding) AS encoding, d.datcollate AS collate, d.datctype AS ctype, r.rolname AS owner, d.datacl::text AS acl, d.oid
       FROM pg_database d JOIN pg_roles r ON r.oid = d.datdba WHERE d.datname = $1`,
    [like],
  )
  const d = rows[0]
  const base = `CREATE DATABASE ${quoteIdent(scratch)} TEMPLATE template0 ENCODING ${quoteLiteral(d.encoding)} LC_COLLATE ${quoteLiteral(d.collate)} LC_CTYPE ${quoteLiteral(d.ctype)}`
  try {
    await admin.query(`${base} OWNER ${quoteIdent(d.owner)}`)
  } catch (error) {
    if ((error as {code?: string}).code !== '42501') throw error
    logger.warn(
      `cannot create the restored database owned by ${d.owner} (not a member of that role); it will be owned by the restoring role`,
    )
    await admin.query(base)
  }
  // Database-level grants and settings are not in a pg_dump archive (only with --create): copy them.
  if (d.acl !== null) {
    await admin.query(`REVOKE ALL ON DATABASE ${quoteIdent(scratch)} FROM PUBLIC`)
    const grants = await admin.query<{grantee: string | null; privilege: string; grantable: boolean}>(
      `SELECT CASE WHEN a.grantee = 0 THEN NULL ELSE pg_get_userbyid(a.grantee) END AS grantee, a.privilege_type AS privilege, a.is_grantable AS grantable
         FROM pg_database d, aclexplode(d.datacl) a WHERE d.datname = $1 AND a.grantee <> d.datdba`,
      [like],
    )
    for (const g of grants.rows) {
      await admin.query(
        `GRANT ${g.privilege} ON DATABASE ${quoteIdent(scratch)} TO ${g.grantee === null ? 'PUBLIC' : quoteIdent(g.grantee)}${g.grantable ? ' WITH GRANT OPTION' : ''}`,
      )
    }
  }
  const settings = await admin.query<{role: string | null; config: string[]}>(
    `SELECT CASE WHEN s.setrole = 0 THEN NULL ELSE pg_get_userbyid(s.setrole) END AS role, s.setconfig AS config FROM pg_db_role_setting s WHERE s.setdatabase = $1`,
    [d.oid],
  )
  for (const s of settings.rows) {
    for (const item of s.config) {
      const eq = item.indexOf('=')
      const name = item.slice(0, eq)
      if (!/^[A-Za-z_][A-Za-z0-9_.]*$/.test(name)) continue
      await admin.query(
        `ALTER ${s.role ? `ROLE ${quoteIdent(s.role)} IN ` : ''}DATABASE ${quoteIdent(scratch)} SET ${name} = ${quoteLiteral(item.slice(eq + 1))}`,
      )
    }
  }
}

/** Both renames in one transaction, retried while the service's pool reconnects in between. */
async function swapDatabases(
  admin: Client,
  target: string,
  scratch: string,
  previous: string | undefined,
  logger: Logger,
): Promise<void> {
  for (let attempt = 1; ; attempt++) {
    if (previous) await terminateSessions(admin, target)
    await terminateSessions(admin, scratch)
    await waitForNoSessions(admin, previous ? [target, scratch] : [scratch])
    try {
      await admin.query('BEGIN')
      if (previous) await admin.query(`ALTER DATABASE ${quoteIdent(target)} RENAME TO ${quoteIdent(previous)}`)
      await admin.query(`ALTER DATABASE ${quoteIdent(scratch)} RENAME TO ${quoteIdent(target)}`)
      await admin.query('COMMIT')
      return
    } catch (error) {
      await admin.query('ROLLBACK').catch(() => {})
      // 55006 object_in_use: a session connected between the terminate and the rename
      if ((error as {code?: string}).code !== '55006' || attempt >= 20) {
        if ((error as {code?: string}).code === '55006') {
          throw new UsageError(
            `database ${target} stays in use: sessions reconnect faster than they can be ended — nothing was swapped`,
            {
              code: 'TARGET_IN_USE',
              hint: 'Stop the service (charge-ops service stop) or give the restoring role pg_signal_backend, then rerun.',
            },
          )
        }
        throw error
      }
      logger.debug(`swap attempt ${attempt}: ${(error as Error).message}; retrying`)
      await new Promise((r) => setTimeout(r, 100 * attempt))
    }
  }
}

function stamp(now: Date): string {
  return now
    .toISOString()
    .replace(/\.\d{3}Z$/, '')
    .replace(/[-:]/g, '')
    .replace('T', '_')
    .toLowerCase()
}

export async function restoreDatabase(options: RestoreDbOptions): Promise<RestoreDbResult> {
  const started = Date.now()
  const {settings, storage, stack, logger} = options
  const now = options.now ?? (() => new Date())
  const manifest = await resolveBackup(storage, stack, options.ref, {kind: ['db', 'all']})
  const part = findPart(manifest, 'db')
  if (!part || !manifest.db)
    throw new ConfigError(`backup ${manifest.id} (${manifest.kind}) holds no database dump`, {
      code: 'BACKUP_WRONG_KIND',
    })

  const {baseUrl, target, live} = restoreTarget(options)
  const scratch = scratchName(target)
  const previous = previousName(target)

  const admin = await connectAdmin(baseUrl, [target, scratch])
  let maintenance: RestoreDbResult['maintenance'] = live ? 'skipped' : 'not needed'
  let hold: import('../service/maintenance.js').MaintenanceHold | undefined
  let scratchCreated = false
  try {
    // 1. one restore per target at a time (session lock: released when this connection closes, even on kill -9)
    const key = createHash('sha256').update(`charge-ops restore db ${target}`).digest().readBigInt64BE(0)
    const locked = await admin.query<{ok: boolean}>('SELECT pg_try_advisory_lock($1::bigint) AS ok', [key.toString()])
    if (!locked.rows[0].ok)
      throw new LockHeldError(`another restore into database ${target} is running on this server`, {
        hint: 'Wait for it to finish (pg_stat_activity shows it as "charge-ops restore db").',
      })

    // 2. migration head
    const {resolveMigrationsDir} = await import('../migrate/locate.js')
    const migrationsDir = resolveMigrationsDir(options.migrationsDir, settings)
    const installed = await installedMigrationHead(migrationsDir)
    await checkMigrationHead(manifest, installed, migrationsDir, Boolean(options.force), logger)

    // 3. the target
    const {superuser, exists} = await inspectTarget(admin, options, {manifest, baseUrl, target, live})
    const recovered = await clearLeftovers(admin, {target, scratch, previous, exists}, logger)

    // 4. maintenance mode
    if (live && options.maintenance !== false) {
      const {takeMaintenance} = await import('../service/maintenance.js')
      // a flag left by a killed restore db names it as owner: taken over, switched off at the end
      hold = await takeMaintenance(settings, 'restore db', `restore db ${manifest.id}`, logger)
      if (!hold.owned) maintenance = 'already on'
      else {
        maintenance = 'switched on and off'
        logger.info('maintenance mode on while the database is restored')
      }
    }

    // 5. restore into the scratch database (size + sha256 of the part verified on the way)
    logger.debug(`checks done after ${Date.now() - started} ms`)
    await createScratch(admin, scratch, exists ? target : undefined, logger)
    scratchCreated = true
    logger.debug(`${scratch} created after ${Date.now() - started} ms; restoring`)
    logger.info(
      `restoring ${manifest.id} into ${scratch}${exists ? `, swapped with ${target} at the end` : `, renamed to ${target} at the end`}`,
    )
    const {restored, jobs} = await restoreIntoScratch(options, {
      manifest,
      part,
      scratchUrl: withDatabase(baseUrl, scratch),
      target,
      superuser,
    })

    // 6. swap
    await faultPoint('restore.db.before-swap')
    await swapDatabases(admin, target, scratch, exists ? previous : undefined, logger)
    scratchCreated = false
    await faultPoint('restore.db.swapped')
    logger.debug(`swapped after ${Date.now() - started} ms`)

    // 7. the replaced database
    let previousKeptAs: string | undefined
    if (exists) {
      if (options.keepPrevious) {
        previousKeptAs = derivedName(target, `_pre_${stamp(now())}`)
        await admin.query(`ALTER DATABASE ${quoteIdent(previous)} RENAME TO ${quoteIdent(previousKeptAs)}`)
      } else {
        await dropDatabase(admin, previous)
      }
    }
    return {
      id: manifest.id,
      database: target,
      server: maskUrl(withDatabase(baseUrl, target)),
      live,
      replaced: exists,
      previousKeptAs,
      jobs,
      durationMs: Date.now() - started,
      restoreMs: restored.durationMs,
      tables: Object.keys(restored.rowCounts).length,
      rowCounts: restored.rowCounts,
      skippedExtensions: restored.skippedExtensions,
      mismatches: restored.mismatches,
      migrationHead: manifest.migrationHead ?? null,
      installedMigrationHead: installed,
      maintenance,
      recovered,
    }
  } finally {
    if (scratchCreated)
      await dropDatabase(admin, scratch).catch((error) =>
        logger.warn(`could not drop ${scratch}: ${(error as Error).message} (the next restore drops it)`),
      )
    await admin.end().catch(() => {})
    if (hold?.owned) {
      await hold
        .release()
        .catch((error) =>
          logger.warn(
            `could not switch maintenance mode off: ${(error as Error).message}; run charge-ops service maintenance off`,
          ),
        )
      logger.info('maintenance mode off')
    }
  }
}

/** The server to restore on (--admin-url or DATABASE_URL) and the database to restore into (--target-db, default the live one). */
function restoreTarget(options: RestoreDbOptions): {baseUrl: string; target: string; live: boolean} {
  const liveUrl = options.settings.databaseUrl
  const baseUrl =
    options.adminUrl ??
    requireSetting(liveUrl, 'DATABASE_URL', 'Set DATABASE_URL in the backend .env (--env-file), or pass --admin-url.')
  registerSecret(parseDatabaseUrl(baseUrl).password)
  const liveDb = liveUrl ? parseDatabaseUrl(liveUrl).database : undefined
  const target = options.targetDb ?? liveDb
  if (!target)
    throw new ConfigError('no target database: DATABASE_URL names none', {
      code: 'CONFIG_MISSING',
      hint: 'Pass --target-db NAME.',
    })
  if (['postgres', 'template0', 'template1'].includes(target))
    throw new UsageError(`refusing to restore into the system database ${target}`, {
      code: 'BAD_TARGET',
      hint: 'Pass --target-db with an application database name.',
    })
  return {baseUrl, target, live: target === liveDb}
}

/** Step 3: whether the target exists and the restoring role is a superuser; a non-empty target only with --clean and a yes. */
async function inspectTarget(
  admin: Client,
  options: RestoreDbOptions,
  run: {manifest: BackupManifest; baseUrl: string; target: string; live: boolean},
): Promise<{superuser: boolean; exists: boolean}> {
  const {manifest, baseUrl, target, live} = run
  const {rows: superRows} = await admin.query<{s: boolean}>(
    'SELECT rolsuper AS s FROM pg_roles WHERE rolname = current_user',
  )
  const superuser = Boolean(superRows[0]?.s)
  const exists = await databaseExists(admin, target)
  const relations = exists ? await userRelations(withDatabase(baseUrl, target)) : 0
  if (relations > 0) {
    if (!options.clean) {
      throw new UsageError(`database ${target} is not empty (${relations} relations) — nothing was restored`, {
        code: 'TARGET_NOT_EMPTY',
        hint: `Pass --clean --yes to replace its contents, or --target-db NEW_NAME to restore beside it.`,
      })
    }
    await options.confirm(
      `Replace the contents of database ${target} (${relations} relations${live ? ', the live database' : ''}) with backup ${manifest.id}?`,
    )
  }
  return {superuser, exists}
}

/** Leftovers of an interrupted run (ours: the names are reserved for this routine) dropped or renamed back; returns what was done. */
async function clearLeftovers(
  admin: Client,
  names: {target: string; scratch: string; previous: string; exists: boolean},
  logger: Logger,
): Promise<string[]> {
  const {target, scratch, previous, exists} = names
  const recovered: string[] = []
  if (await databaseExists(admin, scratch)) {
    logger.warn(`an interrupted restore left ${scratch}; dropping it and restoring again`)
    await dropDatabase(admin, scratch)
    recovered.push(`dropped ${scratch}`)
  }
  if (await databaseExists(admin, previous)) {
    if (exists) {
      logger.warn(`an interrupted restore left the replaced database ${previous} (the swap had completed); dropping it`)
      await dropDatabase(admin, previous)
      recovered.push(`dropped ${previous}`)
    } else {
      // cannot happen with the one-transaction swap; undo rather than guess
      logger.warn(`${target} is missing but ${previous} exists: renaming it back`)
      await admin.query(`ALTER DATABASE ${quoteIdent(previous)} RENAME TO ${quoteIdent(target)}`)
      recovered.push(`renamed ${previous} back to ${target}`)
    }
  }
  return recovered
}

/**
 * Step 5: pg_restore into the scratch database. Checksums are hashed while the part streams in,
 * one read instead of two; a mismatch, a refusal for want of a superuser or row counts that differ
 * from the manifest's throw before the swap.
 */
async function restoreIntoScratch(
  options: RestoreDbOptions,
  run: {manifest: BackupManifest; part: BackupPart; scratchUrl: string; target: string; superuser: boolean},
): Promise<{restored: Awaited<ReturnType<typeof import('./logical.js').restoreDatabaseDump>>; jobs: number}> {
  const {manifest, part, target, superuser} = run
  const {logger} = options
  const progress = options.progress ?? (() => ({add() {}, bytes: 0, done() {}}))
  const {restoreDatabaseDump, defaultRestoreJobs} = await import('./logical.js')
  const jobs = Math.max(1, options.jobs ?? (await defaultRestoreJobs(part, logger)))
  logger.debug(`pg_restore jobs: ${jobs}${options.jobs === undefined ? ' (default)' : ''}`)
  const restored = await restoreDatabaseDump({
    storage: options.storage,
    manifest,
    targetUrl: run.scratchUrl,
    jobs,
    logger,
    progress,
    encryption: options.encryption,
    noOwner: !superuser,
    noPrivileges: false,
    checksums: 'streaming',
  }).catch((error: unknown) => {
    // The dump's grants and default privileges name the roles that owned the objects: a role
    // that is not a member of them cannot replay those. That is a matter of which role restores.
    // only the server's refusals in pg_restore's output ("ERROR:  …"), never a local EACCES
    const refused =
      /ERROR:\s+(must be (?:a )?member of role "[^"]+"|must be owner of [^\n]+|permission denied [^\n]+)/.exec(
        String((error as Error)?.message),
      )
    if (superuser || !refused) throw error
    throw new UsageError(
      `pg_restore was refused: ${refused[1]} — the role of ${options.adminUrl ? '--admin-url' : 'DATABASE_URL'} is not a superuser; ${target} was left unchanged`,
      {
        code: 'RESTORE_NEEDS_SUPERUSER',
        hint: 'Restore as a superuser so that owners and grants come back as they were: --admin-url or CHARGE_OPS_ADMIN_URL (e.g. postgresql://postgres@host:5432/postgres).',
        cause: error,
      },
    )
  })
  if (restored.mismatches.length > 0) {
    throw new ChecksFailedError(
      `restored row counts differ from backup ${manifest.id}: ${restored.mismatches.join('; ')} — ${target} was left unchanged`,
      {
        code: 'ROW_COUNTS_DIFFER',
        hint: 'The backup does not restore to what it recorded; try another backup (charge-ops backup list) and report this one.',
        data: {mismatches: restored.mismatches},
      },
    )
  }
  return {restored, jobs}
}
