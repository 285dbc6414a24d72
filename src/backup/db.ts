/**
 * `backup db`: a logical backup of DATABASE_URL.
 *
 * One exported snapshot: a REPEATABLE READ transaction exports it (`pg_export_snapshot()`),
 * pg_dump imports it (`--snapshot`), and the per-table row counts are taken inside the exporting
 * transaction — so the counts recorded in the manifest are exactly the rows in the dump. The
 * transaction stays open until pg_dump has finished (it must outlive pg_dump's import of it).
 *
 * Stream: pg_dump -Fc -Z0 → zstd -T<n> → [AES-256-GCM] → repository (no temp file). With
 * `--jobs N` pg_dump writes a directory-format dump with N workers into a staging directory
 * which is then streamed as a tar (needs local space; only faster with several large tables).
 */
import {existsSync} from 'node:fs'
import {mkdtemp, rm} from 'node:fs/promises'
import {tmpdir} from 'node:os'
import {join} from 'node:path'

import type {Client} from 'pg'

import {requireSetting} from '../config/settings.js'
import {connect, libpqEnv, parseDatabaseUrl} from '../postgres/connection.js'
import type {BackupManifest, BackupManifestInput, BackupPart} from '../repository/manifest.js'
import {PART_SUFFIX} from './compression.js'
import {runBackup, type BackupContext} from './context.js'
import {streamProducerToPart} from './pipeline.js'
import {quoteIdent} from '../postgres/sql.js'

export interface DbCapture<T = unknown> {
  /** what `inSnapshot` returned */
  snapshotExtra?: T
  part: BackupPart
  section: NonNullable<BackupManifestInput['db']>
  migrationHead: string | null
  serviceVersion: string | null
  postgresVersion: string
  tools: Record<string, string>
}

/**
 * A PostgreSQL client tool: from CHARGE_OPS_PG_BINDIR when set (a non-Debian layout, or a wrapper
 * directory), else the server's major version when installed (Debian layout), else PATH.
 */
export function pgTool(name: string, serverMajor?: number): string {
  const dir = process.env.CHARGE_OPS_PG_BINDIR
  if (dir) return `${dir.replace(/\/+$/, '')}/${name}`
  if (serverMajor) {
    const candidate = `/usr/lib/postgresql/${serverMajor}/bin/${name}`
    if (existsSync(candidate)) return candidate
  }
  return name
}

/** Row count per user table (`schema.table`), in the current transaction's snapshot. */
export async function countRows(client: Client): Promise<Record<string, number>> {
  const {rows: tables} = await client.query<{schema: string; name: string}>(
    `SELECT n.nspname AS schema, c.relname AS name FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
      WHERE c.relkind = 'r' AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg_toast%' AND n.nspname NOT LIKE 'pg_temp%'
      ORDER BY 1, 2`,
  )
  const counts: Record<string, number> = {}
  for (const t of tables) {
    const {rows} = await client.query<{n: string}>(
      `SELECT count(*)::bigint AS n FROM ${quoteIdent(t.schema)}.${quoteIdent(t.name)}`,
    )
    counts[`${t.schema}.${t.name}`] = Number(rows[0].n)
  }
  return counts
}

/** The service's migration head and version, tolerating a database without them. */
export async function stackInfo(
  client: Client,
): Promise<{migrationHead: string | null; serviceVersion: string | null}> {
  const {rows} = await client.query<{migrations: string | null; meta: string | null}>(
    `SELECT to_regclass('charge_ops_migrations')::text AS migrations, to_regclass('service_meta')::text AS meta`,
  )
  let migrationHead: string | null = null
  let serviceVersion: string | null = null
  if (rows[0].migrations) {
    const head = await client
      .query<{version: string}>(
        `SELECT version FROM charge_ops_migrations WHERE success IS NOT FALSE ORDER BY version::numeric DESC LIMIT 1`,
      )
      .catch(() => ({rows: [] as {version: string}[]}))
    migrationHead = head.rows[0]?.version ?? null
  }
  if (rows[0].meta) {
    const v = await client
      .query<{value: string}>(
        `SELECT value FROM service_meta WHERE key IN ('version', 'service_version') ORDER BY key = 'version' DESC LIMIT 1`,
      )
      .catch(() => ({rows: [] as {value: string}[]}))
    serviceVersion = v.rows[0]?.value ?? null
  }
  return {migrationHead, serviceVersion}
}

