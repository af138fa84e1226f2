#!/usr/bin/env bash
# Start the whole platform in the foreground: Caddy (the HTTPS front door, when
# PAAS_CADDY_ADMIN is set, the default), gunicorn on port 5000 (loopback only behind
# Caddy), the django-q2 cluster and the Docker events watcher (the cluster's child,
# sharing its memory: `pool cluster`). Ctrl-C (or SIGTERM) stops them all cleanly.
set -euo pipefail
cd "$(dirname "$0")/../.."
py=.venv/bin/python
port=${PAAS_PORT:-5000}
data=${PAAS_DATA_DIR:-$(pwd)/var}

"$py" manage.py migrate --noinput
"$py" manage.py collectstatic --noinput >/dev/null
"$py" manage.py ensure_admin
"$py" manage.py pool schedules
# Tests that share a Docker daemon build their images themselves (without pruning).
[[ "${PAAS_SKIP_IMAGE_BUILD:-}" == 1 ]] || "$py" manage.py pool build-images
# Converge first (state left by a crash or a daemon restart), then warm the pools.
"$py" manage.py pool reconcile >/dev/null || echo "reconcile: see the message above"
"$py" manage.py pool init

# Every process writes its metric counters under the data dir; a fresh start begins
# with none (otherwise files of long-dead processes pile up).
rm -rf "${PAAS_DATA_DIR:-var}/metrics"

# Each process runs in its own session (setsid): Ctrl-C in the terminal reaches this
# script alone, which then asks each to stop exactly once. A second signal (SIGINT from
# the terminal on top of our SIGTERM) is what left the django-q2 cluster hanging on a
# lock; gunicorn and the cluster pass the SIGTERM on to their own children (the
# cluster's parent to its watcher too).
pids=()
stopping=0
start() {
  setsid "$@" &
  pids+=($!)
}

alive() {  # pids whose process group still has a member
  local pid
  for pid in "${pids[@]}"; do
    kill -0 -- "-$pid" 2>/dev/null && echo "$pid"
  done
  return 0
}

stop() {
  ((stopping)) && return 0
  stopping=1
  echo "stopping platform..."
  kill -TERM "${pids[@]}" 2>/dev/null || true
  local deadline=$((SECONDS + ${PAAS_STOP_TIMEOUT:-20})) left
  while left=$(alive) && [[ -n "$left" ]] && ((SECONDS < deadline)); do
    sleep 0.2
  done
  if [[ -n "$left" ]]; then  # a safety net only: a clean stop takes a few seconds
    echo "still running after ${PAAS_STOP_TIMEOUT:-20}s, killing process groups: $left" >&2
    for pid in $left; do kill -KILL -- "-$pid" 2>/dev/null || true; done
  fi
  wait 2>/dev/null || true
  echo "platform stopped"
  exit 0
}
trap stop INT TERM

bind=0.0.0.0
site="http://localhost:$port/"
if "$py" manage.py proxy enabled; then
  infrastructure/scripts/ensure-caddy.sh
  # Caddy starts with its admin endpoint only; the routes come from the database (its
  # own config persistence is off, so a restart never revives released routes). The
  # sync loads the routes of the slots warmed above before gunicorn takes a claim.
  "$py" manage.py proxy bootstrap > "$data/caddy-bootstrap.json"
  HOME="$data" XDG_DATA_HOME="$data/caddy-xdg" XDG_CONFIG_HOME="$data/caddy-xdg" \
    start caddy run --config "$data/caddy-bootstrap.json" >> "$data/caddy.log" 2>&1
  "$py" manage.py proxy sync --wait 15
  if [ "$(id -u)" = 0 ] && command -v iptables >/dev/null; then
    "$py" manage.py proxy firewall || echo "firewall: rules not installed (see above)"
  fi
  bind=127.0.0.1  # reached through Caddy only; containers cannot reach it
  "$py" manage.py proxy site > "$data/site.txt"
  site=$(sed -n 1p "$data/site.txt")
  sed -n 2p "$data/site.txt"
fi

# No system checks for the long-running command (migrate ran them above): they load
# the URLconf, every view and the admin, which it never uses (25 MB). `pool cluster` is
# django-q2's cluster with the watcher forked from the same parent, so both share one
# Django (`pool watch` alone still works, for a watcher of its own).
start "$py" manage.py pool --skip-checks cluster
start .venv/bin/gunicorn paas_project.wsgi:application --bind "$bind:$port" \
  --config python:paas_project.gunicorn_conf \
  --access-logfile - --graceful-timeout 5
echo "platform running on $site (admin: ${site}admin/); Ctrl-C stops it"
wait -n "${pids[@]}" || true
stop
