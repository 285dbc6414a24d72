import type {Finding} from './findings.js'

/** One KEY=VALUE assignment of a dotenv file, with the line it came from. */
export interface EnvEntry {
  key: string
  value: string
  line: number
}

export interface ParsedEnvFile {
  file: string
  entries: Map<string, EnvEntry>
  findings: Finding[]
}

const KEY = /^[A-Za-z_][A-Za-z0-9_]*$/

/**
 * Parses a dotenv file the way docker compose and python-dotenv read it (KEY=VALUE, optional
 * `export `, # comments, single / double quotes, escapes in double quotes) while keeping line
 * numbers, and reports every line it cannot read instead of stopping at the first.
 */
export function parseEnvText(text: string, file: string): ParsedEnvFile {
  const entries = new Map<string, EnvEntry>()
  const findings: Finding[] = []
  const lines = text.split(/\r?\n/)
  for (let index = 0; index < lines.length; index++) {
    const lineNo = index + 1
    let raw = lines[index].trim()
    if (raw === '' || raw.startsWith('#')) continue
    if (raw.startsWith('export ')) raw = raw.slice(7).trim()
    const eq = raw.indexOf('=')
    if (eq <= 0) {
      findings.push({
        file,
        line: lineNo,
        severity: 'error',
        rule: 'env/syntax',
        message: `line is not KEY=VALUE`,
        fix: 'Write the line as KEY=VALUE, or start it with # to make it a comment.',
      })
      continue
    }
    const key = raw.slice(0, eq).trim()
    if (!KEY.test(key)) {
      findings.push({
        file,
        line: lineNo,
        severity: 'error',
        rule: 'env/syntax',
        message: `"${key.slice(0, 40)}" is not a valid variable name`,
        fix: 'Variable names use letters, digits and underscores and do not start with a digit.',
      })
      continue
    }
    let value = raw.slice(eq + 1).trim()
    const quote = value[0]
    if (quote === '"' || quote === "'") {
      const close = findClosingQuote(value, quote)
      if (close === -1) {
        findings.push({
          file,
          line: lineNo,
          key,
          severity: 'error',
          rule: 'env/syntax',
          message: `${key}: the ${quote === '"' ? 'double' : 'single'} quote is never closed`,
          fix: `Close the quote on the same line.`,
        })
        continue
      }
      const inner = value.slice(1, close)
      value =
        quote === '"'
          ? inner.replace(
              /\\([nrt"\\])/g,
              (_m, c: string) => ({n: '\n', r: '\r', t: '\t', '"': '"', '\\': '\\'})[c] ?? c,
            )
          : inner
    } else {
      const comment = value.search(/\s#/)
      if (comment !== -1) value = value.slice(0, comment).trim()
    }
    if (entries.has(key)) {
      findings.push({
        file,
        line: lineNo,
        key,
        severity: 'warning',
        rule: 'env/duplicate',
        message: `${key} is set again (first on line ${entries.get(key)!.line}); the last one wins`,
        fix: 'Keep one assignment per variable.',
      })
    }
    entries.set(key, {key, value, line: lineNo})
  }
  return {file, entries, findings}
}

function findClosingQuote(value: string, quote: string): number {
  for (let i = 1; i < value.length; i++) {
    if (value[i] === '\\' && quote === '"') {
      i++
      continue
    }
    if (value[i] === quote) return i
  }
  return -1
}

export function envRecord(parsed: ParsedEnvFile): Record<string, string> {
  return Object.fromEntries([...parsed.entries.values()].map((e) => [e.key, e.value]))
}
