/**
 * Set-based catalog queries: each returns every table / index in ONE statement (the capacity
 * bench has 2,000 tables; a query per table is forbidden). Shared by capacity and maintenance.
 */

/** The guide's capacity query (20 largest tables), plus the database size. */
export const LARGEST_TABLES_SQL = `
SELECT s.schemaname AS schema, s.relname AS table, pg_total_relation_size(s.relid)::bigint AS bytes
FROM pg_catalog.pg_statio_user_tables s
ORDER BY pg_total_relation_size(s.relid) DESC
LIMIT 20`

export const DATABASE_SIZE_SQL = `SELECT current_database() AS database, pg_database_size(current_database())::bigint AS bytes`

/** Server-wide facts in one round trip. */
export const SERVER_FACTS_SQL = `
SELECT current_setting('max_connections')::int AS max_connections,
       current_setting('superuser_reserved_connections')::int AS reserved,
       (SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend')::int AS connections,
       (SELECT max(age(datfrozenxid)) FROM pg_database)::bigint AS xid_age,
       pg_is_in_recovery() AS in_recovery,
       pg_database_size(current_database())::bigint AS database_bytes,
       current_setting('archive_mode') AS archive_mode,
       current_setting('server_version_num')::int AS version_num,
       (SELECT setting FROM pg_settings WHERE name = 'data_directory') AS data_directory,
       d.blks_hit::bigint AS blks_hit, d.blks_read::bigint AS blks_read, d.deadlocks::bigint AS deadlocks,
       d.stats_reset AS stats_reset,
       a.archived_count::bigint AS archived_count, a.last_archived_wal, a.last_archived_time,
       a.failed_count::bigint AS failed_count, a.last_failed_wal, a.last_failed_time
FROM pg_stat_database d, pg_stat_archiver a
WHERE d.datname = current_database()`

/** Longest active query and oldest idle-in-transaction session (other than ours). */
export const SESSIONS_SQL = `
SELECT state, pid, usename AS user, datname AS database, application_name AS application,
       extract(epoch FROM now() - CASE WHEN state = 'active' THEN query_start ELSE state_change END)::float8 AS seconds
FROM pg_stat_activity
WHERE pid <> pg_backend_pid() AND backend_type = 'client backend'
  AND state IN ('active', 'idle in transaction', 'idle in transaction (aborted)')
ORDER BY seconds DESC NULLS LAST`

export const REPLICATION_SQL = `
SELECT application_name AS name, coalesce(host(client_addr), 'local') AS client, state,
       pg_wal_lsn_diff(pg_current_wal_lsn(), replay_lsn)::float8 AS lag_bytes,
       extract(epoch FROM replay_lag)::float8 AS lag_seconds
FROM pg_stat_replication`

/** Never-scanned indexes that enforce nothing (not unique, not a constraint). */
export const UNUSED_INDEXES_SQL = `
SELECT s.schemaname AS schema, s.relname AS table, s.indexrelname AS index, pg_relation_size(s.indexrelid)::bigint AS bytes
FROM pg_stat_user_indexes s
JOIN pg_index i ON i.indexrelid = s.indexrelid
WHERE s.idx_scan = 0 AND NOT i.indisunique AND NOT i.indisprimary AND i.indisvalid
  AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = s.indexrelid)
ORDER BY bytes DESC`

/**
 * Duplicate indexes (pgHero's rule): an index whose key columns are a prefix of another index's
 * on the same table, same access method, same predicate and expressions; unique indexes are
 * never reported as the redundant one unless the covering index is unique too.
 */
