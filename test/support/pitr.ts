/**
 * The one setup of the PITR integration tests: a real cluster archiving through the built
 * `charge-ops wal push` (run by PostgreSQL as its own OS user) into a local or S3 repository, a base
 * backup taken through the CLI, the CLI runner, and the clean-up of every restored server the
 * test started. Needs `npm run build` (archive_command runs bin/run.js).
 */
import {spawnSync} from 'node:child_process'
import fs from 'node:fs'
import path from 'node:path'

import {expect} from 'vitest'

import {archiveCommand} from '../../src/wal/command-lines.js'
import {ENTRY, ROOT, runCli, type CliResult} from './cli.js'
import {startPostgres, type PgCluster} from './postgres.js'
import type {S3Server} from './s3.js'

export {ENTRY, ROOT, type CliResult}

export interface ArchivingCluster {
  pg: PgCluster
  repo: string
  stack: string
  /** S3 repository: the server's 0600 credentials file (archive_command and restore_command name it) */
  awsEnvFile?: string
  /** --repo, --stack (and --aws-env-file) of this cluster's repository, for a CLI call */
  loc: string[]
  /** the built CLI; `asServer` runs it as the server's OS user (as cron / archive_command would) */
  cli(
    args: string[],
    options?: {env?: Record<string, string>; asServer?: boolean; cwd?: string; timeoutMs?: number},
  ): CliResult
  /** a libpq URL for a server of this cluster's roles on `port` (a restored copy) */
  urlOf(port: number, database?: string): string
  query<R>(port: number, sql: string): Promise<R[]>
  /** a data directory a test restored and maybe started: stopped (immediate) by stop() */
  started: string[]
  stopServer(dataDir: string): void
  /** stops every restored server, then the cluster */
  stop(): Promise<void>
  /** the output of the setup's `backup base` */
  base?: CliResult
}

export interface ArchivingClusterOptions {
  name: string
  stack: string
  /** extra server settings (hot_standby, archive_timeout …) */
  settings?: Record<string, string>
  /** SQL run before the base backup */
  schema?: string
  /** take a base backup through the CLI (default true) */
  baseBackup?: boolean
  /** archive into this S3 server (s3://BUCKET/NAME) instead of a local directory */
  s3?: S3Server
}

export async function startArchivingCluster(options: ArchivingClusterOptions): Promise<ArchivingCluster> {
  const pg = await startPostgres({name: options.name})
  const stack = options.stack
  let repo: string
  let awsEnvFile: string | undefined
  if (options.s3) {
    repo = `s3://${options.s3.bucket}/${options.name}`
    // the credentials as an operator gives them to archive_command: a 0600 file of the server's user
    awsEnvFile = path.join(pg.serverDir('s3'), 's3.env')
    fs.writeFileSync(
      awsEnvFile,
      Object.entries(options.s3.env)
        .map(([k, v]) => `${k}=${v}\n`)
        .join(''),
      {mode: 0o600},
    )
    if (pg.osUser) fs.chownSync(awsEnvFile, pg.osUser.uid, pg.osUser.gid)
  } else repo = pg.serverDir('repo')
  const loc = ['--repo', repo, '--stack', stack, ...(awsEnvFile ? ['--aws-env-file', awsEnvFile] : [])]
  await pg.restart({
    archive_mode: 'on',
    wal_level: 'replica',
    archive_command: archiveCommand({repository: repo, stack, awsEnvFile, entry: ENTRY, node: process.execPath}),
    ...options.settings,
  })
  const started: string[] = []
  const cli: ArchivingCluster['cli'] = (args, o = {}) =>
    runCli(args, {
      bareEnv: true,
      env: o.env,
      cwd: o.cwd,
      user: o.asServer ? pg.osUser : undefined,
      timeout: o.timeoutMs ?? 240_000,
    })
  const urlOf = (port: number, database = 'postgres') =>
    `postgresql://${pg.user}:${encodeURIComponent(pg.password)}@127.0.0.1:${port}/${database}`
  const stopServer = (dataDir: string) => {
    if (fs.existsSync(path.join(dataDir, 'postmaster.pid')))
      spawnSync(path.join(pg.binDir, 'pg_ctl'), ['stop', '-D', dataDir, '-m', 'immediate', '-w'], {
        uid: pg.osUser?.uid,
        gid: pg.osUser?.gid,
      })
  }
  const cluster: ArchivingCluster = {
    pg,
    repo,
    stack,
    awsEnvFile,
    loc,
    cli,
    urlOf,
    started,
    stopServer,
    async query<R>(port: number, sql: string): Promise<R[]> {
      const {default: pgLib} = await import('pg')
      const c = new pgLib.Client({connectionString: urlOf(port)})
      await c.connect()
      try {
        return (await c.query(sql)).rows as R[]
      } finally {
        await c.end()
      }
    },
    async stop() {
      for (const dir of started) stopServer(dir)
      await pg.stop()
    },
  }
  if (options.schema) await pg.query(options.schema)
  if (options.baseBackup !== false) {
    const base = cli(['backup', 'base', ...loc, '--wal-timeout', '60'], {asServer: true, env: {DATABASE_URL: pg.url()}})
    expect(base.code, base.stderr).toBe(0)
    cluster.base = base
  }
  return cluster
}
