/**
 * Serves the built web UI (dist/web, `npm run build`) at / — the quick start's one URL. In compose
 * and Kubernetes the UI has its own nginx image instead (templates/nginx: same caching and CSP).
 *
 *   /assets/*     content-hashed files: cached for a year, immutable
 *   /config.json  the runtime override of the build's VITE_* settings: never cached
 *   anything else that is a GET for a page (not /api, /ws, /health, /metrics): index.html, never
 *   cached, so the UI's own paths (/sessions, /analyses/…) survive a reload
 */
import {join} from 'node:path'

import type {FastifyInstance, FastifyReply} from 'fastify'

/**
 * What the UI needs and nothing more: its own scripts and styles (no inline script, no eval), the
 * API and /ws on its own origin (ws: / wss: spelled out for browsers whose 'self' does not cover them).
 */
export function contentSecurityPolicy(connect: string[] = []): string {
  return [
    "default-src 'none'",
    "script-src 'self'",
    "style-src 'self'",
    "img-src 'self' data:",
    "font-src 'self'",
    `connect-src 'self' ${connect.join(' ')}`.trim(),
    "manifest-src 'self'",
    "base-uri 'none'",
    "form-action 'none'",
    "frame-ancestors 'none'",
  ].join('; ')
}

const NOT_THE_UI = /^\/(api|ws|health|metrics)(\/|\?|$)/

export async function registerWebUi(app: FastifyInstance, root: string): Promise<void> {
  const fastifyStatic = (await import('@fastify/static')).default
  const pageHeaders = (reply: FastifyReply, host: string | undefined) =>
    reply
      .header('cache-control', 'no-cache')
      .header('content-security-policy', contentSecurityPolicy(host ? [`ws://${host}`, `wss://${host}`] : []))
      .header('x-content-type-options', 'nosniff')
      .header('referrer-policy', 'strict-origin-when-cross-origin')
  await app.register(fastifyStatic, {
    root,
    prefix: '/',
    index: false,
    wildcard: true,
    setHeaders(res, path) {
      res.header(
        'cache-control',
        path.startsWith(join(root, 'assets')) ? 'public, max-age=31536000, immutable' : 'no-cache',
      )
      res.header('x-content-type-options', 'nosniff')
    },
  })
  const page = async (request: {headers: {host?: string}}, reply: FastifyReply) => {
    pageHeaders(reply, request.headers.host)
    return reply.type('text/html; charset=utf-8').sendFile('index.html', {cacheControl: false})
  }
  app.get('/', page)
  app.setNotFoundHandler((request, reply) => {
    const path = request.url.split('?')[0]!
    if (request.method === 'GET' && !NOT_THE_UI.test(path) && !path.startsWith('/assets/') && !/\.\w+$/.test(path))
      return page(request, reply)
    return reply.code(404).send({error: {code: 'not_found', message: `no route ${request.method} ${path}`}})
  })
}
