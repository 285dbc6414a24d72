/**
 * The live channel (GET /ws): authenticates with the token as its first message, hands every event
 * to the listeners, and reconnects with backoff (1 s … 30 s). A close with 4401 means the token is
 * no longer valid: no retry, back to sign-in. After a reconnect the listeners get a 'resync' so the
 * screens reload what they show (events sent while disconnected are not replayed).
 */
import {reconnectDelay} from './backoff.js'
import {signal} from './state.js'

export interface AnalysisEvent {
  type: 'analysis'
  analysisId: string
  status: 'queued' | 'running' | 'done' | 'failed'
  uploadId?: string
  filename?: string
  findingsCount?: number
  error?: string
}
export interface MaintenanceEvent {
  type: 'maintenance'
  on: boolean
  reason?: string | null
}
export type LiveEvent = AnalysisEvent | MaintenanceEvent | {type: 'resync'}

export const connected = signal(false)
const listeners = new Set<(event: LiveEvent) => void>()

export function onLive(fn: (event: LiveEvent) => void): () => void {
  listeners.add(fn)
  return () => listeners.delete(fn)
}

function emit(event: LiveEvent): void {
  for (const fn of [...listeners]) fn(event)
}

export function startLive(url: string, getToken: () => string, onUnauthorized: () => void): () => void {
  let socket: WebSocket | undefined
  let attempt = 0
  let timer: ReturnType<typeof setTimeout> | undefined
  let stopped = false
  let everConnected = false

  const open = () => {
    if (stopped) return
    socket = new WebSocket(url)
    socket.onopen = () => socket!.send(JSON.stringify({type: 'auth', token: getToken()}))
    socket.onmessage = (message) => {
      let event: {type?: string}
      try {
        event = JSON.parse(String(message.data))
      } catch {
        return
      }
      if (event.type === 'hello') {
        attempt = 0
        connected.set(true)
        if (everConnected) emit({type: 'resync'})
        everConnected = true
      } else if (event.type === 'analysis' || event.type === 'maintenance') emit(event as LiveEvent)
    }
    socket.onclose = (close) => {
      connected.set(false)
      if (stopped) return
      if (close.code === 4401) return onUnauthorized()
      timer = setTimeout(open, reconnectDelay(attempt++))
    }
  }
  open()
  return () => {
    stopped = true
    clearTimeout(timer)
    socket?.close(1000)
    connected.set(false)
  }
}
