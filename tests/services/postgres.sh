#!/usr/bin/env bash
# A real PostgreSQL server on loopback, for the store and pipeline suites on PostgreSQL.
#
#   tests/services/postgres.sh start   makes a new cluster on a temporary data directory (as the
#                                      user postgres) and starts it on a free loopback port;
#                                      prints the environment to use and writes it to $STATE/env
#   tests/services/postgres.sh stop    stops it and removes the data directory
#   tests/services/postgres.sh status  exits 0 when the server answers
#
# Everything lives under $POSTSTELLE_PG_HOME (default /var/tmp/poststelle-pg). The server runs
# with fsync off (a test cluster is thrown away; the tests kill poststelle, not the server).
# Connections need a password (scram-sha-256), as in production. Needs Debian's `postgresql`
# package (deploy/test.sh installs it).
set -euo pipefail

HOME_DIR=${POSTSTELLE_PG_HOME:-/var/tmp/poststelle-pg}
STATE=$HOME_DIR/run
DATA=$HOME_DIR/data
PG_USER=poststelle
PG_PASSWORD=poststelle-test

log() { echo "postgres.sh: $*" >&2; }

bin_dir() {
  local d
  d=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
  [ -n "$d" ] || { log "no PostgreSQL server found (Debian package postgresql)"; exit 1; }
  echo "$d"
}

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# Runs a command as the user postgres (the server refuses to run as root).
as_postgres() {
  if [ "$(id -un)" = postgres ]; then
    "$@"
  elif [ "$(id -u)" -eq 0 ]; then
    runuser -u postgres -- "$@"
  else
    sudo -u postgres -- "$@"
  fi
}

start() {
  local bin port
  bin=$(bin_dir)
  id postgres >/dev/null 2>&1 || { log "there is no user postgres"; exit 1; }
  stop_quietly
  mkdir -p "$HOME_DIR" "$STATE"
  rm -rf "$DATA"
  install -d -o postgres -g postgres -m 700 "$DATA"
  chown postgres:postgres "$STATE"
  local pwfile=$STATE/pw
  echo "$PG_PASSWORD" >"$pwfile"
  chown postgres "$pwfile"
  as_postgres "$bin/initdb" -D "$DATA" -U "$PG_USER" --pwfile="$pwfile" \
    --auth-local=scram-sha-256 --auth-host=scram-sha-256 -E UTF8 --locale=C.UTF-8 >"$STATE/initdb.log"
  rm -f "$pwfile"
  port=$(free_port)
  as_postgres "$bin/pg_ctl" -D "$DATA" -l "$STATE/server.log" -w -t 60 \
    -o "-p $port -k $DATA -c listen_addresses=127.0.0.1 -c max_connections=400 -c fsync=off -c full_page_writes=off" \
    start >/dev/null
  local url="postgres://$PG_USER:$PG_PASSWORD@127.0.0.1:$port/postgres"
  echo "POSTSTELLE_TEST_POSTGRES_URL=$url" | tee "$STATE/env"
}

stop_quietly() {
  [ -f "$DATA/postmaster.pid" ] || return 0
  as_postgres "$(bin_dir)/pg_ctl" -D "$DATA" -m fast -w stop >/dev/null 2>&1 || true
}

case "${1:-}" in
  start) start ;;
  stop) stop_quietly; rm -rf "$DATA" ;;
  status)
    [ -f "$STATE/env" ] || exit 1
    port=$(sed -n 's/.*@127.0.0.1:\([0-9]*\)\/.*/\1/p' "$STATE/env")
    "$(bin_dir)/pg_isready" -q -h 127.0.0.1 -p "$port"
    ;;
  *) echo "usage: $0 start|stop|status" >&2; exit 2 ;;
esac
