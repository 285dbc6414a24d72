/**
 * The sampled curves of one session as GET /api/v1/sessions/:id/series returns them. Its own file
 * with no imports, so that the web UI (web/, a browser build without Node's types) imports the
 * same declaration as the service instead of a copy.
 */
export interface SessionSeries {
  /** valid samples in the file */
  samples: number
  /** true when the columns hold min/max pairs of buckets rather than every sample */
  decimated: boolean
  t: number[]
  voltage: number[]
  current: number[]
  soc: number[]
  temp: number[]
}
