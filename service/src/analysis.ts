/**
 * Streaming analysis of a charging-session log (CSV: timestamp, voltage_v, current_a, soc_pct,
 * battery_temp_c, charger_status). Bytes are parsed in place (no per-line strings, no regex): the
 * worker must sustain ≥ 200,000 samples per second on one core (bench/service.mjs).
 *
 * Feed chunks with `push()`, then `finish()` returns the metrics and findings. Memory use is
 * constant whatever the file size.
 */

export const EXPECTED_HEADER = [
  'timestamp',
  'voltage_v',
  'current_a',
  'soc_pct',
  'battery_temp_c',
  'charger_status',
] as const

/** What is wrong with a session log's first line (undefined: it is the expected header). The upload checks it too. */
export function headerMismatch(line: string): string | undefined {
  const header = line
    .replace(/^\uFEFF/, '')
    .split(',')
    .map((h) => h.trim().toLowerCase())
  if (EXPECTED_HEADER.every((h, i) => header[i] === h)) return undefined
  return `unexpected header "${header.join(',')}"; expected ${EXPECTED_HEADER.join(',')}`
}

/** Thresholds of the findings; documented in docs/service.md. */
export const RULES = {
  overTemperatureWarningC: 55,
  overTemperatureCriticalC: 60,
  /** a gap between two samples longer than this is an interruption (and is not counted as charging time) */
  interruptionGapSeconds: 30,
  /** current below this fraction of the session's peak current while SOC < deratingSocLimit … */
  deratingCurrentFraction: 0.5,
  deratingSocLimit: 80,
  /** … for at least this long is derating, even when the charger does not report it */
  deratingMinSeconds: 30,
  /** voltage this far (fraction) from its running average, or outside the absolute range, is abnormal */
  voltageDeviationFraction: 0.15,
  voltageMin: 150,
  voltageMax: 1000,
  /** more invalid lines than this fraction fails the analysis */
  maxInvalidFraction: 0.01,
} as const

export type FindingKind = 'over_temperature' | 'derating' | 'interruption' | 'abnormal_voltage'
export type Severity = 'info' | 'warning' | 'critical'

export interface Finding {
  kind: FindingKind
  severity: Severity
  startedAt: string
  endedAt: string
  durationSeconds: number
  samples: number
  /** the extreme value of the episode (°C, V, A or seconds of gap) */
  peakValue: number
  detail: string
}

export interface SessionMetrics {
  samples: number
  invalidLines: number
  startedAt: string | null
  endedAt: string | null
  durationSeconds: number
  chargingSeconds: number
  energyKwh: number
  avgPowerKw: number
  peakPowerKw: number
  socStart: number | null
  socEnd: number | null
  socMin: number | null
  socMax: number | null
  peakTempC: number | null
  minVoltageV: number | null
  maxVoltageV: number | null
}

export interface AnalysisResult {
  metrics: SessionMetrics
  findings: Finding[]
}

export class AnalysisInputError extends Error {
  constructor(
    message: string,
    readonly line?: number,
  ) {
    super(line === undefined ? message : `line ${line}: ${message}`)
  }
}

const STATUS_OTHER = 0
const STATUS_CHARGING = 1
const STATUS_DERATING = 2
const STATUS_IDLE = 3
const STATUS_FAULT = 4
const STATUS_INTERRUPTED = 5
const STATUS_COMPLETE = 6

const COMMA = 44
const NL = 10
const CR = 13

interface Episode {
  startMs: number
  endMs: number
  samples: number
  peak: number
  flag: number
}

const iso = (ms: number) => new Date(ms).toISOString()
const round = (n: number, digits = 3) => Math.round(n * 10 ** digits) / 10 ** digits

/** Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's days_from_civil). */
function daysFromCivil(y: number, m: number, d: number): number {
  y -= m <= 2 ? 1 : 0
  const era = Math.floor(y / 400)
  const yoe = y - era * 400
  const doy = Math.floor((153 * (m + (m > 2 ? -3 : 9)) + 2) / 5) + d - 1
  const doe = yoe * 365 + Math.floor(yoe / 4) - Math.floor(yoe / 100) + doy
  return era * 146_097 + doe - 719_468
}

export class SessionAnalyzer {
  private leftover: Buffer | null = null
  private lineNo = 0
  private headerSeen = false
  private readonly findings: Finding[] = []

