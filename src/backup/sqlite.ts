/**
 * SQLite access for the Chroma folder (chroma.sqlite3): an online backup (never read a live
 * database file byte by byte: a concurrent writer makes a torn copy) and small read queries.
 *
 * better-sqlite3 (v12, built for the running Node's ABI at install time) is the first choice. When
 * its native part cannot load — charge-ops installed under Node 20 and run under Node 22, say —
 * Node's own `node:sqlite` (Node ≥ 22.16 has `backup()`) does the same job.
 */
interface SqliteBackend {
  name: 'better-sqlite3' | 'node:sqlite'
  backup(source: string, destination: string): Promise<void>
  get<T>(file: string, sql: string, params: unknown[]): T | undefined
  version(file: string): string
}

let backend: Promise<SqliteBackend> | undefined

async function loadBetterSqlite(): Promise<SqliteBackend> {
  const {default: Database} = await import('better-sqlite3')
  // Opening an in-memory database forces the native binding to load now, not later mid-backup.
  new Database(':memory:').close()
  const open = (file: string) => new Database(file, {readonly: true, fileMustExist: true})
  return {
    name: 'better-sqlite3',
    async backup(source, destination) {
      const db = open(source)
      try {
        await db.backup(destination)
      } finally {
        db.close()
      }
    },
    get<T>(file: string, sql: string, params: unknown[]) {
      const db = open(file)
      try {
        return db.prepare(sql).get(...params) as T | undefined
      } finally {
        db.close()
      }
    },
    version(file) {
      const db = open(file)
      try {
        return (db.prepare('SELECT sqlite_version() AS v').get() as {v: string}).v
      } finally {
        db.close()
      }
    },
  }
}

async function loadNodeSqlite(): Promise<SqliteBackend> {
  // node:sqlite announces itself as experimental on stderr; users' output must stay clean.
  const original = process.emitWarning
  process.emitWarning = ((warning: string | Error, ...rest: unknown[]) => {
    if (String((warning as Error)?.message ?? warning).includes('SQLite is an experimental')) return
    return (original as (...args: unknown[]) => void).call(process, warning, ...rest)
  }) as typeof process.emitWarning
  let sqlite: any
  try {
    sqlite = await import('node:sqlite' as string)
  } finally {
    process.emitWarning = original
  }
  if (typeof sqlite.backup !== 'function') throw new Error('node:sqlite has no backup() (needs Node ≥ 22.16)')
  const open = (file: string) => new sqlite.DatabaseSync(file, {readOnly: true})
  return {
    name: 'node:sqlite',
    async backup(source, destination) {
      const db = open(source)
      try {
        await sqlite.backup(db, destination)
      } finally {
        db.close()
      }
    },
    get<T>(file: string, sql: string, params: unknown[]) {
      const db = open(file)
      try {
        return db.prepare(sql).get(...params) as T | undefined
      } finally {
        db.close()
      }
    },
    version(file) {
      const db = open(file)
      try {
        return (db.prepare('SELECT sqlite_version() AS v').get() as {v: string}).v
      } finally {
        db.close()
      }
    },
  }
}

export function sqliteBackend(): Promise<SqliteBackend> {
  backend ??= loadBetterSqlite().catch(async (nativeError: Error) => {
    try {
      return await loadNodeSqlite()
    } catch {
      throw new Error(`cannot open SQLite: better-sqlite3 failed to load (${nativeError.message.split('\n')[0]}) and node:sqlite is unavailable; run \`npm rebuild better-sqlite3\` under this Node version`)
    }
  })
  return backend
}

/** Copies a live SQLite database consistently with SQLite's online backup API; returns the SQLite version. */
export async function sqliteOnlineBackup(source: string, destination: string): Promise<string> {
  const sqlite = await sqliteBackend()
  await sqlite.backup(source, destination)
  return sqlite.version(destination)
}

export async function sqliteGet<T>(file: string, sql: string, params: unknown[] = []): Promise<T | undefined> {
  return (await sqliteBackend()).get<T>(file, sql, params)
}
