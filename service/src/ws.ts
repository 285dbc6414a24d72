/**
 * GET /ws: the web UI's live channel. A browser cannot put an Authorization header on a WebSocket,
 * and a token in the URL would land in proxy access logs, so the client sends the same bearer JWT
 * as its first message ({"type":"auth","token":"…"}); until then nothing is sent, and without a valid
 * one within AUTH_TIMEOUT_MS the socket is closed with 4401. Then every event of the Redis channel
 * (events.ts) is forwarded: analysis state changes and maintenance switches.
 *
 * One subscriber connection per API process, opened with the first client; ioredis re-subscribes
 * by itself after a Redis restart. Works behind nginx's `location /ws` (Upgrade headers), so both
 * /ws and /ws/ answer.
 */
import type {FastifyInstance} from 'fastify'
import type {Redis} from 'ioredis'
import type {Logger} from 'pino'
import type {WebSocket} from 'ws'

import {verifyToken} from './auth.js'
import {EVENTS_CHANNEL, parseEvent} from './events.js'
import {SERVICE_VERSION} from './version.js'

export const AUTH_TIMEOUT_MS = 5000
const PING_EVERY_MS = 25_000
/** close codes the UI understands: 4401 = sign in again (no retry), others = reconnect with backoff */
export const CLOSE_UNAUTHORIZED = 4401

export async function registerLiveEvents(
  app: FastifyInstance,
  deps: {secretKey: string; redis: Redis; logger: Logger},
): Promise<void> {
  const websocket = (await import('@fastify/websocket')).default
  await app.register(websocket, {options: {maxPayload: 64 * 1024}})
  const clients = new Set<WebSocket>()
  let subscriber: Redis | undefined

  const subscribe = () => {
    if (subscriber) return
    // its own connection (a subscribed connection can do nothing else), queuing while Redis is down
    subscriber = deps.redis.duplicate({enableOfflineQueue: true, maxRetriesPerRequest: null})
    subscriber.on('error', () => {})
    subscriber.on('message', (_channel: string, text: string) => {
      if (!parseEvent(text)) return
      for (const socket of clients) if (socket.readyState === socket.OPEN) socket.send(text)
    })
    subscriber
      .subscribe(EVENTS_CHANNEL)
      .catch((error: Error) =>
        deps.logger.warn({err: error.message}, 'live events: subscribe failed; retried on reconnect'),
      )
  }

  const handler = (socket: WebSocket) => {
    let authed = false
    const timer = setTimeout(() => socket.close(CLOSE_UNAUTHORIZED, 'authenticate within 5 s'), AUTH_TIMEOUT_MS)
    const ping = setInterval(() => socket.readyState === socket.OPEN && socket.ping(), PING_EVERY_MS)
    socket.on('message', (data) => {
      if (authed) return // the channel is one-way after auth
      let token = ''
      try {
        const message = JSON.parse(String(data)) as {type?: string; token?: string}
        if (message.type === 'auth' && typeof message.token === 'string') token = message.token
      } catch {
        // not JSON: unauthenticated
      }
      verifyToken(deps.secretKey, token)
        .then(() => {
          authed = true
          clearTimeout(timer)
          clients.add(socket)
          subscribe()
          socket.send(JSON.stringify({type: 'hello', version: SERVICE_VERSION}))
        })
        .catch(() => socket.close(CLOSE_UNAUTHORIZED, 'invalid token'))
    })
    socket.on('close', () => {
      clearTimeout(timer)
      clearInterval(ping)
      clients.delete(socket)
    })
    socket.on('error', () => {})
  }
  app.get('/ws', {websocket: true}, handler)
  app.get('/ws/', {websocket: true}, handler)
  app.addHook('onClose', async () => {
    for (const socket of clients) socket.close(1001, 'server stopping')
    subscriber?.disconnect()
  })
}
