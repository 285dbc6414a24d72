import {redact, redactValue} from '../../output/redact.js'
import {location, type Finding} from '../findings.js'
import {formatPgMemory} from '../../core/units/size.js'
import type {ValidationReport} from './runner.js'

/** Human output: one block per finding (file:line, severity, key, message, fix), then a summary. */
export function renderText(
  report: Pick<ValidationReport, 'findings' | 'files' | 'summary' | 'strict' | 'strictReason' | 'hostRamBytes'>,
): string {
  const lines: string[] = []
  for (const f of report.findings) {
    lines.push(`${location(f)}: ${f.severity}${f.key ? ` [${f.key}]` : ''} ${f.message} (${f.rule})`)
    if (f.fix) lines.push(`  fix: ${f.fix}`)
  }
  const {errors, warnings, infos} = report.summary
  const plural = (n: number, word: string) => `${n} ${word}${n === 1 ? '' : 's'}`
  if (lines.length > 0) lines.push('')
  lines.push(
    `${plural(errors, 'error')}, ${plural(warnings, 'warning')}, ${plural(infos, 'note')} in ${plural(report.files.length, 'file')}` +
      `${report.strict ? ` (strict: ${report.strictReason})` : ''}; host RAM ${formatPgMemory(report.hostRamBytes)}`,
  )
  return redact(lines.join('\n'))
}

/** The JSON report (also what `--json` prints): findings and files, every string redacted. */
export function reportJson(report: ValidationReport): Omit<ValidationReport, 'parsed'> {
  const {parsed: _parsed, ...rest} = report
  return redactValue(rest)
}

const LEVEL: Record<Finding['severity'], 'error' | 'warning' | 'note'> = {
  error: 'error',
  warning: 'warning',
  info: 'note',
}

/** SARIF 2.1.0 for code scanning (GitHub, GitLab): one rule per rule id, one result per finding. */
export function toSarif(report: Pick<ValidationReport, 'findings'>, version: string): unknown {
  const ruleIds = [...new Set(report.findings.map((f) => f.rule))].sort()
  const rules = ruleIds.map((id) => {
    const sample = report.findings.find((f) => f.rule === id)!
    return {
      id,
      name: id.replace(/[/-](\w)/g, (_m, c: string) => c.toUpperCase()).replace(/^\w/, (c) => c.toUpperCase()),
      shortDescription: {text: id},
      defaultConfiguration: {level: LEVEL[sample.severity]},
      ...(sample.fix ? {help: {text: sample.fix}} : {}),
    }
  })
  const results = report.findings.map((f) => ({
    ruleId: f.rule,
    ruleIndex: ruleIds.indexOf(f.rule),
    level: LEVEL[f.severity],
    message: {text: f.fix ? `${f.message}. Fix: ${f.fix}` : f.message},
    locations: [
      {
        physicalLocation: {
          artifactLocation: {
            uri: f.file.split('\\').join('/'),
            ...(f.file.startsWith('/') ? {} : {uriBaseId: '%SRCROOT%'}),
          },
          ...(f.line ? {region: {startLine: f.line}} : {}),
        },
      },
    ],
    ...(f.key ? {properties: {key: f.key}} : {}),
  }))
  return redactValue({
    $schema: 'https://json.schemastore.org/sarif-2.1.0.json',
    version: '2.1.0',
    runs: [{tool: {driver: {name: 'charge-ops', version, rules}}, results}],
  })
}