  // metrics
  private samples = 0
  private invalid = 0
  private firstInvalidLine = 0
  private firstInvalidReason = ''
  private firstMs = Number.NaN
  private lastMs = Number.NaN
  private lastV = 0
  private lastI = 0
  private energyJ = 0
  private chargingS = 0
  private peakW = 0
  private peakI = 0
  private socStart = Number.NaN
  private socEnd = Number.NaN
  private socMin = Infinity
  private socMax = -Infinity
  private peakTemp = -Infinity
  private minV = Infinity
  private maxV = -Infinity
  private vAvg = Number.NaN
  private badVoltFirst = 0

  // open episodes
  private hot: Episode | null = null
  private derate: Episode | null = null
  private lowCurrent: Episode | null = null
  private fault: Episode | null = null
  private badVolt: Episode | null = null

  // the fields of the line being parsed
  private fTs = 0
  private fV = 0
  private fI = 0
  private fSoc = 0
  private fTemp = 0
  private fStatus = 0
  private parseError = ''

  push(chunk: Buffer): void {
    let buf = chunk
    if (this.leftover) {
      buf = Buffer.concat([this.leftover, chunk])
      this.leftover = null
    }
    let start = 0
    const len = buf.length
    for (;;) {
      const nl = buf.indexOf(NL, start)
      if (nl === -1) break
      let end = nl
      if (end > start && buf[end - 1] === CR) end--
      this.line(buf, start, end)
      start = nl + 1
    }
    if (start < len) this.leftover = Buffer.from(buf.subarray(start))
    if (this.leftover && this.leftover.length > 1_000_000)
      throw new AnalysisInputError('line longer than 1 MB: not a charging-session CSV', this.lineNo + 1)
  }

  finish(): AnalysisResult {
    if (this.leftover && this.leftover.length > 0) {
      const rest = this.leftover
      this.leftover = null
      let end = rest.length
      if (rest[end - 1] === CR) end--
      this.line(rest, 0, end)
    }
    if (!this.headerSeen)
      throw new AnalysisInputError('the file is empty: expected the header ' + EXPECTED_HEADER.join(','))
    if (this.samples === 0) throw new AnalysisInputError('no valid samples after the header')
    if (this.invalid > Math.max(1, this.samples * RULES.maxInvalidFraction)) {
      throw new AnalysisInputError(
        `${this.invalid} invalid lines (more than ${RULES.maxInvalidFraction * 100}% of the file); first: ${this.firstInvalidReason}`,
        this.firstInvalidLine,
      )
    }
    this.closeHot()
    this.closeDerate()
    this.closeLowCurrent()
    this.closeFault()
    this.closeBadVolt()
    this.findings.sort((a, b) => (a.startedAt < b.startedAt ? -1 : a.startedAt > b.startedAt ? 1 : 0))
    const durationSeconds = (this.lastMs - this.firstMs) / 1000
    const energyKwh = this.energyJ / 3.6e6
    const hours = this.chargingS / 3600
    return {
      metrics: {
        samples: this.samples,
        invalidLines: this.invalid,
        startedAt: iso(this.firstMs),
        endedAt: iso(this.lastMs),
        durationSeconds: round(durationSeconds),
        chargingSeconds: round(this.chargingS),
        energyKwh: round(energyKwh, 4),
        avgPowerKw: round(hours > 0 ? energyKwh / hours : 0),
        peakPowerKw: round(this.peakW / 1000),
        socStart: this.socStart,
        socEnd: this.socEnd,
        socMin: this.socMin,
        socMax: this.socMax,
        peakTempC: this.peakTemp,
        minVoltageV: this.minV,
        maxVoltageV: this.maxV,
      },
      findings: this.findings,
    }
  }

  private line(buf: Buffer, start: number, end: number): void {
    this.lineNo++
    if (end <= start) return
    if (!this.headerSeen) {
      const problem = headerMismatch(buf.toString('utf8', start, end))
      if (problem) throw new AnalysisInputError(problem, this.lineNo)
      this.headerSeen = true
      return
    }
    if (!this.parseFields(buf, start, end)) {
      this.invalid++
      if (this.firstInvalidLine === 0) {
        this.firstInvalidLine = this.lineNo
        this.firstInvalidReason = this.parseError
      }
      return
    }
    this.sample(this.fTs, this.fV, this.fI, this.fSoc, this.fTemp, this.fStatus)
  }

