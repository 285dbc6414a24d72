#!/bin/bash
# First start: initdb (password from POSTGRES_PASSWORD, never argv), every
# /docker-entrypoint-initdb.d/*.sql through psql on a socket-only server, then the real server.
# Later starts go straight to the server. Runs as root only to fix ownership, then as postgres.
set -euo pipefail
: "${PGDATA:=/var/lib/postgresql/data}"
if [ "$(id -u)" = 0 ]; then
  mkdir -p "$PGDATA" /run/postgresql
  chown postgres:postgres "$PGDATA" /run/postgresql
  chmod 0700 "$PGDATA"
  exec setpriv --reuid=postgres --regid=postgres --init-groups "$0" "$@"
fi
# setpriv keeps root's HOME: charge-ops (archive_command) would warn about /root on every segment
export HOME=/var/lib/postgresql
if [ ! -s "$PGDATA/PG_VERSION" ]; then
  : "${POSTGRES_PASSWORD:?POSTGRES_PASSWORD is not set (postgres.env)}"
  pwfile=$(mktemp)
  printf '%s\n' "$POSTGRES_PASSWORD" > "$pwfile"
  initdb -D "$PGDATA" --username=postgres --pwfile="$pwfile" --auth-local=peer --auth-host=scram-sha-256 --encoding=UTF8 --locale=C.UTF-8 >/dev/null
  rm -f "$pwfile"
  # Clients come from the compose network (or the host through the published port): password + TLS is
  # decided by postgresql.conf / the URLs; scram everywhere.
  echo 'host all all all scram-sha-256' >> "$PGDATA/pg_hba.conf"
  # backup base (pg_basebackup) from the ops container or the host: the replication protocol
  echo 'host replication all all scram-sha-256' >> "$PGDATA/pg_hba.conf"
  pg_ctl -D "$PGDATA" -w -o "-c listen_addresses='' -c archive_mode=off" start >/dev/null
  for f in /docker-entrypoint-initdb.d/*; do
    case "$f" in
      *.sql) echo "postgres-entrypoint: running $f" >&2; psql -v ON_ERROR_STOP=1 -X -q -d postgres -f "$f" ;;
      *.sh) echo "postgres-entrypoint: running $f" >&2; . "$f" ;;
    esac
  done
  pg_ctl -D "$PGDATA" -m fast -w stop >/dev/null
fi
if [ "${1:-}" = postgres ]; then shift; exec postgres -D "$PGDATA" "$@"; fi
exec "$@"
