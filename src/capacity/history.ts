/**
 * Capacity history (`<stateDir>/capacity-history.json`): one sample per run, so that the next
 * run can compute growth and days until the disk fills. Written atomically (src/core/fs:
 * temp file + fsync + rename): a killed run leaves the previous history intact.
 */
import {readFile} from 'node:fs/promises'
import {join} from 'node:path'

import {writeFileAtomicSync} from '../core/fs/atomic.js'

export interface CapacitySample {
  at: string
  /** pg_database_size of the service database */
  databaseBytes?: number
  /** used bytes on the data dir filesystem (when known) */
  dataDirUsedBytes?: number
  uploadsBytes?: number
}

export interface CapacityHistory {
  version: 1
  samples: CapacitySample[]
}

export const HISTORY_FILE = 'capacity-history.json'
const MAX_SAMPLES = 500

export function historyPath(stateDir: string): string {
  return join(stateDir, HISTORY_FILE)
}

export async function readHistory(stateDir: string): Promise<CapacityHistory> {
  try {
    const parsed = JSON.parse(await readFile(historyPath(stateDir), 'utf8')) as CapacityHistory
    if (parsed && Array.isArray(parsed.samples)) return {version: 1, samples: parsed.samples.filter((s) => typeof s?.at === 'string')}
  } catch {
    // missing or unreadable: start a new history (the old one is replaced on the next write)
  }
  return {version: 1, samples: []}
}

export async function appendSample(stateDir: string, sample: CapacitySample): Promise<CapacityHistory> {
  const history = await readHistory(stateDir)
  history.samples.push(sample)
  if (history.samples.length > MAX_SAMPLES) history.samples = history.samples.slice(-MAX_SAMPLES)
  writeFileAtomicSync(historyPath(stateDir), JSON.stringify(history, null, 2) + '\n', {mode: 0o644})
  return history
}

/**
 * Growth per day between the newest earlier sample at least `minAgeMs` old and now.
 * Undefined without such a sample.
 */
export function growthPerDay(samples: readonly CapacitySample[], key: keyof Omit<CapacitySample, 'at'>, current: number, now: Date, minAgeMs = 60_000): {perDay: number; since: string} | undefined {
  for (let i = samples.length - 1; i >= 0; i--) {
    const s = samples[i]
    const value = s[key]
    if (typeof value !== 'number') continue
    const age = now.getTime() - Date.parse(s.at)
    if (age < minAgeMs) continue
    return {perDay: ((current - value) / age) * 86_400_000, since: s.at}
  }
  return undefined
}
