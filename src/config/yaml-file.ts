import {isNode, LineCounter, parseDocument, type Document} from 'yaml'
import type {z} from 'zod'

import type {Finding} from './findings.js'

export interface ParsedYaml {
  file: string
  document: Document.Parsed
  lineCounter: LineCounter
  findings: Finding[]
}

/** Parses YAML keeping positions; syntax errors become findings with their line. */
export function parseYamlText(text: string, file: string): ParsedYaml {
  const lineCounter = new LineCounter()
  const document = parseDocument(text, {lineCounter, prettyErrors: false, uniqueKeys: true})
  const findings: Finding[] = []
  for (const error of document.errors) {
    const line = error.linePos?.[0]?.line ?? (error.pos ? lineCounter.linePos(error.pos[0]).line : undefined)
    findings.push({
      file,
      line,
      severity: 'error',
      rule: 'yaml/syntax',
      message: `YAML syntax error: ${error.message.split('\n')[0]}`,
      fix: 'Fix the YAML syntax (indentation, a missing colon or quote) at this line.',
    })
  }
  return {file, document, lineCounter, findings}
}

/** The 1-based line of the value (or key) at `path`, or of the nearest existing parent. */
export function lineOf(parsed: ParsedYaml, path: ReadonlyArray<PropertyKey>): number | undefined {
  for (let depth = path.length; depth >= 0; depth--) {
    const node = parsed.document.getIn(path.slice(0, depth) as (string | number)[], true)
    if (isNode(node) && node.range) return parsed.lineCounter.linePos(node.range[0]).line
    if (depth === path.length && depth > 0) {
      // the key exists but its value is null: find the pair's key
      const parent = parsed.document.getIn(path.slice(0, depth - 1) as (string | number)[], true) as {
        items?: Array<{key?: {value?: unknown; range?: number[]}}>
      }
      const pair = parent?.items?.find((item) => item.key?.value === path[depth - 1])
      if (pair?.key?.range) return parsed.lineCounter.linePos(pair.key.range[0]).line
    }
  }
  return undefined
}

/** Validates a parsed YAML document against a zod schema, mapping each issue to its line. */
export function validateYaml<S extends z.ZodType>(
  parsed: ParsedYaml,
  schema: S,
  rulePrefix: string,
): {value?: z.infer<S>; findings: Finding[]} {
  if (parsed.findings.length > 0) return {findings: parsed.findings}
  const data = parsed.document.toJS() ?? {}
  const result = schema.safeParse(data)
  if (result.success) return {value: result.data, findings: []}
  const findings: Finding[] = result.error.issues.flatMap((issue) => {
    const keys = issue.code === 'unrecognized_keys' ? (issue as {keys: string[]}).keys : [undefined]
    return keys.map((unknownKey) => {
      const path = unknownKey === undefined ? issue.path : [...issue.path, unknownKey]
      const key = path.map(String).join('.') || '(document)'
      const isUnknown = unknownKey !== undefined
      return {
        file: parsed.file,
        line: lineOf(parsed, path),
        key,
        severity: 'error' as const,
        rule: `${rulePrefix}/${isUnknown ? 'unknown-key' : 'schema'}`,
        message: isUnknown ? `unknown key "${key}"` : `${key}: ${issue.message}`,
        fix: isUnknown
          ? 'Remove the key or fix its spelling (see the README for the charge-ops.yaml reference).'
          : describeFix(issue),
      }
    })
  })
  return {findings}
}

function describeFix(issue: z.core.$ZodIssue): string {
  if (issue.code === 'invalid_type') return `Set it to a ${String((issue as {expected?: string}).expected)}.`
  if (issue.code === 'invalid_value')
    return `Use one of: ${((issue as {values?: unknown[]}).values ?? []).map(String).join(', ')}.`
  return 'Correct the value as the message says.'
}
