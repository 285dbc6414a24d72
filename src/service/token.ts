/** `charge-ops service token`: a bearer JWT for /api/v1, signed with the stack's SECRET_KEY. */
import type {Settings} from '../config/settings.js'
import {requireSetting} from '../config/settings.js'
import {UsageError} from '../errors.js'

export interface MintedToken {
  bearer: string
  subject: string
  scope: string
  expiresAt: string
}

const UNITS: Record<string, number> = {s: 1, m: 60, h: 3600, d: 86_400}

export function parseTtl(text: string): number {
  const m = /^(\d+)([smhd])$/.exec(text.trim())
  if (!m) throw new UsageError(`--ttl "${text}" is not a duration`, {hint: 'Use a number and a unit: 90s, 30m, 12h, 7d.'})
  const seconds = Number(m[1]) * UNITS[m[2]!]!
  if (seconds < 1 || seconds > 366 * 86_400) throw new UsageError('--ttl must be between 1s and 366d')
  return seconds
}

export async function mintServiceToken(settings: Settings, options: {subject: string; ttl: string; scope?: string}): Promise<MintedToken> {
  const secret = requireSetting(settings.backendEnv.SECRET_KEY, 'SECRET_KEY', 'Set SECRET_KEY in the backend .env: the service verifies tokens with it.')
  const {mintToken} = await import('../../service/src/auth.js')
  const {token, expiresAt} = await mintToken(secret, {subject: options.subject, ttlSeconds: parseTtl(options.ttl), scope: options.scope})
  return {bearer: token, subject: options.subject, scope: options.scope ?? 'api', expiresAt}
}
