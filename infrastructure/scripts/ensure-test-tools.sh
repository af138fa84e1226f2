#!/usr/bin/env bash
# The real servers and tools the suite drives besides Docker, Caddy and Chromium (each of
# those has its own ensure-*.sh): PostgreSQL (a throwaway cluster per run), Redis (the
# django-q2 broker test), iproute2 and iptables (the swarm lab's network namespaces and
# the firewall tests). As root on Debian/Ubuntu, missing ones are installed from the
# archive; the tests start and remove their own instances, never the system services.
set -euo pipefail
declare -A need=([redis-server]=redis-server [ip]=iproute2 [iptables]=iptables
                 [pg_ctlcluster]=postgresql)
missing=()
for cmd in "${!need[@]}"; do
  command -v "$cmd" >/dev/null 2>&1 || missing+=("${need[$cmd]}")
done
((${#missing[@]})) || exit 0
if [[ $EUID -ne 0 ]] || ! command -v apt-get >/dev/null; then
  echo "test tools: missing ${missing[*]}. As root: apt-get install -y ${missing[*]}" >&2
  exit 1
fi
echo "test tools: installing ${missing[*]} from the Debian archive"
export DEBIAN_FRONTEND=noninteractive
apt-get install -y -qq "${missing[@]}" >/dev/null 2>&1 || {
  apt-get update -qq && apt-get install -y -qq "${missing[@]}" >/dev/null; }
# Debian starts the packaged servers on install; the tests run their own instances, so
# the services this script just installed are stopped again (others are not ours).
for svc in "${missing[@]}"; do
  [[ $svc == redis-server || $svc == postgresql ]] || continue
  if command -v systemctl >/dev/null && [[ -d /run/systemd/system ]]; then
    systemctl disable --now "$svc" >/dev/null 2>&1 || true
  else
    service "$svc" stop >/dev/null 2>&1 || true
  fi
done