export const DUPLICATE_INDEXES_SQL = `
WITH idx AS (
  SELECT i.indexrelid, i.indrelid, i.indisunique, i.indisprimary, c.relam,
         i.indkey::int2[] AS cols, coalesce(pg_get_expr(i.indexprs, i.indrelid), '') AS exprs,
         coalesce(pg_get_expr(i.indpred, i.indrelid), '') AS pred, i.indclass::oid[] AS opclasses
  FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
  JOIN pg_namespace n ON n.oid = c.relnamespace
  WHERE i.indisvalid AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg_toast%'
)
SELECT DISTINCT ON (a.indexrelid)
       n.nspname AS schema, t.relname AS table, ca.relname AS index, cb.relname AS covered_by,
       pg_relation_size(a.indexrelid)::bigint AS bytes
FROM idx a
JOIN idx b ON a.indrelid = b.indrelid AND a.indexrelid <> b.indexrelid AND a.relam = b.relam
  AND a.exprs = b.exprs AND a.pred = b.pred
  AND array_length(a.cols, 1) <= array_length(b.cols, 1)
  AND a.cols = b.cols[0:array_length(a.cols, 1) - 1]
  AND a.opclasses = b.opclasses[0:array_length(a.opclasses, 1) - 1]
  AND (NOT a.indisunique OR (b.indisunique AND a.cols = b.cols))
  AND (array_length(a.cols, 1) < array_length(b.cols, 1) OR a.indexrelid > b.indexrelid OR b.indisprimary)
  AND NOT a.indisprimary
JOIN pg_class ca ON ca.oid = a.indexrelid
JOIN pg_class cb ON cb.oid = b.indexrelid
JOIN pg_class t ON t.oid = a.indrelid
JOIN pg_namespace n ON n.oid = t.relnamespace
ORDER BY a.indexrelid, b.indisprimary DESC`

/**
 * Table bloat estimate (ioguix/pgsql-bloat-estimation, as used by pgHero / check_postgres),
 * from pg_stats + pg_class statistics. $1 = minimum table size in bytes to report.
 */
export const TABLE_BLOAT_SQL = `
SELECT schemaname AS schema, tblname AS table, tblid::bigint AS oid, (bs * tblpages)::bigint AS bytes,
  CASE WHEN tblpages - est_tblpages_ff > 0 THEN ((tblpages - est_tblpages_ff) * bs)::bigint ELSE 0 END AS bloat_bytes,
  CASE WHEN tblpages > 0 AND tblpages - est_tblpages_ff > 0 THEN 100 * (tblpages - est_tblpages_ff) / tblpages::float8 ELSE 0 END AS bloat_pct,
  is_na
FROM (
  SELECT ceil(reltuples / ((bs - page_hdr) * fillfactor / (tpl_size * 100))) + ceil(toasttuples / 4) AS est_tblpages_ff,
         tblpages, fillfactor, bs, tblid, schemaname, tblname, is_na
  FROM (
    SELECT (4 + tpl_hdr_size + tpl_data_size + (2 * ma)
            - CASE WHEN tpl_hdr_size % ma = 0 THEN ma ELSE tpl_hdr_size % ma END
            - CASE WHEN ceil(tpl_data_size)::int % ma = 0 THEN ma ELSE ceil(tpl_data_size)::int % ma END) AS tpl_size,
           (heappages + toastpages) AS tblpages, reltuples, toasttuples, bs, page_hdr, tblid, schemaname, tblname, fillfactor, is_na
    FROM (
      SELECT tbl.oid AS tblid, ns.nspname AS schemaname, tbl.relname AS tblname, greatest(tbl.reltuples, 0) AS reltuples,
             tbl.relpages AS heappages, coalesce(toast.relpages, 0) AS toastpages, coalesce(greatest(toast.reltuples, 0), 0) AS toasttuples,
             coalesce(substring(array_to_string(tbl.reloptions, ' ') FROM 'fillfactor=([0-9]+)')::smallint, 100) AS fillfactor,
             current_setting('block_size')::numeric AS bs,
             CASE WHEN version() ~ 'mingw32' OR version() ~ '64-bit|x86_64|ppc64|ia64|amd64|aarch64' THEN 8 ELSE 4 END AS ma,
             24 AS page_hdr,
             23 + CASE WHEN max(coalesce(s.null_frac, 0)) > 0 THEN (7 + count(s.attname)) / 8 ELSE 0::int END AS tpl_hdr_size,
             sum((1 - coalesce(s.null_frac, 0)) * coalesce(s.avg_width, 0)) AS tpl_data_size,
             bool_or(att.atttypid = 'pg_catalog.name'::regtype) OR sum(CASE WHEN att.attnum > 0 THEN 1 ELSE 0 END) <> count(s.attname) AS is_na
      FROM pg_attribute att
      JOIN pg_class tbl ON att.attrelid = tbl.oid
      JOIN pg_namespace ns ON ns.oid = tbl.relnamespace
      LEFT JOIN pg_stats s ON s.schemaname = ns.nspname AND s.tablename = tbl.relname AND s.inherited = false AND s.attname = att.attname
      LEFT JOIN pg_class toast ON tbl.reltoastrelid = toast.oid
      WHERE NOT att.attisdropped AND att.attnum > 0 AND tbl.relkind IN ('r', 'm')
        AND ns.nspname NOT IN ('pg_catalog', 'information_schema') AND ns.nspname NOT LIKE 'pg_toast%'
        AND tbl.relpages::numeric * current_setting('block_size')::numeric >= $1
      GROUP BY 1, 2, 3, 4, 5, 6, 7, 8, 9, 10
    ) s
  ) s2
) s3
ORDER BY bloat_bytes DESC`

