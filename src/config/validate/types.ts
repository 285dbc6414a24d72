import type {Finding, Severity} from '../findings.js'

/** The kinds of file `config validate` understands. */
export const FILE_KINDS = [
  'charge-ops-yaml',
  'backend-env',
  'frontend-env',
  'compose',
  'postgresql-conf',
  'redis-conf',
  'crontab',
] as const
export type FileKind = (typeof FILE_KINDS)[number]

export const KIND_LABEL: Record<FileKind, string> = {
  'charge-ops-yaml': 'charge-ops.yaml',
  'backend-env': 'backend .env',
  'frontend-env': 'frontend .env.production',
  compose: 'docker-compose file',
  'postgresql-conf': 'postgresql.conf',
  'redis-conf': 'redis.conf',
  crontab: 'crontab',
}

export interface RuleContext {
  /** --strict, ENVIRONMENT=production or charge-ops.yaml environment: production */
  strict: boolean
  /** the database host's RAM, for postgresql.conf sizing */
  hostRamBytes: number
}

/** Shorthand used by every validator: a finding builder bound to one file. */
export function findingsFor(file: string) {
  const findings: Finding[] = []
  const add = (
    severity: Severity,
    rule: string,
    message: string,
    fix: string | undefined,
    line?: number,
    key?: string,
  ) => {
    findings.push({file, line, key, severity, rule, message, fix})
  }
  return {findings, add}
}

/** A strict-mode rule is an error under --strict / production and a warning otherwise. */
export const strictSeverity = (ctx: RuleContext): Severity => (ctx.strict ? 'error' : 'warning')
