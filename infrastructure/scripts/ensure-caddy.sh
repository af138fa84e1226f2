#!/usr/bin/env bash
# Make sure Debian's caddy is installed, and that the package's own service (the
# Caddyfile on :80) does not run: the platform starts its own Caddy, configured through
# the admin API (run-platform.sh here, the paas-caddy unit under systemd).
# --test: also pebble (the ACME test CA), openssl and iptables, for the test suite.
set -euo pipefail

packages=(caddy)
if [ "${1:-}" = --test ]; then packages+=(pebble openssl iptables); fi
missing=()
for package in "${packages[@]}"; do
  command -v "$package" >/dev/null || missing+=("$package")
done
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
    echo "caddy: missing ${missing[*]}. As root: apt-get install -y ${missing[*]}" >&2
    exit 1
  fi
  echo "caddy: installing ${missing[*]} from the Debian archive"
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -qq "${missing[@]}" >/dev/null 2>&1 || {
    apt-get update -qq && apt-get install -y -qq "${missing[@]}" >/dev/null; }
fi
if command -v systemctl >/dev/null && [ -d /run/systemd/system ]; then
  systemctl disable --now caddy.service >/dev/null 2>&1 || true
fi
echo "caddy: $(caddy version | cut -d' ' -f1)"
