/** URL helpers for the validators: parse without ever echoing the URL (it may carry a password). */

export const LOOPBACK_HOSTS = new Set(['localhost', '127.0.0.1', '::1', '[::1]', ''])

export function isLoopback(host: string): boolean {
  const h = host.toLowerCase()
  return LOOPBACK_HOSTS.has(h) || /^127\.\d+\.\d+\.\d+$/.test(h) || h.startsWith('/') || h.endsWith('.localhost')
}

/** Replaces ${VAR} references with a harmless token so the rest of the URL can be checked. */
export function withoutInterpolation(value: string): string {
  return value.replace(/\$\{[^}]*\}/g, 'interpolated')
}

export function tryParseUrl(value: string): URL | undefined {
  try {
    return new URL(value)
  } catch {
    return undefined
  }
}

/** The host of a postgresql:// URL, including libpq's ?host= form for Unix sockets. */
export function databaseHost(url: URL): string {
  return decodeURIComponent(url.hostname) || url.searchParams.get('host') || 'localhost'
}

export function urlPassword(url: URL): string | undefined {
  if (!url.password) return undefined
  try {
    return decodeURIComponent(url.password)
  } catch {
    return url.password
  }
}
