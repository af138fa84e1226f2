#!/usr/bin/env bash
# promtool checks the alert rules and the /metrics output in `make test`. It comes with
# Debian's prometheus package; the server itself must not be left running here.
set -euo pipefail
command -v promtool >/dev/null && exit 0
if [ "$(id -u)" != 0 ]; then
  echo "promtool is missing: apt-get install -y prometheus (as root)" >&2
  exit 1
fi
echo "installing promtool (Debian package prometheus)"
apt-get install -y -qq --no-install-recommends prometheus >/dev/null 2>&1 || {
  apt-get update -qq && apt-get install -y -qq --no-install-recommends prometheus >/dev/null; }
if command -v systemctl >/dev/null && systemctl is-active --quiet prometheus 2>/dev/null; then
  systemctl disable --now prometheus >/dev/null 2>&1 || true
fi
