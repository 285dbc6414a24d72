/** Bearer JWTs (HS256, signed with SECRET_KEY) for /api/v1. `charge-ops service token` mints them. */
import {jwtVerify, SignJWT} from 'jose'

export const ISSUER = 'charge-ops'
export const AUDIENCE = 'charge-analysis-api'

const keyOf = (secret: string) => new TextEncoder().encode(secret)

export interface TokenClaims {
  sub: string
  scope: string
}

export async function mintToken(
  secret: string,
  options: {subject: string; ttlSeconds: number; scope?: string},
): Promise<{token: string; expiresAt: string}> {
  const now = Math.floor(Date.now() / 1000)
  const exp = now + options.ttlSeconds
  const token = await new SignJWT({scope: options.scope ?? 'api'})
    .setProtectedHeader({alg: 'HS256', typ: 'JWT'})
    .setIssuer(ISSUER)
    .setAudience(AUDIENCE)
    .setSubject(options.subject)
    .setIssuedAt(now)
    .setExpirationTime(exp)
    .sign(keyOf(secret))
  return {token, expiresAt: new Date(exp * 1000).toISOString()}
}

export async function verifyToken(secret: string, token: string): Promise<TokenClaims> {
  const {payload} = await jwtVerify(token, keyOf(secret), {issuer: ISSUER, audience: AUDIENCE, algorithms: ['HS256']})
  return {sub: String(payload.sub ?? ''), scope: String(payload.scope ?? 'api')}
}
