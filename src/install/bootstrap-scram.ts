/**
 * SCRAM-SHA-256 verifiers computed client-side (RFC 5802 / RFC 7677, PostgreSQL's format), so
 * `CREATE ROLE … PASSWORD '<verifier>'` never carries the plain password: not in the server's
 * statement log (log_statement = ddl / all), not in pg_stat_activity, not in our output.
 */
import {createHash, createHmac, pbkdf2Sync, randomBytes, timingSafeEqual} from 'node:crypto'

export const SCRAM_ITERATIONS = 4096

/**
 * PostgreSQL applies SASLprep to the password and, when that fails, uses the raw bytes. For the
 * common cases (ASCII, or text that NFKC leaves alone) this matches; non-ASCII spaces map to space
 * and "mapped to nothing" characters are removed, as RFC 4013 says.
 */
export function saslPrep(password: string): string {
  if (/^[\x20-\x7E]*$/.test(password)) return password
  const mapped = password
    .replace(/[\u00A0\u1680\u2000-\u200B\u202F\u205F\u3000]/g, ' ')
    .replace(/[\u00AD\u034F\u1806\u180B-\u180D\u200C\u200D\u2060\uFE00-\uFE0F\uFEFF]/g, '')
  return mapped.normalize('NFKC')
}

export function scramVerifier(password: string, salt: Buffer = randomBytes(16), iterations = SCRAM_ITERATIONS): string {
  const salted = pbkdf2Sync(Buffer.from(saslPrep(password), 'utf8'), salt, iterations, 32, 'sha256')
  const clientKey = createHmac('sha256', salted).update('Client Key').digest()
  const storedKey = createHash('sha256').update(clientKey).digest()
  const serverKey = createHmac('sha256', salted).update('Server Key').digest()
  return `SCRAM-SHA-256$${iterations}:${salt.toString('base64')}$${storedKey.toString('base64')}:${serverKey.toString('base64')}`
}

/** Whether a stored verifier (pg_authid.rolpassword) is the one for `password`. */
export function verifierMatches(stored: string | null | undefined, password: string): boolean {
  const m = /^SCRAM-SHA-256\$(\d+):([^$]+)\$([^:]+):(.+)$/.exec(stored ?? '')
  if (!m) return false
  const expected = scramVerifier(password, Buffer.from(m[2], 'base64'), Number(m[1]))
  const a = Buffer.from(expected)
  const b = Buffer.from(stored!)
  return a.length === b.length && timingSafeEqual(a, b)
}
