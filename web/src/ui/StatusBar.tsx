/**
 * /health every 15 s (and at once when a live maintenance event arrives): PostgreSQL, Redis and
 * Chroma, the service's version, maintenance mode with its reason (the banner above the page).
 */
import {useEffect} from 'preact/hooks'

import {t} from '../i18n.js'
import {connected, onLive} from '../live.js'
import {signal} from '../state.js'
import {app} from './context.js'
import {useSignal} from './hooks.js'

interface Health {
  status: 'ok' | 'fail'
  version?: string
  checks?: Record<string, {status: 'ok' | 'fail'; error?: string}>
  maintenance?: boolean
  maintenanceReason?: string
}

export const health = signal<Health | null | 'unreachable'>(null)

export async function refreshHealth(): Promise<void> {
  try {
    const response = await fetch(app.endpoints.health, {cache: 'no-store'})
    health.set((await response.json()) as Health)
  } catch {
    health.set('unreachable')
  }
}

let started = false
function startHealth(): void {
  if (started) return
  started = true
  void refreshHealth()
  setInterval(() => void refreshHealth(), 15_000)
  onLive((event) => {
    if (event.type === 'maintenance' || event.type === 'resync') void refreshHealth()
  })
}

const NAMES: Record<string, string> = {postgres: 'PostgreSQL', redis: 'Redis', chroma: 'Chroma'}

export function StatusBar() {
  useEffect(startHealth, [])
  const h = useSignal(health)
  const live = useSignal(connected)
  return (
    <footer class="statusbar" aria-label={t('status.api')}>
      {h === 'unreachable' ? (
        <span class="dot fail">{t('status.unreachable')}</span>
      ) : h ? (
        <>
          {Object.entries(h.checks ?? {}).map(([name, c]) => (
            <span key={name} class={`dot ${c.status}`} data-check={name} title={c.error}>
              {NAMES[name] ?? name}: {c.status === 'ok' ? t('status.ok') : t('status.fail')}
            </span>
          ))}
          {h.version && <span data-version>{t('status.version', {v: h.version})}</span>}
        </>
      ) : null}
      <span class={`dot ${live ? 'ok' : 'idle'}`}>{live ? t('status.live') : t('status.offline')}</span>
    </footer>
  )
}

export function MaintenanceBanner() {
  const h = useSignal(health)
  if (!h || h === 'unreachable' || !h.maintenance) return null
  return (
    <div class="banner" role="alert" data-testid="maintenance-banner">
      {h.maintenanceReason ? t('status.maintenanceReason', {reason: h.maintenanceReason}) : t('status.maintenance')}
    </div>
  )
}
