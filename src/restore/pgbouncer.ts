/**
 * `recover` step 4 when the service reaches PostgreSQL through PgBouncer (the guide §6.1.5):
 * DATABASE_URL keeps naming PgBouncer, and the database's entry in pgbouncer.ini's [databases]
 * section is pointed at the recovered server instead, then PgBouncer is told to reload (RELOAD on
 * its admin console, else SIGHUP to the pid in its `pidfile`). New server connections go to the
 * recovered server; clients keep their connection string.
 */
import {readFile} from 'node:fs/promises'

import {UnreachableError, UsageError} from '../errors.js'

export interface PgbouncerTarget {
  /** path of pgbouncer.ini */
  ini: string
  /** admin console URL (postgresql://admin@host:6432/pgbouncer) for RELOAD; else the pidfile is signalled */
  adminUrl?: string
}

/** The [databases] entry of `database` rewritten to host/port; every other line is kept as it was. */
export function repointIni(text: string, database: string, host: string, port: number): string {
  let section = ''
  let found = false
  const lines = text.split('\n').map((line) => {
    const header = /^\s*\[([^\]]+)\]/.exec(line)
    if (header) {
      section = header[1].trim().toLowerCase()
      return line
    }
    if (section !== 'databases' || found) return line
    const entry = /^(\s*)("?)([^"=\s]+)\2(\s*=\s*)(.*)$/.exec(line)
    if (!entry || entry[3] !== database) return line
    found = true
    let value = entry[5]
    value = /(^|\s)host=\S*/.test(value) ? value.replace(/(^|\s)host=\S*/, `$1host=${host}`) : `host=${host} ${value}`
    value = /(^|\s)port=\S*/.test(value) ? value.replace(/(^|\s)port=\S*/, `$1port=${port}`) : `${value} port=${port}`
    return `${entry[1]}${entry[2]}${entry[3]}${entry[2]}${entry[4]}${value.trim()}`
  })
  if (!found) {
    throw new UsageError(`${database} has no entry in the [databases] section of the PgBouncer configuration`, {
      code: 'RECOVER_PGBOUNCER_NO_ENTRY',
      hint: `Add "${database} = host=… port=… dbname=${database}" to [databases], or pass the pgbouncer.ini that serves DATABASE_URL.`,
    })
  }
  return lines.join('\n')
}

/** The `pidfile` setting of the [pgbouncer] section, if any. */
export function pidfileOf(text: string): string | undefined {
  let section = ''
  for (const line of text.split('\n')) {
    const header = /^\s*\[([^\]]+)\]/.exec(line)
    if (header) section = header[1].trim().toLowerCase()
    else if (section === 'pgbouncer') {
      const m = /^\s*pidfile\s*=\s*(\S.*?)\s*$/.exec(line)
      if (m) return m[1]
    }
  }
  return undefined
}

/** Checks, before anything changes, that the entry exists and that PgBouncer can be reloaded. */
export async function checkPgbouncer(target: PgbouncerTarget, database: string): Promise<void> {
  const text = await readFile(target.ini, 'utf8').catch((error: NodeJS.ErrnoException) => {
    throw new UsageError(`cannot read the PgBouncer configuration ${target.ini}: ${error.code ?? error.message}`, {
      code: 'RECOVER_PGBOUNCER_INI',
    })
  })
  repointIni(text, database, '127.0.0.1', 5432)
  if (!target.adminUrl && !pidfileOf(text)) {
    throw new UsageError(
      `PgBouncer cannot be told to reload: ${target.ini} sets no pidfile and no admin console URL was given`,
      {
        code: 'RECOVER_PGBOUNCER_RELOAD',
        hint: 'Pass --pgbouncer-admin-url postgresql://ADMIN@HOST:6432/pgbouncer (a user in admin_users), or set pidfile in [pgbouncer]. Nothing was changed.',
      },
    )
  }
}

/** RELOAD through the admin console, else SIGHUP to the pidfile's process; returns how. */
export async function reloadPgbouncer(target: PgbouncerTarget, text: string): Promise<string> {
  if (target.adminUrl) {
    const {default: pg} = await import('pg')
    // The admin console speaks only the simple query protocol: a query without parameters.
    const client = new pg.Client({connectionString: target.adminUrl})
    await client.connect().catch((error: Error) => {
      throw new UnreachableError(`cannot reach the PgBouncer admin console: ${error.message}`, {
        code: 'PGBOUNCER_UNREACHABLE',
        hint: 'Check --pgbouncer-admin-url / CHARGE_OPS_PGBOUNCER_ADMIN_URL (a user in admin_users, database pgbouncer).',
      })
    })
    try {
      await client.query('RELOAD')
    } finally {
      await client.end().catch(() => {})
    }
    return 'RELOAD on the admin console'
  }
  const pidfile = pidfileOf(text)!
  const pid = Number((await readFile(pidfile, 'utf8')).trim())
  if (!Number.isInteger(pid) || pid <= 0)
    throw new UsageError(`${pidfile} holds no pid`, {code: 'RECOVER_PGBOUNCER_RELOAD'})
  process.kill(pid, 'SIGHUP')
  return `SIGHUP to pid ${pid}`
}
