/**
 * Production builds report uncaught errors to POST /api/v1/logs (guide §8.1; the API rate-limits
 * per token subject). The report is the message, the page's path and the stack — never the token
 * (anything shaped like a JWT or a bearer header is cut out), never a query string, never a file's
 * contents (the UI does not read the files it uploads). At most 10 reports a minute from one tab.
 */
import {scrub} from './scrub.js'

export function installErrorReporter(logsUrl: string, getToken: () => string): void {
  let windowStart = 0
  let sent = 0
  const send = (message: string, stack?: string) => {
    const bearer = getToken()
    if (!bearer) return // the API needs a token; before sign-in there is nothing to send to
    const now = Date.now()
    if (now - windowStart > 60_000) {
      windowStart = now
      sent = 0
    }
    if (++sent > 10) return
    const body = JSON.stringify({
      level: 'error',
      message: scrub(message) || 'unknown error',
      url: location.pathname,
      ...(stack ? {stack: scrub(stack)} : {}),
    })
    fetch(logsUrl, {
      method: 'POST',
      headers: {authorization: `Bearer ${bearer}`, 'content-type': 'application/json'},
      body,
      keepalive: true,
    }).catch(() => {})
  }
  window.addEventListener('error', (e) => send(e.message, e.error instanceof Error ? e.error.stack : undefined))
  window.addEventListener('unhandledrejection', (e) => {
    const reason = e.reason as unknown
    send(reason instanceof Error ? reason.message : String(reason), reason instanceof Error ? reason.stack : undefined)
  })
}
