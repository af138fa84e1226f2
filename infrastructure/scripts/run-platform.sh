#!/usr/bin/env bash
# Start the whole platform in the foreground: gunicorn on port 5000, the django-q2
# cluster and the Docker events watcher. Ctrl-C (or SIGTERM) stops all three cleanly.
set -euo pipefail
cd "$(dirname "$0")/../.."
py=.venv/bin/python
port=${PAAS_PORT:-5000}

"$py" manage.py migrate --noinput
"$py" manage.py collectstatic --noinput >/dev/null
"$py" manage.py ensure_admin
"$py" manage.py pool schedules
"$py" manage.py pool build-images
# Converge first (state left by a crash or a daemon restart), then warm the pools.
"$py" manage.py pool reconcile >/dev/null || echo "reconcile: see the message above"
"$py" manage.py pool init

pids=()
stop() {
  trap - INT TERM
  echo "stopping platform..."
  kill -TERM "${pids[@]}" 2>/dev/null || true
  wait "${pids[@]}" 2>/dev/null || true
  exit 0
}
trap stop INT TERM

"$py" manage.py qcluster & pids+=($!)
"$py" manage.py pool watch & pids+=($!)
.venv/bin/gunicorn paas_project.wsgi:application --bind "0.0.0.0:$port" \
  --worker-class gthread --workers "${PAAS_WEB_WORKERS:-2}" --threads "${PAAS_WEB_THREADS:-8}" --preload \
  --access-logfile - --graceful-timeout 5 & pids+=($!)
echo "platform running on http://localhost:$port/ (admin: /admin/); Ctrl-C stops it"
wait -n "${pids[@]}"
stop
