#!/bin/bash
# The local postgres image's entrypoint (base_images role): on the first start of an empty data
# directory, initialise it the way the official image does for what the stack uses
# (POSTGRES_USER as the superuser, its password read from POSTGRES_PASSWORD_FILE, POSTGRES_DB
# created and owned by it, scram-sha-256 for every connection over the network), then run
# postgres in the foreground as PID 1 (a stop signal is a clean shutdown).
set -euo pipefail
: "${PGDATA:=/var/lib/postgresql/data}"
user=${POSTGRES_USER:-postgres}
database=${POSTGRES_DB:-$user}

if [ ! -s "$PGDATA/PG_VERSION" ]; then
  if [ ! -r "${POSTGRES_PASSWORD_FILE:-}" ]; then
    echo "postgres: POSTGRES_PASSWORD_FILE must name a readable file with the password of $user" >&2
    exit 1
  fi
  initdb --pgdata="$PGDATA" --username="$user" --pwfile="$POSTGRES_PASSWORD_FILE" \
    --auth-local=peer --auth-host=scram-sha-256 --encoding=UTF8 --locale=C.UTF-8
  echo "host all all all scram-sha-256" >>"$PGDATA/pg_hba.conf"
  if [ "$database" != postgres ]; then
    printf 'CREATE DATABASE "%s" OWNER "%s"\n' "$database" "$user" |
      postgres --single -D "$PGDATA" postgres >/dev/null
  fi
fi

exec postgres -D "$PGDATA" -c listen_addresses='*' "$@"
