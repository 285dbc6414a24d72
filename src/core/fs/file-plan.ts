/**
 * Writes a plan of files into a directory without ever overwriting a change silently:
 * identical files are left alone, a file that differs is shown as a diff and asked about (or, when
 * nobody can be asked, the whole run is refused before anything is written unless --force), and
 * every write is temp file + fsync + rename, so a kill at any moment leaves either the old or the
 * new file, never half of one.
 */
import {chmodSync, existsSync, readFileSync, statSync} from 'node:fs'
import {join, posix, resolve} from 'node:path'

import {writeFileAtomicSync} from './atomic.js'
import {faultPoint} from '../faults.js'
import {UsageError} from '../../errors.js'
import {unifiedDiff} from './diff.js'

export interface PlannedFile {
  /** relative to the target directory, '/' separated */
  path: string
  content: string
  /** permission bits; 0o600 for anything holding a secret */
  mode: number
  /** numeric owner for files a container reads as its own user (applied only when running as root) */
  owner?: {uid: number; gid: number}
}

export type FileAction = 'create' | 'update' | 'unchanged' | 'mode' | 'kept'

export interface FileOutcome {
  path: string
  action: FileAction
  mode: string
  /** unified diff against the file on disk (update / kept) */
  diff?: string
}

export interface ApplyResult {
  dir: string
  dryRun: boolean
  files: FileOutcome[]
}

export interface ApplyOptions {
  force?: boolean
  dryRun?: boolean
  /**
   * Asked for each file that differs from what is on disk (after the diff was shown); undefined
   * when nobody can answer (not a TTY), in which case changed files are refused without --force.
   */
  confirm?: (file: FileOutcome) => Promise<boolean>
}

const octal = (mode: number) => (mode & 0o777).toString(8).padStart(4, '0')

/** Compares the plan with the directory: what would happen to each file. */
export function comparePlan(plan: readonly PlannedFile[], dir: string): FileOutcome[] {
  return plan.map((file) => {
    const target = join(dir, file.path)
    if (!existsSync(target)) return {path: file.path, action: 'create', mode: octal(file.mode)}
    const current = readFileSync(target, 'utf8')
    const currentMode = statSync(target).mode & 0o777
    if (current === file.content) {
      // Content is right; only a mode looser (or different) than intended is corrected.
      return {path: file.path, action: currentMode === file.mode ? 'unchanged' : 'mode', mode: octal(file.mode)}
    }
    return {
      path: file.path,
      action: 'update',
      mode: octal(file.mode),
      diff: unifiedDiff(current, file.content, `${file.path} (on disk)`, `${file.path} (init)`),
    }
  })
}

export async function applyPlan(
  plan: readonly PlannedFile[],
  dir: string,
  options: ApplyOptions = {},
): Promise<ApplyResult> {
  const root = resolve(dir)
  const outcomes = comparePlan(plan, root)
  const changed = outcomes.filter((o) => o.action === 'update')
  if (options.dryRun) return {dir: root, dryRun: true, files: outcomes}

  if (changed.length > 0 && !options.force && !options.confirm) {
    throw new UsageError(
      `${changed.length} file(s) differ from what init would write: ${changed.map((c) => c.path).join(', ')} — refusing to overwrite without --force`,
      {
        code: 'WOULD_OVERWRITE',
        hint: 'Review the diff above; rerun with --force to overwrite, or interactively to decide per file. Nothing was written.',
        data: {files: changed.map((c) => c.path)},
      },
    )
  }
  if (changed.length > 0 && !options.force && options.confirm) {
    for (const outcome of changed) {
      if (!(await options.confirm(outcome))) outcome.action = 'kept'
    }
  }

  for (const [index, outcome] of outcomes.entries()) {
    const file = plan[index]
    const target = join(root, file.path)
    if (outcome.action === 'create' || outcome.action === 'update') {
      writeFileAtomicSync(target, file.content, {mode: file.mode, owner: file.owner})
      // kill point files.written.<path, / as :> (init, schedule install, monitoring): a kill between two files
      await faultPoint(`files.written.${posix.normalize(file.path).replaceAll('/', ':')}`)
    } else if (outcome.action === 'mode') chmodSync(target, file.mode)
  }
  return {dir: root, dryRun: false, files: outcomes}
}
