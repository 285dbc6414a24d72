// Generated service folders for benches: an uploads dir of incompressible files (random bytes, sizes
// log-uniform between 100 kB and 20 MB, like uploaded charging logs) and a small Chroma persist dir
// (chroma.sqlite3 with Chroma's tables + one HNSW segment folder of random bytes).
// A `.bench-files.json` marker records what was generated, so a kept dir is reused when it matches.
import {randomFillSync, randomUUID} from 'node:crypto'
import {closeSync, existsSync, mkdirSync, openSync, readFileSync, rmSync, writeFileSync, writeSync} from 'node:fs'
import {join} from 'node:path'

const MARKER = '.bench-files.json'

function writeRandomFile(file, size, buf) {
  const fd = openSync(file, 'w')
  try {
    for (let left = size; left > 0;) {
      const n = Math.min(left, buf.length)
      randomFillSync(buf, 0, n) // fresh bytes for every block: nothing for a compressor to find
      writeSync(fd, buf, 0, n)
      left -= n
    }
  } finally {
    closeSync(fd)
  }
}

function readMarker(dir) {
  try {
    return JSON.parse(readFileSync(join(dir, MARKER), 'utf8'))
  } catch {
    return undefined
  }
}

/** Fills `dir` with ≈ `bytes` of random files; returns {files, bytes, ms, reused}. */
export function generateUploads(dir, {bytes, minSize = 100_000, maxSize = 20_000_000, log = () => {}} = {}) {
  const t0 = performance.now()
  const marker = readMarker(dir)
  if (marker?.kind === 'uploads' && marker.requested === bytes)
    return {files: marker.files, bytes: marker.bytes, ms: 0, reused: true}
  rmSync(dir, {recursive: true, force: true})
  mkdirSync(dir, {recursive: true})
  const buf = Buffer.allocUnsafe(4 << 20)
  let total = 0
  let files = 0
  let nextLog = 250e6
  const lnMin = Math.log(minSize)
  const lnMax = Math.log(maxSize)
  while (total < bytes) {
    const size = Math.min(Math.round(Math.exp(lnMin + Math.random() * (lnMax - lnMin))), Math.max(1, bytes - total))
    const month = String(1 + (files % 12)).padStart(2, '0')
    const sub = join(dir, '2025', month)
    mkdirSync(sub, {recursive: true})
    writeRandomFile(join(sub, `${randomUUID()}.csv`), size, buf)
    total += size
    files++
    if (total >= nextLog) {
      log(`uploads: ${files} files, ${(total / 1e9).toFixed(2)} / ${(bytes / 1e9).toFixed(2)} GB`)
      nextLog += 250e6
    }
  }
  writeFileSync(join(dir, MARKER), JSON.stringify({kind: 'uploads', requested: bytes, files, bytes: total}))
  return {files, bytes: total, ms: performance.now() - t0, reused: false}
}

/** A small Chroma persist dir: chroma.sqlite3 (Chroma's tables, `records` embeddings) + one segment dir. */
export async function generateChroma(dir, {records = 2000, segmentBytes = 8_000_000} = {}) {
  const marker = readMarker(dir)
  if (marker?.kind === 'chroma' && marker.records === records && existsSync(join(dir, 'chroma.sqlite3')))
    return {...marker, reused: true}
  rmSync(dir, {recursive: true, force: true})
  mkdirSync(dir, {recursive: true})
  const {default: Database} = await import('better-sqlite3')
  const db = new Database(join(dir, 'chroma.sqlite3'))
  try {
    db.pragma('journal_mode = WAL')
    db.exec(`CREATE TABLE collections (id TEXT PRIMARY KEY, name TEXT NOT NULL UNIQUE, dimension INTEGER);
      CREATE TABLE segments (id TEXT PRIMARY KEY, type TEXT NOT NULL, scope TEXT NOT NULL, collection TEXT NOT NULL);
      CREATE TABLE embeddings (id INTEGER PRIMARY KEY, segment_id TEXT NOT NULL, embedding_id TEXT NOT NULL, seq_id BLOB NOT NULL, created_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP);
      CREATE TABLE embedding_metadata (id INTEGER, key TEXT NOT NULL, string_value TEXT, int_value INTEGER, float_value REAL, PRIMARY KEY (id, key));`)
    const collection = randomUUID()
    const segment = randomUUID()
    db.prepare('INSERT INTO collections VALUES (?, ?, ?)').run(collection, 'charging_knowledge', 384)
    db.prepare('INSERT INTO segments VALUES (?, ?, ?, ?)').run(
      segment,
      'urn:chroma:segment/metadata/sqlite',
      'METADATA',
      collection,
    )
    const emb = db.prepare('INSERT INTO embeddings (segment_id, embedding_id, seq_id) VALUES (?, ?, ?)')
    const meta = db.prepare('INSERT INTO embedding_metadata (id, key, string_value) VALUES (?, ?, ?)')
    db.transaction(() => {
      for (let i = 1; i <= records; i++) {
        emb.run(segment, `passage-${i}`, Buffer.from(String(i)))
        meta.run(i, 'chroma:document', randomFillSync(Buffer.alloc(300)).toString('base64'))
      }
    })()
  } finally {
    db.close()
  }
  const seg = join(dir, randomUUID())
  mkdirSync(seg)
  const buf = Buffer.allocUnsafe(1 << 20)
  writeRandomFile(join(seg, 'data_level0.bin'), segmentBytes, buf)
  writeRandomFile(join(seg, 'link_lists.bin'), Math.round(segmentBytes / 8), buf)
  writeRandomFile(join(seg, 'length.bin'), records * 4, buf)
  writeRandomFile(join(seg, 'header.bin'), 100, buf)
  const result = {kind: 'chroma', records, segmentBytes}
  writeFileSync(join(dir, MARKER), JSON.stringify(result))
  return {...result, reused: false}
}
