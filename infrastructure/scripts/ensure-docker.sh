#!/usr/bin/env bash
# Make sure a Docker engine answers. As root on Debian/Ubuntu with none running:
# install docker.io and start `dockerd --live-restore` in the background (live-restore
# keeps pool containers running across a daemon restart). Otherwise say what to do.
#
# An engine this script starts runs without the userland proxy (`"userland-proxy": false`
# in daemon.json, written only when there is none): a pool publishes one port per slot,
# and the proxy costs a docker-proxy process per published port, and time on every
# container start. dockerd then reaches published ports through iptables (DNAT, and
# route_localnet on its bridges for 127.0.0.1), loopback included. An engine that is
# already running, or one with its own daemon.json, is never restarted or reconfigured.
set -euo pipefail
# The engine is the host's, not the platform's: its log stays out of the data dir.
log_file=${PAAS_DOCKERD_LOG:-/var/log/paas-dockerd.log}
daemon_json=${PAAS_DOCKERD_CONFIG:-/etc/docker/daemon.json}  # another path: tests

answers() { docker info >/dev/null 2>&1; }

proxy_note() {
  if ! grep -qs '"userland-proxy": *false' "$daemon_json"; then
    echo "docker: note: this engine runs a docker-proxy per published port; with many pool"
    echo "        slots set \"userland-proxy\": false in $daemon_json and restart it yourself"
  fi
}

if answers; then echo "docker: engine answers"; proxy_note; exit 0; fi

if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
  echo "docker: no engine answers. Start one (e.g. 'sudo systemctl start docker'," >&2
  echo "        or as root: apt-get install -y docker.io && dockerd --live-restore &)" >&2
  exit 1
fi

# Before the package is installed: its post-install may start the engine at once.
if [ ! -e "$daemon_json" ]; then
  echo "docker: writing $daemon_json (userland-proxy off) before starting the engine"
  mkdir -p "$(dirname "$daemon_json")"
  printf '{\n  "userland-proxy": false\n}\n' >"$daemon_json"
else
  proxy_note  # the operator's own file: left as it is
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
  nohup dockerd --config-file "$daemon_json" --live-restore >"$log_file" 2>&1 &
fi
for _ in $(seq 1 60); do
  if answers; then echo "docker: engine answers"; exit 0; fi
  sleep 0.5
done
echo "docker: dockerd did not come up; see $log_file" >&2
exit 1
