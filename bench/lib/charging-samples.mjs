// The charging-samples table of DESIGN §8, for any bench: random double precision values (not
// compressible filler), generated in parallel INSERT … SELECT generate_series chunks until the
// table reaches the requested size. No index: the size is the data pg_dump has to read and write.
//
//   await generateChargingSamples(cluster, {db: 'charge_analysis', bytes: 1.1e9})
//     → {rows, tableBytes, databaseBytes, ms, reused}
// A table already at (or just above) the size is reused (`--keep` clusters); smaller is topped up;
// much larger is truncated and regenerated.

export const CHARGING_SAMPLES_DDL = `CREATE TABLE IF NOT EXISTS charging_samples (
  id bigint NOT NULL,
  session_id integer NOT NULL,
  ts timestamptz NOT NULL,
  voltage_v double precision,
  current_a double precision,
  soc_pct double precision,
  battery_temp_c double precision,
  power_kw double precision,
  energy_kwh double precision,
  cell_voltage_min_v double precision,
  cell_voltage_max_v double precision,
  charger_temp_c double precision,
  ambient_temp_c double precision
)`

const MEASUREMENTS = [
  '300 + random() * 120',
  'random() * 250',
  'random() * 100',
  '15 + random() * 30',
  'random() * 150',
  'random() * 80',
  '3 + random() * 1.2',
  '3 + random() * 1.3',
  '20 + random() * 40',
  '-10 + random() * 45',
]

/**
 * INSERT of rows first..last (ids); ~3,600 samples (one hour at 1 Hz) per charging session.
 * decimals: undefined = full double precision (~17 significant digits, the least compressible);
 * N = rounded to N decimals like a sensor's resolution.
 */
export function insertChunkSql(first, last, decimals) {
  const value = (expr) => (decimals === undefined ? expr : `round((${expr})::numeric, ${Number(decimals)})::float8`)
  return `INSERT INTO charging_samples
    SELECT g, (g / 3600)::int, timestamptz '2025-01-01 00:00:00+00' + g * interval '1 second',
           ${MEASUREMENTS.map(value).join(', ')}
      FROM generate_series(${Number(first)}::bigint, ${Number(last)}::bigint) g`
}

const quoteIdent = (s) => `"${s.replaceAll('"', '""')}"`

export async function generateChargingSamples(
  cluster,
  {db = 'charge_analysis', bytes, decimals, parallel = 2, chunkRows = 400_000, log = () => {}} = {},
) {
  const t0 = performance.now()
  const exists = await cluster.query('SELECT 1 FROM pg_database WHERE datname = $1', 'postgres', [db])
  if (exists.length === 0) await cluster.query(`CREATE DATABASE ${quoteIdent(db)}`)
  await cluster.query(CHARGING_SAMPLES_DDL, db)
  const size = async () => Number((await cluster.query(`SELECT pg_table_size('charging_samples') AS n`, db))[0].n)
  const maxId = async () =>
    Number((await cluster.query('SELECT coalesce(max(id), 0) AS n FROM charging_samples', db))[0].n)

  // the value precision is recorded in the table's comment: a kept table of another shape is regenerated
  const shape = `bench charging samples; decimals=${decimals ?? 'full'}`
  const [{comment}] = await cluster.query(
    `SELECT obj_description('charging_samples'::regclass, 'pg_class') AS comment`,
    db,
  )
  let tableBytes = await size()
  const slack = Math.max(64e6, bytes * 0.05)
  if (tableBytes > bytes + slack || (tableBytes > 0 && comment !== shape)) {
    log(
      `charging_samples is ${(tableBytes / 1e9).toFixed(2)} GB (${comment ?? 'unknown shape'}), not what was asked: regenerating`,
    )
    await cluster.query('TRUNCATE charging_samples', db)
    tableBytes = await size()
  }
  await cluster.query(`COMMENT ON TABLE charging_samples IS '${shape}'`, db)
  const reused = tableBytes >= bytes
  let next = (await maxId()) + 1
  let bytesPerRow = 140 // measured after the first round
  let generated = false
  while (tableBytes < bytes) {
    generated = true
    const before = tableBytes
    const wanted = Math.ceil((bytes - tableBytes) / bytesPerRow)
    const per = Math.max(1000, Math.min(chunkRows, Math.ceil(wanted / parallel)))
    const clients = await Promise.all(Array.from({length: parallel}, () => cluster.client(db)))
    try {
      await Promise.all(
        clients.map(async (c, i) => {
          await c.query('SET synchronous_commit = off')
          await c.query(insertChunkSql(next + i * per, next + (i + 1) * per - 1, decimals))
        }),
      )
    } finally {
      await Promise.all(clients.map((c) => c.end()))
    }
    next += parallel * per
    tableBytes = await size()
    bytesPerRow = Math.max(50, (tableBytes - before) / (parallel * per))
    log(
      `charging_samples: ${(next - 1).toLocaleString('en')} rows, ${(tableBytes / 1e9).toFixed(2)} / ${(bytes / 1e9).toFixed(2)} GB`,
    )
  }
  if (generated) {
    // hint bits + visibility map now, so no measured pg_dump pays for them (and all pay the same)
    log('VACUUM (FREEZE, ANALYZE) charging_samples; CHECKPOINT')
    await cluster.query('VACUUM (FREEZE, ANALYZE) charging_samples', db)
    await cluster.query('CHECKPOINT')
  }
  const [{rows, database}] = await cluster.query(
    `SELECT (SELECT count(*) FROM charging_samples)::bigint AS rows, pg_database_size(current_database()) AS database`,
    db,
  )
  return {
    rows: Number(rows),
    tableBytes: await size(),
    databaseBytes: Number(database),
    ms: performance.now() - t0,
    reused,
  }
}
