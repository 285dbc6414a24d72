/** `charge-ops service token`: a bearer JWT for /api/v1, signed with the stack's SECRET_KEY. */
import type {Settings} from '../config/settings.js'
import {requireSetting} from '../config/settings.js'
import {parseDuration} from '../core/units/duration.js'
import {UsageError} from '../errors.js'

export interface MintedToken {
  bearer: string
  subject: string
  scope: string
  expiresAt: string
}

export function parseTtl(text: string): number {
  const seconds = Math.round(
    parseDuration(text, {
      message: `--ttl "${text}" is not a duration`,
      hint: 'Use a number and a unit: 90s, 30m, 12h, 7d.',
    }) / 1000,
  )
  if (seconds < 1 || seconds > 366 * 86_400) throw new UsageError('--ttl must be between 1s and 366d')
  return seconds
}

export async function mintServiceToken(
  settings: Settings,
  options: {subject: string; ttl: string; scope?: string},
): Promise<MintedToken> {
  const secret = requireSetting(
    settings.backendEnv.SECRET_KEY,
    'SECRET_KEY',
    'Set SECRET_KEY in the backend .env: the service verifies tokens with it.',
  )
  const {mintToken} = await import('../../service/src/auth.js')
  const {token, expiresAt} = await mintToken(secret, {
    subject: options.subject,
    ttlSeconds: parseTtl(options.ttl),
    scope: options.scope,
  })
  return {bearer: token, subject: options.subject, scope: options.scope ?? 'api', expiresAt}
}
