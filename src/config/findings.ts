/** A problem found in a configuration file: where, what, how bad, and how to fix it. */
export type Severity = 'error' | 'warning' | 'info'

export interface Finding {
  file: string
  line?: number
  key?: string
  severity: Severity
  /** stable rule id, e.g. `env/secret-key-placeholder` (used by SARIF and for suppression) */
  rule: string
  /** what is wrong; never contains a secret's value */
  message: string
  /** how to fix it */
  fix?: string
}

export function location(finding: Pick<Finding, 'file' | 'line'>): string {
  return finding.line ? `${finding.file}:${finding.line}` : finding.file
}

export const severityRank: Record<Severity, number> = {error: 0, warning: 1, info: 2}

export function sortFindings(findings: Finding[]): Finding[] {
  return [...findings].sort(
    (a, b) =>
      a.file.localeCompare(b.file) ||
      (a.line ?? 0) - (b.line ?? 0) ||
      severityRank[a.severity] - severityRank[b.severity],
  )
}