  /** Splits on commas by hand and parses each field from the bytes; false (with parseError) on a bad line. */
  private parseFields(buf: Buffer, start: number, end: number): boolean {
    let field = 0
    let fs = start
    for (let i = start; i <= end; i++) {
      if (i === end || buf[i] === COMMA) {
        switch (field) {
          case 0:
            this.fTs = parseTimestamp(buf, fs, i)
            if (Number.isNaN(this.fTs)) return this.fail('bad timestamp')
            break
          case 1:
            this.fV = parseNumber(buf, fs, i)
            if (Number.isNaN(this.fV)) return this.fail('bad voltage_v')
            break
          case 2:
            this.fI = parseNumber(buf, fs, i)
            if (Number.isNaN(this.fI)) return this.fail('bad current_a')
            break
          case 3:
            this.fSoc = parseNumber(buf, fs, i)
            if (Number.isNaN(this.fSoc)) return this.fail('bad soc_pct')
            break
          case 4:
            this.fTemp = parseNumber(buf, fs, i)
            if (Number.isNaN(this.fTemp)) return this.fail('bad battery_temp_c')
            break
          case 5:
            this.fStatus = parseStatus(buf, fs, i)
            break
          default:
            return this.fail('more than 6 fields')
        }
        field++
        fs = i + 1
      }
    }
    if (field < 6) return this.fail(`expected 6 fields, found ${field}`)
    return true
  }

  private fail(reason: string): false {
    this.parseError = reason
    return false
  }

  private sample(ms: number, v: number, i: number, soc: number, temp: number, status: number): void {
    const first = this.samples === 0
    this.samples++
    if (first) {
      this.firstMs = ms
      this.socStart = soc
    } else {
      const dt = (ms - this.lastMs) / 1000
      if (dt > RULES.interruptionGapSeconds) {
        this.findings.push({
          kind: 'interruption',
          severity: 'warning',
          startedAt: iso(this.lastMs),
          endedAt: iso(ms),
          durationSeconds: round(dt),
          samples: 0,
          peakValue: round(dt),
          detail: `no samples for ${round(dt, 1)} s (the charger stopped reporting)`,
        })
      } else if (dt > 0 && this.lastI > 0) {
        this.energyJ += this.lastV * this.lastI * dt
        this.chargingS += dt
      }
    }
    this.lastMs = ms
    this.lastV = v
    this.lastI = i
    this.socEnd = soc
    if (soc < this.socMin) this.socMin = soc
    if (soc > this.socMax) this.socMax = soc
    if (temp > this.peakTemp) this.peakTemp = temp
    if (v < this.minV) this.minV = v
    if (v > this.maxV) this.maxV = v
    const w = v * i
    if (w > this.peakW) this.peakW = w
    if (i > this.peakI) this.peakI = i

    // over-temperature
    if (temp >= RULES.overTemperatureWarningC) this.hot = extend(this.hot, ms, temp, 0)
    else this.closeHot()

    // derating: reported by the charger …
    if (status === STATUS_DERATING) this.derate = extend(this.derate, ms, i, 0)
    else this.closeDerate()
    // … or inferred: a sustained drop of current far below the session's peak, well before the taper
    if (
      status === STATUS_CHARGING &&
      soc < RULES.deratingSocLimit &&
      i > 0 &&
      i < this.peakI * RULES.deratingCurrentFraction
    ) {
      this.lowCurrent = extend(this.lowCurrent, ms, -i, 0)
    } else this.closeLowCurrent()

    // interruptions reported by the charger
    if (status === STATUS_FAULT || status === STATUS_INTERRUPTED) this.fault = extend(this.fault, ms, status, status)
    else this.closeFault()

    // abnormal voltage: outside the absolute range or far from its running average
    const avg = this.vAvg
    const abnormal =
      v < RULES.voltageMin ||
      v > RULES.voltageMax ||
      (!Number.isNaN(avg) && Math.abs(v - avg) > avg * RULES.voltageDeviationFraction)
    if (abnormal) {
      const reference = Number.isNaN(avg) ? v : avg
      const outOfRange = v < RULES.voltageMin || v > RULES.voltageMax
      this.badVolt = extend(this.badVolt, ms, Math.abs(v - reference), outOfRange ? 1 : 0)
      if (outOfRange) this.badVolt.flag = 1
      if (this.badVolt.samples === 1) this.badVoltFirst = v
    } else {
      this.closeBadVolt()
      this.vAvg = Number.isNaN(avg) ? v : avg + (v - avg) * 0.05
    }
  }

