/**
 * Generator of realistic charging sessions (DC fast charging of a 400 V, 75 kWh pack), healthy and
 * faulty, for the committed sample (service/sample/*.csv), the quick start and the benchmarks.
 *
 *   node dist/service/src/sample-data.js --out service/sample            # the committed sample
 *   node dist/service/src/sample-data.js --big 5000000 --out /tmp/big.csv  # a large file (bench)
 *
 * Deterministic: the same seed gives the same bytes.
 */
import {createWriteStream, mkdirSync, writeFileSync} from 'node:fs'
import {join} from 'node:path'
import {pathToFileURL} from 'node:url'

import {EXPECTED_HEADER} from './analysis.js'

export type Scenario = 'healthy' | 'overheat' | 'interrupted' | 'voltage-spike' | 'derating'

export interface SessionOptions {
  scenario: Scenario
  seed?: number
  /** seconds between samples */
  intervalSeconds?: number
  startSoc?: number
  endSoc?: number
  start?: Date
}

/** mulberry32: a tiny deterministic PRNG. */
export function prng(seed: number): () => number {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6d2b79f5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4_294_967_296
  }
}

const CAPACITY_J = 75 * 3.6e6
const fmt = (n: number, d: number) => n.toFixed(d)

/** Yields the CSV lines (without newline) of one session, header first. */
export function* sessionLines(options: SessionOptions): Generator<string> {
  const rand = prng(options.seed ?? 1)
  const dt = options.intervalSeconds ?? 5
  const endSoc = options.endSoc ?? 90
  let soc = options.startSoc ?? 15 + rand() * 15
  let t = (options.start ?? new Date(Date.UTC(2024, 4, 1, 8, 0, 0))).getTime()
  let temp = 24 + rand() * 4
  let step = 0
  const faultAt = 40 + Math.floor(rand() * 20)
  let derated = false
  yield EXPECTED_HEADER.join(',')
  while (soc < endSoc) {
    step++
    let status = 'charging'
    // constant current, then a taper above 75 %
    let current = soc < 75 ? 250 : Math.max(40, 250 - (soc - 75) * 12)
    let voltage = 355 + soc * 0.6
    const cooling = options.scenario === 'overheat' && step > faultAt ? 0.2 : 1
    // the overheating pack derates at 61 °C and stays derated until it is back under 50 °C
    if (options.scenario === 'overheat' && (temp >= 61 || (derated && temp > 50))) {
      derated = true
      status = 'derating'
      current = 90
    } else derated = false
    if (options.scenario === 'derating' && step > faultAt && step < faultAt + 30) {
      status = 'derating'
      current = 100
    }
    if (options.scenario === 'voltage-spike' && step >= faultAt && step < faultAt + 3) voltage *= 1.3
    if (options.scenario === 'interrupted' && step >= faultAt && step < faultAt + 4) {
      status = 'fault'
      current = 0
    }
    if (options.scenario === 'interrupted' && step === faultAt + 4) t += 180_000 // the charger went silent for 3 minutes
    current += (rand() - 0.5) * 4
    voltage += (rand() - 0.5) * 2
    // heat from I²R, removed by the cooling loop towards 25 °C
    temp += (current * current * 0.8e-5 - (temp - 25) * 0.02 * cooling * 1.5) * (dt / 5)
    yield `${new Date(t).toISOString()},${fmt(voltage, 1)},${fmt(current, 1)},${fmt(soc, 2)},${fmt(temp, 1)},${status}`
    soc += ((voltage * Math.max(0, current) * dt) / CAPACITY_J) * 100
    t += dt * 1000
  }
  yield `${new Date(t).toISOString()},${fmt(355 + soc * 0.6, 1)},0.0,${fmt(soc, 2)},${fmt(temp, 1)},complete`
}

export const SAMPLE_SESSIONS: Array<{file: string; scenario: Scenario; seed: number}> = [
  {file: 'session-01-healthy.csv', scenario: 'healthy', seed: 11},
  {file: 'session-02-overheat.csv', scenario: 'overheat', seed: 22},
  {file: 'session-03-interrupted.csv', scenario: 'interrupted', seed: 33},
  {file: 'session-04-voltage-spike.csv', scenario: 'voltage-spike', seed: 44},
  {file: 'session-05-derating.csv', scenario: 'derating', seed: 55},
]

export function writeSampleSessions(dir: string): string[] {
  mkdirSync(dir, {recursive: true})
  return SAMPLE_SESSIONS.map(({file, scenario, seed}, i) => {
    const start = new Date(Date.UTC(2024, 4, 1 + i, 8 + i, 0, 0))
    writeFileSync(join(dir, file), [...sessionLines({scenario, seed, start})].join('\n') + '\n')
    return join(dir, file)
  })
}

/**
 * Writes a large log of `samples` lines at 1 s intervals (healthy charging with periodic faulty
 * stretches), streaming so that memory stays flat. Resolves with the byte count.
 */
export async function writeLargeSession(path: string, samples: number, seed = 7): Promise<number> {
  const out = createWriteStream(path)
  const rand = prng(seed)
  let bytes = 0
  let t = Date.UTC(2024, 0, 1)
  let batch: string[] = [EXPECTED_HEADER.join(',')]
  for (let i = 0; i < samples; i++) {
    const phase = i % 3600
    const soc = 10 + (phase / 3600) * 80
    const hot = phase > 3000 && phase < 3100
    const temp = hot ? 57 + rand() * 3 : 30 + rand() * 5
    const status = hot ? 'derating' : phase === 1800 ? 'fault' : 'charging'
    const v = 360 + soc * 0.6 + (rand() - 0.5) * 2
    const a = status === 'fault' ? 0 : hot ? 90 : 240 + (rand() - 0.5) * 4
    batch.push(
      `${new Date(t).toISOString()},${v.toFixed(1)},${a.toFixed(1)},${soc.toFixed(2)},${temp.toFixed(1)},${status}`,
    )
    t += 1000
    if (batch.length >= 10_000) {
      const text = batch.join('\n') + '\n'
      bytes += Buffer.byteLength(text)
      if (!out.write(text)) await new Promise<void>((r) => out.once('drain', () => r()))
      batch = []
    }
  }
  if (batch.length > 0) {
    const text = batch.join('\n') + '\n'
    bytes += Buffer.byteLength(text)
    out.write(text)
  }
  await new Promise<void>((resolve, reject) => out.end((error?: Error | null) => (error ? reject(error) : resolve())))
  return bytes
}

async function main(argv: string[]): Promise<void> {
  const out = argv[argv.indexOf('--out') + 1]
  if (!argv.includes('--out') || !out) throw new Error('usage: sample-data.js --out DIR | --big SAMPLES --out FILE')
  if (argv.includes('--big')) {
    const n = Number(argv[argv.indexOf('--big') + 1])
    const bytes = await writeLargeSession(out, n)
    process.stdout.write(`${out}: ${n} samples, ${bytes} bytes\n`)
  } else {
    for (const file of writeSampleSessions(out)) process.stdout.write(`${file}\n`)
  }
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  main(process.argv.slice(2)).catch((error: Error) => {
    process.stderr.write(`${error.message}\n`)
    process.exitCode = 2
  })
}
