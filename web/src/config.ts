/**
 * Where the API and the live channel are. Build time: VITE_APP_TITLE, VITE_API_URL, VITE_WS_URL
 * (the guide's .env.production). Run time: /config.json next to index.html overrides any of them,
 * so one built image serves any domain (the nginx image mounts its own config.json).
 */
export interface UiConfig {
  title: string
  /** base of the REST API, ending in /api/v1; relative ("/api/v1") = this origin */
  apiUrl: string
  /** the WebSocket URL (…/ws); empty = this origin's /ws */
  wsUrl: string
}

export const DEFAULT_CONFIG: UiConfig = {title: 'Charge Analysis System', apiUrl: '/api/v1', wsUrl: ''}

/** Later sources win; empty or non-string values are ignored. */
export function mergeConfig(...sources: Array<Partial<Record<keyof UiConfig, unknown>> | undefined>): UiConfig {
  const out = {...DEFAULT_CONFIG}
  for (const source of sources) {
    if (!source) continue
    for (const key of ['title', 'apiUrl', 'wsUrl'] as const) {
      const value = source[key]
      if (typeof value === 'string' && value.trim()) out[key] = value.trim().replace(/\/+$/, '')
    }
  }
  return out
}

/** The URLs the UI calls, resolved against the page's location. */
export function endpoints(
  config: UiConfig,
  location: {origin: string; protocol: string; host: string},
): {api: string; health: string; ws: string} {
  const api = new URL(config.apiUrl, location.origin)
  const ws = config.wsUrl
    ? new URL(config.wsUrl, location.origin)
    : new URL('/ws', `${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}`)
  if (ws.protocol === 'http:') ws.protocol = 'ws:'
  if (ws.protocol === 'https:') ws.protocol = 'wss:'
  // /health lives at the API's origin root, beside /api/v1 (nginx: location = /health)
  return {api: api.href.replace(/\/+$/, ''), health: new URL('/health', api.origin).href, ws: ws.href}
}
