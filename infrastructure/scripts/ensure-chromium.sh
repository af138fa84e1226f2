#!/usr/bin/env bash
# Browser tests drive Debian's Chromium through Playwright (Playwright's own browser
# download cannot work without its CDN).
set -euo pipefail
if [ -x /usr/bin/chromium ]; then echo "chromium: present"; exit 0; fi
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  echo "chromium: installing Debian's chromium"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq chromium >/dev/null
  exit 0
fi
echo "chromium: /usr/bin/chromium missing; install Debian's 'chromium' package" >&2
exit 1
