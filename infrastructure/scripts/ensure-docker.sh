#!/usr/bin/env bash
# Make sure a Docker engine answers. As root on Debian/Ubuntu with none running:
# install docker.io and start `dockerd --live-restore` in the background (live-restore
# keeps pool containers running across a daemon restart). Otherwise say what to do.
set -euo pipefail
# The engine is the host's, not the platform's: its log stays out of the data dir.
log_file=/var/log/paas-dockerd.log

answers() { docker info >/dev/null 2>&1; }

if answers; then echo "docker: engine answers"; exit 0; fi

if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
  echo "docker: no engine answers. Start one (e.g. 'sudo systemctl start docker'," >&2
  echo "        or as root: apt-get install -y docker.io && dockerd --live-restore &)" >&2
  exit 1
fi

if ! command -v dockerd >/dev/null || ! command -v debootstrap >/dev/null; then
  echo "docker: installing docker.io and debootstrap from the Debian archive"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq docker.io debootstrap >/dev/null
fi

if command -v systemctl >/dev/null && [ -d /run/systemd/system ]; then
  systemctl start docker 2>/dev/null || true
fi
if ! answers; then
  echo "docker: starting dockerd --live-restore (log: $log_file)"
  nohup dockerd --live-restore >"$log_file" 2>&1 &
fi
for _ in $(seq 1 60); do
  if answers; then echo "docker: engine answers"; exit 0; fi
  sleep 0.5
done
echo "docker: dockerd did not come up; see $log_file" >&2
exit 1