/**
 * B-tree index bloat estimate (ioguix/pgsql-bloat-estimation), $1 = minimum index size in bytes.
 */
export const INDEX_BLOAT_SQL = `
SELECT nspname AS schema, tblname AS table, idxname AS index, idxoid::bigint AS oid, (bs * relpages)::bigint AS bytes,
  CASE WHEN relpages > est_pages_ff THEN (bs * (relpages - est_pages_ff))::bigint ELSE 0 END AS bloat_bytes,
  CASE WHEN relpages > 0 AND relpages > est_pages_ff THEN 100 * (relpages - est_pages_ff)::float8 / relpages ELSE 0 END AS bloat_pct,
  is_na
FROM (
  SELECT coalesce(1 + ceil(reltuples / floor((bs - pageopqdata - pagehdr) * fillfactor / (100 * (4 + nulldatahdrwidth)::float))), 0) AS est_pages_ff,
         bs, nspname, tblname, idxname, idxoid, relpages, is_na
  FROM (
    SELECT maxalign, bs, nspname, tblname, idxname, reltuples, relpages, idxoid, fillfactor,
           (index_tuple_hdr_bm + maxalign - CASE WHEN index_tuple_hdr_bm % maxalign = 0 THEN maxalign ELSE index_tuple_hdr_bm % maxalign END
            + nulldatawidth + maxalign - CASE WHEN nulldatawidth = 0 THEN 0 WHEN nulldatawidth::integer % maxalign = 0 THEN maxalign ELSE nulldatawidth::integer % maxalign END)::numeric AS nulldatahdrwidth,
           pagehdr, pageopqdata, is_na
    FROM (
      SELECT n.nspname, i.tblname, i.idxname, i.reltuples, i.relpages, i.idxoid, i.fillfactor,
             current_setting('block_size')::numeric AS bs,
             CASE WHEN version() ~ 'mingw32' OR version() ~ '64-bit|x86_64|ppc64|ia64|amd64|aarch64' THEN 8 ELSE 4 END AS maxalign,
             24 AS pagehdr, 16 AS pageopqdata,
             CASE WHEN max(coalesce(s.null_frac, 0)) = 0 THEN 8 ELSE 8 + ((32 + 8 - 1) / 8) END AS index_tuple_hdr_bm,
             sum((1 - coalesce(s.null_frac, 0)) * coalesce(s.avg_width, 1024)) AS nulldatawidth,
             max(CASE WHEN i.atttypid = 'pg_catalog.name'::regtype THEN 1 ELSE 0 END) > 0 AS is_na
      FROM (
        SELECT ct.relname AS tblname, ct.relnamespace, ic.idxname, ic.attpos, ic.indkey, ic.reltuples, ic.relpages, ic.tbloid, ic.idxoid, ic.fillfactor,
               coalesce(a1.attnum, a2.attnum) AS attnum, coalesce(a1.attname, a2.attname) AS attname, coalesce(a1.atttypid, a2.atttypid) AS atttypid,
               CASE WHEN a1.attnum IS NULL THEN ic.idxname ELSE ct.relname END AS attrelname
        FROM (
          SELECT idxname, reltuples, relpages, tbloid, idxoid, fillfactor, indkey, pg_catalog.generate_series(1, indnatts) AS attpos
          FROM (
            SELECT ci.relname AS idxname, greatest(ci.reltuples, 0) AS reltuples, ci.relpages, i.indrelid AS tbloid, i.indexrelid AS idxoid,
                   coalesce(substring(array_to_string(ci.reloptions, ' ') FROM 'fillfactor=([0-9]+)')::smallint, 90) AS fillfactor,
                   i.indnatts, pg_catalog.string_to_array(pg_catalog.textin(pg_catalog.int2vectorout(i.indkey)), ' ')::int[] AS indkey
            FROM pg_catalog.pg_index i
            JOIN pg_catalog.pg_class ci ON ci.oid = i.indexrelid
            JOIN pg_catalog.pg_namespace cn ON cn.oid = ci.relnamespace
            WHERE ci.relam = (SELECT oid FROM pg_am WHERE amname = 'btree') AND ci.relpages > 0
              AND cn.nspname NOT IN ('pg_catalog', 'information_schema') AND cn.nspname NOT LIKE 'pg_toast%'
              AND ci.relpages::numeric * current_setting('block_size')::numeric >= $1
          ) idx_data
        ) ic
        JOIN pg_catalog.pg_class ct ON ct.oid = ic.tbloid
        LEFT JOIN pg_catalog.pg_attribute a1 ON ic.indkey[ic.attpos] <> 0 AND a1.attrelid = ic.tbloid AND a1.attnum = ic.indkey[ic.attpos]
        LEFT JOIN pg_catalog.pg_attribute a2 ON ic.indkey[ic.attpos] = 0 AND a2.attrelid = ic.idxoid AND a2.attnum = ic.attpos
      ) i
      JOIN pg_catalog.pg_namespace n ON n.oid = i.relnamespace
      JOIN pg_catalog.pg_stats s ON s.schemaname = n.nspname AND s.tablename = i.attrelname AND s.attname = i.attname
      GROUP BY 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11
    ) rows_data_stats
  ) rows_hdr_pdg_stats
) relation_stats
ORDER BY bloat_bytes DESC`

