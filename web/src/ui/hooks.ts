import {useEffect, useState} from 'preact/hooks'

import type {Signal} from '../state.js'

/** Re-renders the component when the signal changes. */
export function useSignal<T>(s: Signal<T>): T {
  const [value, setValue] = useState(s.get())
  useEffect(() => {
    setValue(s.get())
    return s.subscribe(setValue)
  }, [s])
  return value
}
