/**
 * The one redactor (DESIGN §5). Every message, log line, error and JSON document printed by the CLI
 * passes through `redact()`. It removes:
 *  - passwords inside URLs (postgresql://user:pw@host, redis://:pw@host, s3/http URLs)
 *  - values of secret-looking assignments (SECRET_KEY=…, OPENAI_API_KEY: …, requirepass …, PGPASSWORD=…)
 *  - AWS access key ids and any exact secret value registered with `registerSecret()`
 */

export const MASK = '******'

const registeredSecrets = new Set<string>()

/** Names whose values are secrets wherever they appear (env keys, YAML keys, conf directives). */
export const SECRET_KEY_PATTERN =
  /(PASSWORD|PASSWD|SECRET|TOKEN|API_KEY|ACCESS_KEY|PRIVATE_KEY|REQUIREPASS|MASTERAUTH|ENCRYPTION_KEY)/i

export function isSecretKey(name: string): boolean {
  return SECRET_KEY_PATTERN.test(name)
}

/** Registers an exact value (a password read from a file, a generated key) to be masked everywhere. */
export function registerSecret(value: string | undefined | null): void {
  if (!value) return
  // Very short values would mask ordinary words; they are still caught by the structural rules.
  if (value.length < 4) return
  registeredSecrets.add(value)
  try {
    const encoded = encodeURIComponent(value)
    if (encoded !== value) registeredSecrets.add(encoded)
  } catch {
    // lone surrogates cannot be URI-encoded; the raw value is registered already
  }
}

export function clearRegisteredSecrets(): void {
  registeredSecrets.clear()
}

const URL_USERINFO = /\b([a-z][a-z0-9+.-]*:\/\/)([^\s:/@'"]*):([^\s@/'"]*)@/gi
const ASSIGNMENT = new RegExp(
  String.raw`\b([A-Z0-9_]*(?:PASSWORD|PASSWD|SECRET|TOKEN|API_KEY|ACCESS_KEY|PRIVATE_KEY|ENCRYPTION_KEY)[A-Z0-9_]*)(\s*[=:]\s*)("[^"]*"|'[^']*'|[^\s,;&"'}]+)`,
  'gi',
)
const CONF_DIRECTIVE = /^(\s*(?:requirepass|masterauth)\s+)(\S+)/gim
const AWS_ACCESS_KEY_ID = /\b(AKIA|ASIA)[A-Z0-9]{16}\b/g
const QUERY_PASSWORD = /([?&](?:password|sslpassword|token|secret)=)([^&\s'"]+)/gi

export function redact(text: string): string {
  if (!text) return text
  let out = text
  for (const secret of [...registeredSecrets].sort((a, b) => b.length - a.length)) {
    if (out.includes(secret)) out = out.split(secret).join(MASK)
  }
  out = out.replace(URL_USERINFO, (_m, scheme: string, user: string, password: string) =>
    password === '' || password === MASK ? `${scheme}${user}:${password}@` : `${scheme}${user}:${MASK}@`,
  )
  out = out.replace(QUERY_PASSWORD, (_m, key: string) => `${key}${MASK}`)
  out = out.replace(ASSIGNMENT, (_m, key: string, sep: string, value: string) =>
    value === MASK ? `${key}${sep}${value}` : `${key}${sep}${MASK}`,
  )
  out = out.replace(CONF_DIRECTIVE, (_m, directive: string) => `${directive}${MASK}`)
  out = out.replace(AWS_ACCESS_KEY_ID, MASK)
  return out
}

/** Deep-redacts a JSON-able value: secret-named keys are masked, strings are redacted. */
export function redactValue<T>(value: T): T {
  return redactDeep(value, undefined) as T
}

function redactDeep(value: unknown, key: string | undefined): unknown {
  if (typeof value === 'string') {
    if (key !== undefined && isSecretKey(key) && value !== '') return MASK
    return redact(value)
  }
  if (Array.isArray(value)) return value.map((item) => redactDeep(item, undefined))
  if (value && typeof value === 'object' && !(value instanceof Date)) {
    const out: Record<string, unknown> = {}
    for (const [k, v] of Object.entries(value)) out[k] = redactDeep(v, k)
    return out
  }
  return value
}

/** Masks the password part of a connection URL, keeping the rest readable. */
export function maskUrl(url: string): string {
  return redact(url)
}