/** Sequences closest to their limit (pg_sequences: last_value is NULL before first use). */
export const SEQUENCES_SQL = `
SELECT schemaname AS schema, sequencename AS sequence, last_value::float8 AS last_value, max_value::float8 AS max_value,
       min_value::float8 AS min_value, increment_by::float8 AS increment,
       CASE WHEN increment_by > 0 THEN 100 * (coalesce(last_value, start_value) - min_value)::float8 / nullif(max_value - min_value, 0)
            ELSE 100 * (max_value - coalesce(last_value, start_value))::float8 / nullif(max_value - min_value, 0) END AS used_pct
FROM pg_sequences
ORDER BY used_pct DESC NULLS LAST
LIMIT 10`

/** Tables modified since their last (auto)vacuum / (auto)analyze, with how long ago that was. */
export const MAINTENANCE_AGE_SQL = `
SELECT schemaname AS schema, relname AS table, n_live_tup::bigint AS live, n_dead_tup::bigint AS dead,
       n_mod_since_analyze::bigint AS modified,
       extract(epoch FROM now() - greatest(last_vacuum, last_autovacuum))::float8 / 86400 AS vacuum_days,
       extract(epoch FROM now() - greatest(last_analyze, last_autoanalyze))::float8 / 86400 AS analyze_days,
       greatest(last_vacuum, last_autovacuum) IS NULL AS never_vacuumed,
       greatest(last_analyze, last_autoanalyze) IS NULL AS never_analyzed
FROM pg_stat_user_tables
WHERE n_dead_tup > 0 OR n_mod_since_analyze > 0`

/**
 * reset_val, not setting: the value a fresh session gets (our own SET statement_timeout must not
 * count as drift), and the raw value where SHOW masks it (archive_command shows "(disabled)" while
 * archive_mode is off).
 */
export const SETTINGS_SQL = `SELECT name, reset_val AS setting, unit, vartype, source, pending_restart FROM pg_settings`
