/** Reconnect delays of the live channel: exponential from 1 s, capped at 30 s, with ±20 % jitter. */
export function reconnectDelay(attempt: number, random = Math.random): number {
  const base = Math.min(30_000, 1000 * 2 ** Math.max(0, attempt))
  return Math.round(base * (0.8 + 0.4 * random()))
}
