/**
 * A resumable run's journal: one JSON file in the state directory, rewritten atomically (see
 * atomic.ts) before and after each step, so that a rerun after a kill knows which steps finished.
 * Used by `recover`, `restore files` and `upgrade`.
 */
import {readFileSync, rmSync} from 'node:fs'

import {writeFileAtomicSync} from './atomic.js'

export interface JsonJournal<T> {
  readonly file: string
  /** the saved state, or undefined when there is none (or it is unreadable) */
  load(): T | undefined
  save(state: T): void
  remove(): void
}

/** A journal at `file`, written with `mode` (0600 by default: journals may hold paths and URLs). */
export function jsonJournal<T>(file: string, mode = 0o600): JsonJournal<T> {
  return {
    file,
    load() {
      try {
        return JSON.parse(readFileSync(file, 'utf8')) as T
      } catch {
        return undefined
      }
    },
    save(state) {
      writeFileAtomicSync(file, JSON.stringify(state, null, 2) + '\n', {mode})
    },
    remove() {
      rmSync(file, {force: true})
    },
  }
}