  private closeHot(): void {
    const e = this.hot
    if (!e) return
    this.hot = null
    const critical = e.peak >= RULES.overTemperatureCriticalC
    this.findings.push(
      finding(
        'over_temperature',
        critical ? 'critical' : 'warning',
        e,
        e.peak,
        `battery temperature reached ${e.peak} °C (warning ≥ ${RULES.overTemperatureWarningC} °C, critical ≥ ${RULES.overTemperatureCriticalC} °C) for ${round((e.endMs - e.startMs) / 1000, 1)} s`,
      ),
    )
  }

  private closeDerate(): void {
    const e = this.derate
    if (!e) return
    this.derate = null
    this.findings.push(
      finding(
        'derating',
        'warning',
        e,
        e.peak,
        `charger reported derating for ${round((e.endMs - e.startMs) / 1000, 1)} s (${e.samples} samples)`,
      ),
    )
  }

  private closeLowCurrent(): void {
    const e = this.lowCurrent
    if (!e) return
    this.lowCurrent = null
    const seconds = (e.endMs - e.startMs) / 1000
    if (seconds < RULES.deratingMinSeconds) return
    this.findings.push(
      finding(
        'derating',
        'info',
        e,
        -e.peak,
        `current fell below ${RULES.deratingCurrentFraction * 100}% of the session's peak (${round(this.peakI, 1)} A) at SOC < ${RULES.deratingSocLimit}% for ${round(seconds, 1)} s without a derating status`,
      ),
    )
  }

  private closeFault(): void {
    const e = this.fault
    if (!e) return
    this.fault = null
    const fault = e.flag === STATUS_FAULT
    this.findings.push(
      finding(
        'interruption',
        fault ? 'critical' : 'warning',
        e,
        round((e.endMs - e.startMs) / 1000),
        `charger reported ${fault ? 'a fault' : 'an interruption'} for ${round((e.endMs - e.startMs) / 1000, 1)} s (${e.samples} samples)`,
      ),
    )
  }

  private closeBadVolt(): void {
    const e = this.badVolt
    if (!e) return
    this.badVolt = null
    const range = `${RULES.voltageMin}–${RULES.voltageMax} V`
    const detail =
      e.flag === 1
        ? `voltage outside the plausible range ${range} (first ${this.badVoltFirst} V) for ${e.samples} samples`
        : `voltage ${this.badVoltFirst} V deviated by up to ${round(e.peak, 1)} V (> ${RULES.voltageDeviationFraction * 100}%) from its running average ${round(this.vAvg, 1)} V for ${e.samples} samples`
    this.findings.push(finding('abnormal_voltage', e.flag === 1 ? 'critical' : 'warning', e, this.badVoltFirst, detail))
  }
}

function extend(e: Episode | null, ms: number, value: number, flag: number): Episode {
  if (!e) return {startMs: ms, endMs: ms, samples: 1, peak: value, flag}
  e.endMs = ms
  e.samples++
  if (value > e.peak) e.peak = value
  return e
}

function finding(kind: FindingKind, severity: Severity, e: Episode, peakValue: number, detail: string): Finding {
  return {
    kind,
    severity,
    startedAt: iso(e.startMs),
    endedAt: iso(e.endMs),
    durationSeconds: round((e.endMs - e.startMs) / 1000),
    samples: e.samples,
    peakValue: round(peakValue),
    detail,
  }
}

/** A decimal number from bytes (sign, digits, fraction; exponents fall back to Number()). NaN when invalid. */
export function parseNumber(buf: Buffer, start: number, end: number): number {
  while (start < end && buf[start] === 32) start++
  while (end > start && buf[end - 1] === 32) end--
  if (start >= end) return Number.NaN
  let i = start
  let neg = false
  if (buf[i] === 45) {
    neg = true
    i++
  } else if (buf[i] === 43) i++
  let int = 0
  let digits = 0
  while (i < end) {
    const c = buf[i]! - 48
    if (c < 0 || c > 9) break
    int = int * 10 + c
    digits++
    i++
  }
  let value = int
  if (i < end && buf[i] === 46) {
    i++
    let frac = 0
    let scale = 1
    while (i < end) {
      const c = buf[i]! - 48
      if (c < 0 || c > 9) break
      frac = frac * 10 + c
      scale *= 10
      digits++
      i++
    }
    value += frac / scale
  }
  if (i !== end || digits === 0) {
    const slow = Number(buf.toString('latin1', start, end))
    return Number.isFinite(slow) ? slow : Number.NaN
  }
  return neg ? -value : value
}

