#!/usr/bin/env bash
# The whole suite: unit (fake engine), integration (real Docker), e2e (real Chromium) on
# SQLite; then, on a throwaway PostgreSQL server, the unit suite again and the tests of
# database-vendor-specific code elsewhere (marker `vendor`). PAAS_TEST_POSTGRESQL=0 skips
# that second stage. Each pytest run labels its containers with its own PAAS_INSTANCE
# and removes them.
set -euo pipefail
cd "$(dirname "$0")/../.."
.venv/bin/python manage.py check
.venv/bin/pytest tests -q -p no:cacheprovider "$@"

if [[ "${PAAS_TEST_POSTGRESQL:-1}" != 0 ]]; then
  echo "== the same on PostgreSQL: unit suite and vendor-specific tests"
  # pytest exits 5 when no test carries the marker: nothing to run is not a failure.
  infrastructure/scripts/pg-throwaway.sh run -- bash -c '
    set -e
    .venv/bin/pytest tests/unit -q -p no:cacheprovider
    .venv/bin/pytest tests/integration tests/e2e -q -p no:cacheprovider -m vendor \
      || [[ $? -eq 5 ]]'
fi
