/**
 * Guide §12 step 7 (`curl -f https://app.example.com`) for the upgrade's verify step: the web UI
 * answers. More than the page itself: the entry script index.html names must answer too, since a
 * page whose hashed assets are gone (an old index.html cached by a proxy, a half-copied build) is
 * a blank screen with a 200.
 */
export interface WebUiCheck {
  /** false: this release serves no UI (built without dist/web) — nothing to verify */
  served: boolean
  ok: boolean
  detail: string
}

export async function checkWebUi(baseUrl: string, timeoutMs = 5000): Promise<WebUiCheck> {
  const base = baseUrl.replace(/\/+$/, '')
  try {
    const page = await fetch(`${base}/`, {signal: AbortSignal.timeout(timeoutMs)})
    const type = page.headers.get('content-type') ?? ''
    const html = await page.text()
    if (page.status === 404 && !type.startsWith('text/html'))
      return {served: false, ok: true, detail: 'GET / → 404: no web UI in this release'}
    if (page.status !== 200 || !type.startsWith('text/html'))
      return {served: true, ok: false, detail: `GET / → ${page.status} ${type || 'no content type'}`}
    const script = /<script[^>]+type="module"[^>]+src="([^"]+)"/.exec(html)?.[1]
    if (!script)
      return {served: true, ok: false, detail: 'GET / → 200 but the page names no module script (not the web UI build)'}
    const asset = await fetch(new URL(script, `${base}/`), {signal: AbortSignal.timeout(timeoutMs)})
    await asset.body?.cancel()
    if (asset.status !== 200)
      return {served: true, ok: false, detail: `GET / → 200 but its script ${script} → ${asset.status}`}
    return {served: true, ok: true, detail: `GET / → 200, ${script} → 200`}
  } catch (error) {
    return {served: true, ok: false, detail: `GET / failed: ${(error as Error).message}`}
  }
}
