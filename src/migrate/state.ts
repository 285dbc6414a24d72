/**
 * Compares the migration files with the history table: which are applied, pending, changed since
 * they were applied, applied but missing on disk, failed, or pending below the applied head.
 * Pure: no database access, so it is unit-tested directly.
 */
import {compareVersions, type MigrationFile} from './files.js'
import type {HistoryRow} from './history.js'

export type MigrationState = 'applied' | 'baseline' | 'pending' | 'out-of-order' | 'changed' | 'missing' | 'failed'

export interface StatusEntry {
  version: string
  name: string
  file?: string
  state: MigrationState
  transactional?: boolean
  reversible?: boolean
  appliedAt?: string
  executionMs?: number
  appliedBy?: string
  fileChecksum?: string
  appliedChecksum?: string
}

export interface Problem {
  kind: 'changed' | 'missing' | 'failed' | 'out-of-order'
  version: string
  name: string
  message: string
  hint: string
}

export interface MigrationComparison {
  entries: StatusEntry[]
  /** the highest successfully applied (or baselined) version, null when none */
  current: string | null
  pending: MigrationFile[]
  problems: Problem[]
}

export function compareWithHistory(files: MigrationFile[], history: HistoryRow[]): MigrationComparison {
  const byVersion = new Map<string, HistoryRow>()
  for (const row of history) byVersion.set(BigInt(row.version).toString(), row)
  const seen = new Set<string>()
  const entries: StatusEntry[] = []
  const problems: Problem[] = []

  const succeeded = history.filter((r) => r.success)
  const current =
    succeeded.length > 0
      ? succeeded.reduce((a, b) => (compareVersions(a.version, b.version) >= 0 ? a : b)).version
      : null

  const pending: MigrationFile[] = []
  for (const file of files) {
    const key = BigInt(file.version).toString()
    seen.add(key)
    const row = byVersion.get(key)
    const base = {
      version: file.version,
      name: file.name,
      file: file.file,
      transactional: file.transactional,
      reversible: file.down !== undefined,
      fileChecksum: file.checksum,
    }
    if (!row) {
      const outOfOrder = current !== null && compareVersions(file.version, current) < 0
      entries.push({...base, state: outOfOrder ? 'out-of-order' : 'pending'})
      pending.push(file)
      if (outOfOrder) {
        problems.push({
          kind: 'out-of-order',
          version: file.version,
          name: file.name,
          message: `${file.file} is pending but ${current} (a later version) is already applied`,
          hint: 'Renumber the new migration above the applied head (migrate create does this), or apply it deliberately with `migrate up --out-of-order`.',
        })
      }
      continue
    }
    const applied = {
      appliedAt: row.appliedAt,
      executionMs: row.executionMs,
      appliedBy: row.appliedBy,
      appliedChecksum: row.checksum,
    }
    if (!row.success) {
      entries.push({...base, ...applied, state: 'failed'})
      problems.push({
        kind: 'failed',
        version: file.version,
        name: file.name,
        message: `${file.file} failed or was interrupted (a no-transaction migration); its statements may be partly applied`,
        hint: 'Check the schema and finish or undo the partial change by hand, then run `charge-ops migrate repair --yes` to clear the failed entry and rerun `migrate up`.',
      })
      continue
    }
    if (row.checksum !== file.checksum) {
      entries.push({...base, ...applied, state: 'changed'})
      problems.push({
        kind: 'changed',
        version: file.version,
        name: file.name,
        message: `${file.file} was edited after it was applied (checksum ${row.checksum.slice(0, 12)}… in the database, ${file.checksum.slice(0, 12)}… on disk)`,
        hint: 'Revert the edit and put the change in a new migration (`charge-ops migrate create`). If the edit is cosmetic, `charge-ops migrate repair --yes` records the new checksum.',
      })
      continue
    }
    entries.push({...base, ...applied, state: row.kind === 'baseline' ? 'baseline' : 'applied'})
  }
  for (const row of history) {
    if (seen.has(BigInt(row.version).toString())) continue
    entries.push({
      version: row.version,
      name: row.name,
      state: row.success ? 'missing' : 'failed',
      appliedAt: row.appliedAt,
      executionMs: row.executionMs,
      appliedBy: row.appliedBy,
      appliedChecksum: row.checksum,
    })
    problems.push({
      kind: row.success ? 'missing' : 'failed',
      version: row.version,
      name: row.name,
      message: row.success
        ? `${row.version}_${row.name} is applied but its file is missing`
        : `${row.version}_${row.name} failed and its file is missing`,
      hint: 'Restore the file (are you on the right release / branch?), or remove the history entry with `charge-ops migrate repair --yes` if the migration was deliberately dropped.',
    })
  }
  entries.sort((a, b) => compareVersions(a.version, b.version))
  return {entries, current, pending, problems}
}
