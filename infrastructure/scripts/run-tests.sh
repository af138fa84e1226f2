#!/usr/bin/env bash
# The whole suite: unit (fake engine), integration (real Docker), e2e (real Chromium).
# Each pytest run labels its containers with its own PAAS_INSTANCE and removes them.
set -euo pipefail
cd "$(dirname "$0")/../.."
.venv/bin/python manage.py check
.venv/bin/pytest tests -q -p no:cacheprovider "$@"
