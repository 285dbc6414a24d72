import type {Finding} from '../findings.js'
import {chargeOpsYamlSchema, type ChargeOpsYaml} from '../schema.js'
import {isMap, isScalar} from 'yaml'

import {lineOf, parseYamlText, validateYaml, type ParsedYaml} from '../yaml-file.js'
import {cronProblem} from './cron.js'
import {findingsFor} from './types.js'

export interface ValidatedChargeOpsYaml {
  value?: ChargeOpsYaml
  findings: Finding[]
  /** YAML syntax errors: the file cannot be parsed (exit 2) */
  unparsable: boolean
  /** line of the service: block (connection budget findings point there) */
  serviceLine?: number
}

/** charge-ops.yaml: YAML syntax, the zod schema (types, unknown keys), and each schedule's cron expression. */
export function validateChargeOpsYaml(text: string, file: string): ValidatedChargeOpsYaml {
  const parsed = parseYamlText(text, file)
  if (parsed.findings.length > 0) return {findings: parsed.findings, unparsable: true}
  const contents = parsed.document.contents
  if (contents !== null && !(contents as {items?: unknown}).items) {
    return {
      findings: [
        {
          file,
          line: 1,
          severity: 'error',
          rule: 'yaml/schema',
          message: 'charge-ops.yaml must be a mapping of keys (stack:, target:, backup: …)',
          fix: 'Start from the template: charge-ops init writes one.',
        },
      ],
      unparsable: false,
    }
  }
  const {value, findings: schemaFindings} = validateYaml(parsed, chargeOpsYamlSchema, 'yaml')
  // An unknown key whose value is a mapping is reported on the key's own line, not its first child's.
  const findings = schemaFindings.map((f) =>
    f.rule === 'yaml/unknown-key' && f.key ? {...f, line: keyLine(parsed, f.key.split('.')) ?? f.line} : f,
  )
  const {findings: extra, add} = findingsFor(file)
  const schedules = parsed.document.toJS()?.schedules
  if (schedules && typeof schedules === 'object') {
    for (const [name, job] of Object.entries(schedules as Record<string, {cron?: unknown}>)) {
      if (typeof job?.cron !== 'string') continue
      const problem = cronProblem(job.cron)
      if (problem)
        add(
          'error',
          'yaml/cron',
          `schedules.${name}.cron: invalid cron expression: ${problem}`,
          'Use 5 fields: minute hour day-of-month month day-of-week, e.g. "0 2 * * *".',
          lineOf(parsed, ['schedules', name, 'cron']),
          `schedules.${name}.cron`,
        )
    }
  }
  return {
    value,
    findings: [...findings, ...extra],
    unparsable: false,
    serviceLine: parsed.document.has('service') ? lineOf(parsed, ['service']) : undefined,
  }
}

/** The line of the key at `path` (lineOf gives the value's line, which for a mapping is its first child). */
function keyLine(parsed: ParsedYaml, path: string[]): number | undefined {
  const parent = path.length === 1 ? parsed.document.contents : parsed.document.getIn(path.slice(0, -1), true)
  if (!isMap(parent)) return undefined
  const pair = parent.items.find((item) => isScalar(item.key) && String(item.key.value) === path.at(-1))
  const range = isScalar(pair?.key) ? pair.key.range : undefined
  return range ? parsed.lineCounter.linePos(range[0]).line : undefined
}
