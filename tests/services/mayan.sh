#!/usr/bin/env bash
# A real Mayan EDMS (from PyPI) on loopback, for the Mayan delivery tests.
#
#   tests/services/mayan.sh start   installs (cached), sets up and starts Mayan; prints the
#                                   environment to use and writes it to $STATE/env
#   tests/services/mayan.sh stop    stops the web server, the Celery worker and Redis
#   tests/services/mayan.sh status  exits 0 when the API answers
#
# Everything lives under $POSTSTELLE_MAYAN_HOME (default /var/tmp/poststelle-mayan): the venv
# (reused while its version matches), the media folder with the SQLite database (set up once),
# logs and pid files. Needs python3 (with venv), redis-server, libldap2-dev, libsasl2-dev
# (deploy/setup.sh installs them).
set -euo pipefail

MAYAN_VERSION=${MAYAN_VERSION:-4.12.2}
HOME_DIR=${POSTSTELLE_MAYAN_HOME:-/var/tmp/poststelle-mayan}
STATE=$HOME_DIR/run
VENV=$HOME_DIR/venv
MEDIA=$HOME_DIR/media
ADMIN_USER=admin
ADMIN_PASSWORD=poststelle-test-admin

log() { echo "mayan.sh: $*" >&2; }

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

mayan_env() {
  export MAYAN_MEDIA_ROOT=$MEDIA
  export MAYAN_SETTINGS_MODULE=mayan.settings.production
  export DJANGO_SETTINGS_MODULE=mayan.settings.production
  export MAYAN_CELERY_BROKER_URL="redis://127.0.0.1:$REDIS_PORT/0"
  export MAYAN_CELERY_RESULT_BACKEND="redis://127.0.0.1:$REDIS_PORT/1"
  # SQLite shared by the web server and the worker: wait for locks instead of failing, WAL
  # for concurrent readers, and write transactions that take the lock up front.
  export MAYAN_DATABASES="{\"default\": {\"ENGINE\": \"django.db.backends.sqlite3\", \
\"NAME\": \"$MEDIA/db.sqlite3\", \"OPTIONS\": {\"timeout\": 60, \
\"transaction_mode\": \"IMMEDIATE\", \"init_command\": \"PRAGMA journal_mode=WAL;\"}}}"
  export MAYAN_ALLOWED_HOSTS='["127.0.0.1", "localhost"]'
  export MAYAN_AUTOADMIN_USERNAME=$ADMIN_USER
  export MAYAN_AUTOADMIN_PASSWORD=$ADMIN_PASSWORD
  export MAYAN_AUTOADMIN_EMAIL=admin@localhost
  export MAYAN_DEBUG=false
  export PYTHONWARNINGS=ignore
}

install() {
  if [ -x "$VENV/bin/mayan-edms.py" ] && [ "$(cat "$VENV/.version" 2>/dev/null)" = "$MAYAN_VERSION" ]; then
    return
  fi
  local t0=$SECONDS
  log "installing mayan-edms $MAYAN_VERSION into $VENV"
  rm -rf "$VENV"
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q --upgrade pip wheel
  "$VENV/bin/pip" install -q "mayan-edms==$MAYAN_VERSION" "redis>=5,<7"
  echo "$MAYAN_VERSION" >"$VENV/.version"
  log "installed in $((SECONDS - t0)) s"
}

# spawn NAME CMD...: runs CMD in its own session (so `stop` can end its whole process group),
# detached from our stdout, logging to $STATE/NAME.log, pid in $STATE/NAME.pid.
spawn() {
  local name=$1; shift
  (cd "$STATE" && exec setsid bash -c 'echo $$ >"$0"; exec "$@"' "$STATE/$name.pid" "$@" \
    >>"$STATE/$name.log" 2>&1 </dev/null &)
  for _ in $(seq 1 50); do [ -s "$STATE/$name.pid" ] && return; sleep 0.1; done
}

pid_alive() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

