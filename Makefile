# Two commands: `make run` (set up everything, start on port 5000 with pools warm) and
# `make test` (set up everything, run the whole suite). Everything else is a step of those.
SHELL := /bin/bash
PY := .venv/bin/python
PYTEST := .venv/bin/pytest

.PHONY: run test setup venv docker images migrate lint unit integration e2e deploy-test bench clean-test

# The platform's data lives in ./var (settings' default) unless PAAS_DATA_DIR says
# otherwise. Nothing here exports it: test runs make a data dir of their own
# (tests/settings.py) and must never see the platform's.
run: setup
	$(PY) manage.py migrate --noinput
	infrastructure/scripts/run-platform.sh

test: setup
	infrastructure/scripts/ensure-chromium.sh
	infrastructure/scripts/ensure-caddy.sh --test
	infrastructure/scripts/ensure-test-tools.sh
	infrastructure/scripts/ensure-promtool.sh
	$(MAKE) lint
	@# Images first (a no-op when up to date), so no test pays for a cold build.
	@# (in a scratch data dir, migrated so that the command's audit entry has its table)
	d=$$(mktemp -d) && export PAAS_DATA_DIR=$$d && $(PY) manage.py migrate -v0 --noinput && $(PY) manage.py pool build-images; rc=$$?; rm -rf "$$d"; exit $$rc
	infrastructure/scripts/run-tests.sh

setup: venv docker

venv: .venv/.installed

.venv/.installed: requirements.txt requirements-dev.txt
	@python3 -m venv .venv 2>/dev/null || { \
	  echo "installing python3-venv"; apt-get update -qq && apt-get install -y -qq python3-venv >/dev/null; \
	  rm -rf .venv; python3 -m venv .venv; }
	.venv/bin/pip install -q --upgrade pip
	.venv/bin/pip install -q -r requirements-dev.txt
	touch $@

docker:
	infrastructure/scripts/ensure-docker.sh

images: setup
	$(PY) manage.py pool build-images

# mypy exits normally (not os._exit), so the test settings it loads remove the data
# dir they made.
lint: venv
	.venv/bin/ruff check .
	.venv/bin/mypy --no-fast-exit .
	.venv/bin/lint-imports --no-logo --no-cache

unit: venv
	$(PYTEST) tests/unit -q

integration: setup
	infrastructure/scripts/ensure-caddy.sh --test
	infrastructure/scripts/ensure-test-tools.sh
	$(PYTEST) tests/integration -q

e2e: setup
	infrastructure/scripts/ensure-chromium.sh
	infrastructure/scripts/ensure-caddy.sh
	$(PYTEST) tests/e2e -q

clean-test: docker
	@# remove containers/networks left by killed test runs (label paas.instance=test-*)
	@docker ps -aq --filter label=paas.instance | while read -r id; do \
	  inst=$$(docker inspect -f '{{index .Config.Labels "paas.instance"}}' $$id); \
	  case "$$inst" in test-*) docker rm -f $$id >/dev/null;; esac; done

# Deployment tests: ansible-lint + syntax check, shellcheck, vagrant validate, and a real
# converge of infrastructure/site.yml on a fresh Debian 12 systemd container (idempotent).
deploy-test: docker
	infrastructure/scripts/deploy-test.sh all

# The benchmark (issues 8 and 15): live stacks and instances of its own (one behind a
# Caddy of its own, one on a throwaway PostgreSQL), a locust cross-check; writes
# bench-results/. Then the arrival wave and the scaling curves (issues 13, 15), and
# report.py puts them into docs/BENCHMARKS.md with a chart.
# `make bench BENCH_ARGS=--small` is the quick smoke-sized run (its report stays in
# bench-results/, docs/ keep the last full run).
bench: setup
	infrastructure/scripts/ensure-caddy.sh
	$(PY) infrastructure/bench/bench.py $(BENCH_ARGS)
	$(PY) infrastructure/bench/bench_proxy.py $(BENCH_ARGS)
	$(PY) infrastructure/bench/arrival.py $(BENCH_ARGS)
	$(PY) infrastructure/bench/curves.py $(BENCH_ARGS)
	$(PY) infrastructure/bench/report.py $(BENCH_ARGS)
