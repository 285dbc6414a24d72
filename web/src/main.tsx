/**
 * Start-up: build-time settings (VITE_*) overridden by /config.json, then the error reporter
 * (production builds only; development keeps errors in the console) and the app.
 */
import './styles.css'

import {render} from 'preact'

import {Api, token} from './api.js'
import {endpoints, mergeConfig} from './config.js'
import {installErrorReporter} from './report.js'
import {App} from './ui/App.js'
import {app} from './ui/context.js'

async function runtimeConfig(): Promise<Record<string, unknown> | undefined> {
  try {
    const response = await fetch('/config.json', {cache: 'no-store'})
    return response.ok ? ((await response.json()) as Record<string, unknown>) : undefined
  } catch {
    return undefined // no override: the build's settings
  }
}

const config = mergeConfig(
  {title: import.meta.env.VITE_APP_TITLE, apiUrl: import.meta.env.VITE_API_URL, wsUrl: import.meta.env.VITE_WS_URL},
  await runtimeConfig(),
)
app.config = config
app.endpoints = endpoints(config, location)
app.api = new Api(app.endpoints.api)
if (import.meta.env.PROD) installErrorReporter(`${app.endpoints.api}/logs`, () => token.get())
render(<App />, document.getElementById('app')!)
