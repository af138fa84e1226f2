#!/usr/bin/env bash
# The whole suite: unit (fake engine), integration (real Docker), e2e (real Chromium) on
# SQLite; then, on a throwaway PostgreSQL server, the unit suite again and the tests of
# database-vendor-specific code elsewhere (marker `vendor`). PAAS_TEST_POSTGRESQL=0 skips
# that second stage. Each pytest run labels its containers with its own PAAS_INSTANCE
# and removes them.
#
# Test runs never touch a live installation: tests/settings.py gives every run its own
# data dir, instance, secret and database, and this script fingerprints ./var (where
# `make run` keeps the platform's data) before and after; any change fails the run.
set -euo pipefail
cd "$(dirname "$0")/../.."
fingerprint() { .venv/bin/python infrastructure/scripts/tree-fingerprint.py var; }
before=$(fingerprint)

scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
PAAS_DATA_DIR=$scratch .venv/bin/python manage.py check
status=0
.venv/bin/pytest tests -q -p no:cacheprovider "$@" || status=$?

if [[ "${PAAS_TEST_POSTGRESQL:-1}" != 0 ]]; then
  echo "== the same on PostgreSQL: unit suite and vendor-specific tests"
  # pytest exits 5 when no test carries the marker: nothing to run is not a failure.
  infrastructure/scripts/pg-throwaway.sh run -- bash -c '
    set -e
    .venv/bin/pytest tests/unit -q -p no:cacheprovider
    .venv/bin/pytest tests/integration tests/e2e -q -p no:cacheprovider -m vendor \
      || [[ $? -eq 5 ]]' || status=$?
fi

after=$(fingerprint)
if [[ "$before" != "$after" ]]; then
  diff <(echo "$before") <(echo "$after") >"$scratch/var.diff" || true
  echo "FAIL: the test run changed ./var, the data dir of a platform started by 'make run':" >&2
  cat "$scratch/var.diff" >&2
  exit 1
fi
exit "$status"
