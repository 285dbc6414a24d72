/**
 * The REST API as the UI uses it. Errors keep what the API said: its status, its error code and
 * message, and Retry-After (maintenance 503, rate limits) — the screens show them as stated.
 */
import {signal} from './state.js'

export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly retryAfter?: number,
  ) {
    super(message)
  }
}

const TOKEN_KEY = 'charge-ops.token'

function readToken(): string {
  try {
    return sessionStorage.getItem(TOKEN_KEY) ?? ''
  } catch {
    return ''
  }
}

/** The bearer token: this tab only (sessionStorage), gone with sign-out or the tab. */
export const token = signal<string>(readToken())

export function setToken(value: string): void {
  token.set(value)
  try {
    if (value) sessionStorage.setItem(TOKEN_KEY, value)
    else sessionStorage.removeItem(TOKEN_KEY)
  } catch {
    // kept in memory only
  }
}

export function errorFrom(status: number, text: string, retryAfter: string | null): ApiError {
  let code = 'http_' + status
  let message = text.slice(0, 300) || `HTTP ${status}`
  try {
    const body = JSON.parse(text) as {error?: {code?: string; message?: string}; message?: string}
    code = body.error?.code ?? code
    message = body.error?.message ?? body.message ?? message
  } catch {
    // not JSON (a proxy's page): its text, shortened
  }
  const seconds = retryAfter !== null && /^\d+$/.test(retryAfter) ? Number(retryAfter) : undefined
  return new ApiError(status, code, message, seconds)
}

export class Api {
  constructor(readonly base: string) {}

  async request<T>(method: string, path: string, body?: unknown, authToken = token.get()): Promise<T> {
    const response = await fetch(`${this.base}${path}`, {
      method,
      headers: {
        authorization: `Bearer ${authToken}`,
        ...(body === undefined ? {} : {'content-type': 'application/json'}),
      },
      body: body === undefined ? undefined : JSON.stringify(body),
    })
    const text = await response.text()
    if (!response.ok) {
      const error = errorFrom(response.status, text, response.headers.get('retry-after'))
      if (response.status === 401 && authToken === token.get()) setToken('') // expired: back to sign-in
      throw error
    }
    return JSON.parse(text) as T
  }

  /** multipart upload with progress (fetch has no upload progress; XMLHttpRequest does) */
  upload(
    file: File,
    onProgress: (fraction: number) => void,
  ): Promise<{analysisId: string; uploadId: string; filename: string}> {
    return new Promise((resolve, reject) => {
      const xhr = new XMLHttpRequest()
      xhr.open('POST', `${this.base}/uploads`)
      xhr.setRequestHeader('authorization', `Bearer ${token.get()}`)
      xhr.upload.onprogress = (e) => e.lengthComputable && onProgress(e.loaded / e.total)
      xhr.onload = () => {
        if (xhr.status >= 200 && xhr.status < 300) return resolve(JSON.parse(xhr.responseText))
        reject(errorFrom(xhr.status, xhr.responseText, xhr.getResponseHeader('retry-after')))
      }
      xhr.onerror = () => reject(new ApiError(0, 'network', ''))
      const form = new FormData()
      form.append('file', file, file.name)
      xhr.send(form)
    })
  }
}
