import type {Api} from '../api.js'
import type {UiConfig} from '../config.js'

/** Set once at start (main.tsx): the API client and the resolved endpoints. */
export const app = {} as {api: Api; config: UiConfig; endpoints: {api: string; health: string; ws: string}}
