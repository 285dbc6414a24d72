/** Path routing (history API): /sessions, /analyses/:id, /knowledge. nginx and the service answer index.html for these. */
import {signal} from '../state.js'

export const route = signal(location.pathname)

export function navigate(path: string): void {
  if (path === location.pathname) return
  history.pushState(null, '', path)
  route.set(path)
  window.scrollTo(0, 0)
  // move focus to the new content, as a page load would (screen readers announce it)
  queueMicrotask(() => document.getElementById('main')?.focus())
}

window.addEventListener('popstate', () => route.set(location.pathname))

/** onClick of an <a href>: in-app navigation, but a modified click still opens a new tab. */
export function linkClick(e: MouseEvent): void {
  if (e.defaultPrevented || e.button !== 0 || e.metaKey || e.ctrlKey || e.shiftKey || e.altKey) return
  const href = (e.currentTarget as HTMLAnchorElement).getAttribute('href')
  if (!href?.startsWith('/')) return
  e.preventDefault()
  navigate(href)
}