function two(buf: Buffer, i: number): number {
  const a = buf[i]! - 48
  const b = buf[i + 1]! - 48
  return a >= 0 && a <= 9 && b >= 0 && b <= 9 ? a * 10 + b : -1
}

/** Epoch milliseconds of an ISO-8601 timestamp (or epoch seconds/ms), NaN when invalid. */
export function parseTimestamp(buf: Buffer, start: number, end: number): number {
  while (start < end && buf[start] === 32) start++
  while (end > start && buf[end - 1] === 32) end--
  const n = end - start
  if (
    n >= 19 &&
    buf[start + 4] === 45 &&
    buf[start + 7] === 45 &&
    (buf[start + 10] === 84 || buf[start + 10] === 32) &&
    buf[start + 13] === 58 &&
    buf[start + 16] === 58
  ) {
    const y = two(buf, start) * 100 + two(buf, start + 2)
    const mo = two(buf, start + 5)
    const d = two(buf, start + 8)
    const h = two(buf, start + 11)
    const mi = two(buf, start + 14)
    const s = two(buf, start + 17)
    if (y < 0 || mo < 1 || mo > 12 || d < 1 || d > 31 || h < 0 || h > 23 || mi < 0 || mi > 59 || s < 0 || s > 60)
      return Number.NaN
    let ms = (daysFromCivil(y, mo, d) * 86_400 + h * 3600 + mi * 60 + s) * 1000
    let i = start + 19
    if (i < end && buf[i] === 46) {
      i++
      let scale = 100
      while (i < end) {
        const c = buf[i]! - 48
        if (c < 0 || c > 9) break
        ms += c * scale
        scale /= 10
        i++
      }
      ms = Math.round(ms)
    }
    if (i === end) return ms // no zone: UTC
    if (buf[i] === 90 && i + 1 === end) return ms
    if ((buf[i] === 43 || buf[i] === 45) && end - i >= 3) {
      const sign = buf[i] === 43 ? 1 : -1
      const oh = two(buf, i + 1)
      const om = end - i >= 6 ? two(buf, end - 2) : 0
      if (oh < 0 || om < 0) return Number.NaN
      return ms - sign * (oh * 60 + om) * 60_000
    }
    return Number.NaN
  }
  const num = parseNumber(buf, start, end)
  if (!Number.isNaN(num)) return num > 1e11 ? num : num * 1000
  const parsed = Date.parse(buf.toString('latin1', start, end))
  return Number.isNaN(parsed) ? Number.NaN : parsed
}

function parseStatus(buf: Buffer, start: number, end: number): number {
  while (start < end && buf[start] === 32) start++
  while (end > start && buf[end - 1] === 32) end--
  const n = end - start
  if (n === 0) return STATUS_OTHER
  const c0 = buf[start]! | 32
  const c1 = n > 1 ? buf[start + 1]! | 32 : 0
  switch (c0) {
    case 99: // c
      return c1 === 104 ? STATUS_CHARGING : c1 === 111 ? STATUS_COMPLETE : STATUS_OTHER
    case 100: // d
      return STATUS_DERATING
    case 105: // i
      return c1 === 100 ? STATUS_IDLE : c1 === 110 ? STATUS_INTERRUPTED : STATUS_OTHER
    case 102: // f
    case 101: // e(rror)
      return STATUS_FAULT
    case 115: // s(topped)
      return STATUS_INTERRUPTED
    default:
      return STATUS_OTHER
  }
}

/** Analyses a whole file, streaming it in 1 MB chunks. */
export async function analyzeFile(path: string, options: {onChunk?: () => void} = {}): Promise<AnalysisResult> {
  const {createReadStream} = await import('node:fs')
  const analyzer = new SessionAnalyzer()
  const stream = createReadStream(path, {highWaterMark: 1024 * 1024})
  for await (const chunk of stream) {
    analyzer.push(chunk as Buffer)
    options.onChunk?.()
  }
  return analyzer.finish()
}
