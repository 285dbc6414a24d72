/**
 * A resumable run's journal: one JSON file in the state directory, rewritten atomically (see
 * atomic.ts) before and after each step, so that a rerun after a kill knows which steps finished.
 * Used by `recover`, `restore files` and `upgrade`.
 */
import {readFileSync, rmSync} from 'node:fs'

import {CliError, ExitCode} from '../../errors.js'
import {writeFileAtomicSync} from './atomic.js'

export interface JsonJournal<T> {
  readonly file: string
  /**
   * The saved state, or undefined when there is none. A file that exists but cannot be read or
   * parsed is JOURNAL_UNREADABLE (exit 1), never "no journal": it may record a run that stopped
   * half-way (a repointed .env, a swapped folder), and starting afresh over it could undo or
   * repeat that work.
   */
  load(): T | undefined
  save(state: T): void
  remove(): void
}

export interface JsonJournalOptions {
  /** 0600 by default: journals may hold paths and URLs */
  mode?: number
  /** what the journal records, for the unreadable error ("the recover journal") */
  what?: string
  /** what the operator should check before moving a damaged journal aside */
  hint?: string
}

/** A journal at `file`. */
export function jsonJournal<T>(
  file: string,
  {mode = 0o600, what = 'the journal', hint}: JsonJournalOptions = {},
): JsonJournal<T> {
  return {
    file,
    load() {
      let text: string
      try {
        text = readFileSync(file, 'utf8')
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined
        throw unreadable(file, what, hint, error)
      }
      try {
        return JSON.parse(text) as T
      } catch (error) {
        throw unreadable(file, what, hint, error)
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

function unreadable(file: string, what: string, hint: string | undefined, error: unknown): CliError {
  return new CliError(
    'JOURNAL_UNREADABLE',
    ExitCode.findings,
    `${what} ${file} cannot be read: ${(error as Error).message}`,
    {
      hint: `${hint ?? 'Check by hand what the interrupted run did.'} Then move the file aside and rerun.`,
    },
  )
}
