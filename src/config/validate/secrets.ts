/** Words that mark a value as a template placeholder rather than a real secret. */
const PLACEHOLDER_PATTERNS = [
  /replace[_-]?me/i,
  /change[_-]?me/i,
  /change[_-]?this/i,
  /^<.*>$/,
  /^(secret|password|passwd|pass|admin|default|example|test|todo|xxx+|dummy|placeholder|your[_-].*|my[_-]?secret.*|secret[_-]?key|null|none|undefined)$/i,
  /^(.)\1*$/,
  /insecure/i,
  /^your/i,
]

/** True for REPLACE_ME, changeme, <REPLACE_ME>, secret, xxxxx, your-secret-key, … */
export function isPlaceholder(value: string): boolean {
  const v = value.trim()
  if (v === '') return true
  return PLACEHOLDER_PATTERNS.some((p) => p.test(v))
}

/** True when the value is an unexpanded ${VAR} reference (filled in at deploy time). */
export function isInterpolated(value: string): boolean {
  return /\$\{[A-Za-z_][A-Za-z0-9_]*(:?[-?][^}]*)?\}/.test(value)
}
