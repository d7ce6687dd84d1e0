#!/bin/sh
# The official postgres image's start-up, for Debian's PostgreSQL: on the first start (PGDATA empty)
# a cluster whose superuser is POSTGRES_USER (default postgres) with POSTGRES_PASSWORD (required),
# password logins over TCP, and the database POSTGRES_DB (default: the user's name); later starts
# keep what PGDATA holds. Then the server as the postgres user, listening on every address.
set -eu
if [ "${1:-}" != postgres ]; then
  exec "$@"
fi
shift
if [ -z "${POSTGRES_PASSWORD:-}" ]; then
  echo "error: POSTGRES_PASSWORD is required (the official image refuses to start without it too)" >&2
  exit 1
fi
user=${POSTGRES_USER:-postgres}
database=${POSTGRES_DB:-$user}
mkdir -p "$PGDATA" /var/run/postgresql
chown postgres:postgres "$PGDATA" /var/run/postgresql
chmod 700 "$PGDATA"
as_postgres() { setpriv --reuid=postgres --regid=postgres --init-groups "$@"; }
if [ ! -s "$PGDATA/PG_VERSION" ]; then
  pwfile=$(mktemp)
  printf '%s\n' "$POSTGRES_PASSWORD" >"$pwfile"
  chown postgres "$pwfile"
  as_postgres initdb --pgdata="$PGDATA" --username="$user" --pwfile="$pwfile" --encoding=UTF8 \
    --auth-local=trust --auth-host=scram-sha-256 >/dev/null
  rm -f "$pwfile"
  echo "host all all all scram-sha-256" >>"$PGDATA/pg_hba.conf"
  if [ "$database" != postgres ]; then
    quoted=$(printf '%s' "$database" | sed 's/"/""/g')
    printf 'CREATE DATABASE "%s"\n' "$quoted" | as_postgres postgres --single -D "$PGDATA" postgres >/dev/null
  fi
  echo "entrypoint: cluster made in $PGDATA for user $user, database $database" >&2
fi
exec setpriv --reuid=postgres --regid=postgres --init-groups postgres -D "$PGDATA" -c listen_addresses='*' "$@"