/** Dumps the database into the part `db.dump.zst` (or `db.dir.tar.zst` with jobs > 1) of backup `id`. */
export async function captureDatabase<T = unknown>(
  ctx: BackupContext,
  id: string,
  databaseUrl: string,
  options: {jobs?: number; inSnapshot?: (client: Client, tables: Record<string, number>) => Promise<T>} = {},
): Promise<DbCapture<T>> {
  const target = parseDatabaseUrl(databaseUrl)
  const client = await connect(target, {applicationName: 'charge-ops backup'})
  let staging: string | undefined
  try {
    // Inside a transaction a failing statement aborts everything after it, so the optional
    // lookups (stack info) run before the snapshot is taken; they do not need it.
    const info = await stackInfo(client)
    await client.query('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY')
    const {rows} = await client.query<{
      snapshot: string
      at: Date
      lsn: string | null
      version: string
      major: string
      size: string
    }>(
      `SELECT pg_export_snapshot() AS snapshot, clock_timestamp() AS at,
              (CASE WHEN pg_is_in_recovery() THEN pg_last_wal_replay_lsn() ELSE pg_current_wal_lsn() END)::text AS lsn,
              current_setting('server_version') AS version, current_setting('server_version_num') AS major,
              (SELECT coalesce(sum(pg_table_size(c.oid)), 0) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                WHERE c.relkind = 'r' AND n.nspname NOT IN ('pg_catalog', 'information_schema'))::bigint AS size`,
    )
    const snap = rows[0]
    const major = Math.floor(Number(snap.major) / 10_000)
    const pgDump = pgTool('pg_dump', major)
    const {run} = await import('../core/proc/exec.js')
    const pgDumpVersion = (await run(pgDump, ['--version'])).stdout.replace(/^pg_dump \(PostgreSQL\)\s*/, '').trim()
    const jobs = options.jobs && options.jobs > 1 ? options.jobs : undefined
    const env = {...libpqEnv(target), PGAPPNAME: 'charge-ops pg_dump'}
    const suffix = PART_SUFFIX[ctx.compression.algorithm]

    let countsPromise: Promise<Record<string, number>> | undefined
    let streamed
    if (!jobs) {
      streamed = await streamProducerToPart(
        ctx,
        id,
        `db.dump${suffix}`,
        {
          file: pgDump,
          args: ['--format=custom', '--compress=0', `--snapshot=${snap.snapshot}`, '--no-password'],
          env,
          purpose: 'pg_dump',
        },
        {component: 'db', format: 'pg_dump-custom', capturedAt: snap.at.toISOString()},
        {
          label: 'backup db',
          totalBytes: Number(snap.size) || undefined,
          // Counting starts once pg_dump runs, in parallel with it, in the same snapshot.
          onStarted: () => {
            countsPromise = countRows(client)
            countsPromise.catch(() => {})
          },
        },
      )
    } else {
      staging = await mkdtemp(join(process.env.CHARGE_OPS_STAGING_DIR ?? tmpdir(), 'charge-ops-dump-'))
      const dir = join(staging, 'dump')
      countsPromise = countRows(client)
      countsPromise.catch(() => {})
      await run(
        pgDump,
        [
          '--format=directory',
          '--compress=0',
          `--jobs=${jobs}`,
          `--snapshot=${snap.snapshot}`,
          '--no-password',
          '--file',
          dir,
        ],
        {env, purpose: 'pg_dump --jobs'},
      )
      streamed = await streamProducerToPart(
        ctx,
        id,
        `db.dir.tar${suffix}`,
        {
          file: 'tar',
          args: ['--create', '--file=-', '--sort=name', '-C', dir, '.'],
          purpose: 'tar of the directory dump',
        },
        {component: 'db', format: 'pg_dump-directory-tar', capturedAt: snap.at.toISOString()},
        {label: 'backup db (upload)'},
      )
    }
    const rowCounts = await countsPromise!
    // Extra reads (backup all: the uploads the database references) in the very same snapshot.
    const snapshotExtra = options.inSnapshot ? await options.inSnapshot(client, rowCounts) : undefined
    await client.query('COMMIT')
    return {
      snapshotExtra,
      part:
        streamed.part.contentBytes === undefined && streamed.rawBytes !== undefined
          ? {...streamed.part, contentBytes: streamed.rawBytes}
          : streamed.part,
      section: {
        database: target.database,
        format: jobs ? 'directory' : 'custom',
        jobs,
        snapshotAt: snap.at.toISOString(),
        lsn: snap.lsn ?? undefined,
        rowCounts,
        databaseSizeBytes: Number(snap.size),
      },
      migrationHead: info.migrationHead,
      serviceVersion: info.serviceVersion,
      postgresVersion: snap.version,
      tools: {pg_dump: pgDumpVersion},
    }
  } finally {
    await client.end().catch(() => {})
    if (staging) await rm(staging, {recursive: true, force: true})
  }
}

export async function backupDatabase(ctx: BackupContext, options: {jobs?: number} = {}): Promise<BackupManifest> {
  const url = requireSetting(
    ctx.settings.databaseUrl,
    'DATABASE_URL',
    'Set DATABASE_URL in the backend .env (--env-file) or the environment.',
  )
  parseDatabaseUrl(url) // a malformed URL is exit 2 before a backup id is announced
  return runBackup(ctx, 'db', 'backup db', async (id) => {
    const db = await captureDatabase(ctx, id, url, options)
    return {
      parts: [db.part],
      extra: {
        db: db.section,
        migrationHead: db.migrationHead,
        serviceVersion: db.serviceVersion,
        postgresVersion: db.postgresVersion,
        tools: db.tools,
      },
    }
  })
}
