/** A minimal observable value (language, token, health, live events) — no state library needed. */
export interface Signal<T> {
  get(): T
  set(value: T): void
  subscribe(fn: (value: T) => void): () => void
}

export function signal<T>(initial: T): Signal<T> {
  let value = initial
  const listeners = new Set<(value: T) => void>()
  return {
    get: () => value,
    set(next) {
      if (Object.is(next, value)) return
      value = next
      for (const fn of [...listeners]) fn(value)
    },
    subscribe(fn) {
      listeners.add(fn)
      return () => listeners.delete(fn)
    },
  }
}
