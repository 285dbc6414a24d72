/**
 * How a command writes a file plan (init, monitoring, schedule install): applyPlan, and when it
 * refuses to overwrite a file that was edited, the diff of every such file (redacted) on stderr
 * before the error, so the operator sees what --force would replace.
 */
import type {ApplyOptions, ApplyResult, FileOutcome, PlannedFile} from '../core/fs/file-plan.js'
import {redact} from '../output/redact.js'

/** One file's diff on stderr, secrets masked (a diff of .env holds passwords). */
export function showDiff(outcome: FileOutcome): void {
  if (outcome.diff) process.stderr.write(redact(outcome.diff))
}

export async function applyPlanShowingDiffs(
  plan: readonly PlannedFile[],
  dir: string,
  options: ApplyOptions,
): Promise<ApplyResult> {
  const {applyPlan, comparePlan} = await import('../core/fs/file-plan.js')
  try {
    return await applyPlan(plan, dir, options)
  } catch (error) {
    if ((error as {code?: string}).code === 'WOULD_OVERWRITE') for (const o of comparePlan(plan, dir)) showDiff(o)
    throw error
  }
}
