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
  get<T>(file: string, sql: string, params: unknown[]): Promise<T | undefined>
  version(file: string): Promise<string>
}

let backend: Promise<SqliteBackend> | undefined

interface ReadonlyDb {
  prepare(sql: string): {get(...params: any[]): unknown}
  close(): void
}

/** Both drivers share the same shape: open read-only, do one thing, always close. */
function backendOf(
  name: SqliteBackend['name'],
  open: (file: string) => ReadonlyDb,
  backupOpen: (db: ReadonlyDb, destination: string) => Promise<unknown>,
): SqliteBackend {
  const withDb = async <T>(file: string, fn: (db: ReadonlyDb) => T | Promise<T>): Promise<T> => {
    const db = open(file)
    try {
      return await fn(db)
    } finally {
      db.close()
    }
  }
  return {
    name,
    backup: async (source, destination) => void (await withDb(source, (db) => backupOpen(db, destination))),
    get: <T>(file: string, sql: string, params: unknown[]) =>
      withDb(file, (db) => db.prepare(sql).get(...params) as T | undefined),
    version: (file) => withDb(file, (db) => (db.prepare('SELECT sqlite_version() AS v').get() as {v: string}).v),
  }
}

async function loadBetterSqlite(): Promise<SqliteBackend> {
  const {default: Database} = await import('better-sqlite3')
  // Opening an in-memory database forces the native binding to load now, not later mid-backup.
  new Database(':memory:').close()
  return backendOf(
    'better-sqlite3',
    (file) => new Database(file, {readonly: true, fileMustExist: true}),
    (db, destination) => (db as InstanceType<typeof Database>).backup(destination),
  )
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
  return backendOf(
    'node:sqlite',
    (file) => new sqlite.DatabaseSync(file, {readOnly: true}),
    (db, destination) => sqlite.backup(db, destination),
  )
}

export function sqliteBackend(): Promise<SqliteBackend> {
  backend ??= loadBetterSqlite().catch(async (nativeError: Error) => {
    try {
      return await loadNodeSqlite()
    } catch {
      throw new Error(
        `cannot open SQLite: better-sqlite3 failed to load (${nativeError.message.split('\n')[0]}) and node:sqlite is unavailable; run \`npm rebuild better-sqlite3\` under this Node version`,
      )
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
