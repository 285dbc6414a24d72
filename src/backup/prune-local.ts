/** Local repositories: removes the empty backup directories left after deleting their files. */
import {readdir, rmdir} from 'node:fs/promises'
import {join} from 'node:path'

import type {RepositoryStorage} from '../repository/storage.js'

export async function rmdirEmpty(storage: RepositoryStorage, prefix: string): Promise<void> {
  const root = (storage as {root?: string}).root
  if (!root) return
  // depth first: a file-engine backup leaves nested pg_data/base/<oid>/ directories
  const prune = async (dir: string): Promise<void> => {
    const entries = await readdir(dir, {withFileTypes: true}).catch(() => [])
    for (const entry of entries) {
      if (!entry.isDirectory()) continue
      await prune(join(dir, entry.name))
      await rmdir(join(dir, entry.name)).catch(() => {}) // fails (kept) when not empty
    }
  }
  await prune(join(root, ...prefix.split('/').filter(Boolean)))
}