start() {
  mkdir -p "$STATE" "$MEDIA"
  if [ -f "$STATE/env" ] && status >/dev/null 2>&1; then
    log "already running"
    cat "$STATE/env"
    return
  fi
  stop >/dev/null 2>&1 || true
  install
  REDIS_PORT=$(free_port)
  WEB_PORT=$(free_port)
  rm -f "$STATE"/*.log
  redis-server --bind 127.0.0.1 --port "$REDIS_PORT" --save '' --appendonly no \
    --daemonize yes --pidfile "$STATE/redis.pid" --logfile "$STATE/redis.log"
  echo "$REDIS_PORT" >"$STATE/redis.port"
  mayan_env
  local t0=$SECONDS
  if [ ! -f "$MEDIA/.poststelle-setup-done" ]; then
    log "initial setup (database, admin user)"
    "$VENV/bin/mayan-edms.py" common_initial_setup --force --no-dependencies >"$STATE/setup.log" 2>&1 || {
      tail -40 "$STATE/setup.log" >&2; exit 1; }
    touch "$MEDIA/.poststelle-setup-done"
  else
    "$VENV/bin/mayan-edms.py" common_perform_upgrade --no-dependencies >"$STATE/setup.log" 2>&1 || {
      tail -40 "$STATE/setup.log" >&2; exit 1; }
  fi
  log "setup took $((SECONDS - t0)) s"
  queues=$("$VENV/bin/python" - <<'PY'
import django
django.setup()
from mayan.apps.task_manager.classes import CeleryQueue
print(",".join(sorted(q.name for q in CeleryQueue.all())))
PY
)
  spawn worker "$VENV/bin/celery" -A mayan worker -Ofair -l INFO -Q "$queues" \
    --concurrency 2 --without-gossip --without-mingle
  spawn web "$VENV/bin/gunicorn" mayan.wsgi --bind "127.0.0.1:$WEB_PORT" --workers 2 --timeout 120
  local url="http://127.0.0.1:$WEB_PORT"
  cat >"$STATE/env" <<ENV
POSTSTELLE_TEST_MAYAN_URL=$url
POSTSTELLE_TEST_MAYAN_USER=$ADMIN_USER
POSTSTELLE_TEST_MAYAN_PASSWORD=$ADMIN_PASSWORD
POSTSTELLE_TEST_MAYAN_CONTROL=$(cd "$(dirname "$0")" && pwd)/mayan.sh
ENV
  for _ in $(seq 1 120); do
    if status >/dev/null 2>&1; then
      log "up at $url (user $ADMIN_USER) after $((SECONDS - t0)) s"
      cat "$STATE/env"
      return
    fi
    pid_alive "$STATE/web.pid" || { tail -40 "$STATE/web.log" >&2; exit 1; }
    sleep 1
  done
  log "no answer from $url"; tail -40 "$STATE/web.log" >&2; exit 1
}

status() {
  # shellcheck disable=SC1091
  . "$STATE/env"
  pid_alive "$STATE/worker.pid" || return 1
  curl -fsS -m 5 -u "$POSTSTELLE_TEST_MAYAN_USER:$POSTSTELLE_TEST_MAYAN_PASSWORD" \
    "$POSTSTELLE_TEST_MAYAN_URL/api/v4/document_types/" >/dev/null
}

stop_pid() {
  local f=$1
  if pid_alive "$f"; then
    local pid; pid=$(cat "$f")
    kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 30); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
    kill -KILL -- "-$pid" 2>/dev/null || true
  fi
  rm -f "$f"
}

# Stops only the web server (the API then refuses connections); `start-web` brings it back on
# the same port. Used by the tests to simulate an outage.
stop_web() { stop_pid "$STATE/web.pid"; }

start_web() {
  # shellcheck disable=SC1091
  . "$STATE/env"
  REDIS_PORT=$(cat "$STATE/redis.port")
  mayan_env
  local port=${POSTSTELLE_TEST_MAYAN_URL##*:}
  spawn web "$VENV/bin/gunicorn" mayan.wsgi --bind "127.0.0.1:$port" --workers 2 --timeout 120
  for _ in $(seq 1 120); do
    status >/dev/null 2>&1 && return
    sleep 0.5
  done
  log "web server did not come back"; exit 1
}

stop() {
  stop_pid "$STATE/web.pid"
  stop_pid "$STATE/worker.pid"
  if pid_alive "$STATE/redis.pid"; then kill "$(cat "$STATE/redis.pid")"; fi
  rm -f "$STATE/redis.pid" "$STATE/env"
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  status) status ;;
  stop-web) stop_web ;;
  start-web) start_web ;;
  *) echo "usage: $0 start|stop|status|stop-web|start-web" >&2; exit 2 ;;
esac
