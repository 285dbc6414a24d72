/**
 * The curves of one uploaded session for the web UI (GET /api/v1/analyses/:id/series): the CSV
 * read again, streamed, into columns (epoch seconds, V, A, SOC %, °C). Above `max` points the
 * session is decimated min/max per bucket — each bucket gives two points, the columns' minima at
 * its first timestamp and their maxima at its last — so a spike is never averaged away and a
 * 1.75 M-sample log still answers with a bounded payload. Memory stays O(max), not O(file).
 */
import {createReadStream} from 'node:fs'

import {EXPECTED_HEADER, parseNumber, parseTimestamp} from './analysis.js'
import type {SessionSeries} from './series-shape.js'

export type {SessionSeries}

const COLUMNS = 5 // t, voltage, current, soc, temp
const NL = 10
const CR = 13
const COMMA = 44

export async function readSeries(path: string, options: {max: number; expectedLines: number}): Promise<SessionSeries> {
  const bucket =
    options.expectedLines > options.max
      ? Math.ceil(options.expectedLines / Math.max(1, Math.floor(options.max / 2)))
      : 1
  const out: SessionSeries = {samples: 0, decimated: bucket > 1, t: [], voltage: [], current: [], soc: [], temp: []}
  const row = new Float64Array(COLUMNS)
  const lo = new Float64Array(COLUMNS)
  const hi = new Float64Array(COLUMNS)
  let inBucket = 0
  let first = 0
  let last = 0
  let header = true
  const cut = [0, 0, 0, 0, 0, 0, 0]

  const emit = (values: ArrayLike<number>, t: number) => {
    out.t.push(t)
    out.voltage.push(values[1]!)
    out.current.push(values[2]!)
    out.soc.push(values[3]!)
    out.temp.push(values[4]!)
  }
  const flush = () => {
    if (inBucket === 0) return
    emit(lo, first)
    if (inBucket > 1) emit(hi, last)
    inBucket = 0
  }
  const line = (buf: Buffer, start: number, end: number) => {
    if (end > start && buf[end - 1] === CR) end--
    if (end <= start) return
    if (header) {
      header = false
      if (buf.toString('latin1', start, Math.min(end, start + 9)).toLowerCase() === EXPECTED_HEADER[0]) return
    }
    let fields = 0
    cut[0] = start
    for (let i = start; i < end && fields < 6; i++) if (buf[i] === COMMA) cut[++fields] = i + 1
    if (fields < 5) return
    cut[fields + 1] = end + 1
    const ms = parseTimestamp(buf, cut[0]!, cut[1]! - 1)
    if (Number.isNaN(ms)) return
    row[0] = ms / 1000
    for (let c = 1; c < COLUMNS; c++) {
      row[c] = parseNumber(buf, cut[c]!, cut[c + 1]! - 1)
      if (Number.isNaN(row[c]!)) return
    }
    out.samples++
    if (bucket === 1) return emit(row, row[0]!)
    if (inBucket === 0) {
      lo.set(row)
      hi.set(row)
      first = row[0]!
    } else {
      for (let c = 1; c < COLUMNS; c++) {
        if (row[c]! < lo[c]!) lo[c] = row[c]!
        if (row[c]! > hi[c]!) hi[c] = row[c]!
      }
    }
    last = row[0]!
    if (++inBucket === bucket) flush()
  }

  let leftover: Buffer | null = null
  for await (const chunk of createReadStream(path, {highWaterMark: 1024 * 1024})) {
    const buf: Buffer = leftover ? Buffer.concat([leftover, chunk as Buffer]) : (chunk as Buffer)
    let start = 0
    for (let nl = buf.indexOf(NL, start); nl !== -1; nl = buf.indexOf(NL, start)) {
      line(buf, start, nl)
      start = nl + 1
    }
    leftover = start < buf.length ? Buffer.from(buf.subarray(start)) : null
  }
  if (leftover) line(leftover, 0, leftover.length)
  flush()
  return out
}
