#!/usr/bin/env bash
# A throwaway PostgreSQL server for a test run: its own cluster in a temp dir, on a free
# loopback port, never the Debian-managed system cluster. Three ways to use it:
#
#   pg-throwaway.sh run -- CMD ARGS...   start, run CMD with PAAS_TEST_DATABASE_URL set, stop
#                                        and delete the cluster (also on failure or Ctrl-C)
#   eval "$(pg-throwaway.sh start)"      start; exports PAAS_TEST_DATABASE_URL and PG_THROWAWAY_DIR
#   pg-throwaway.sh stop "$PG_THROWAWAY_DIR"   stop it and delete its directory
#
# Needs Debian's postgresql package (installed here when missing, as root). PostgreSQL
# refuses to run as root, so as root the server runs as the `postgres` system user.
# The role `paas` (password, CREATEDB: pytest-django creates test_paas) owns database paas.
# The URL is PAAS_TEST_DATABASE_URL: tests/settings.py uses it, and never PAAS_DATABASE_URL
# (which could name a live platform's database).
set -euo pipefail

say() { echo "pg-throwaway: $*" >&2; }

pg_bin() {
  local bin
  bin=$(find /usr/lib/postgresql -mindepth 2 -maxdepth 2 -name bin -type d 2>/dev/null | sort -V | tail -n1)
  if [[ -z "$bin" ]]; then
    [[ $EUID -eq 0 ]] || { say "PostgreSQL is not installed (apt-get install -y postgresql)"; exit 1; }
    say "installing Debian's postgresql package"
    # Installing it creates (and may start) the system cluster; we never use that one.
    apt-get install -y -qq postgresql >/dev/null 2>&1 \
      || { apt-get update -qq && apt-get install -y -qq postgresql >/dev/null; }
    bin=$(find /usr/lib/postgresql -mindepth 2 -maxdepth 2 -name bin -type d | sort -V | tail -n1)
  fi
  echo "$bin"
}

# Run a command as the server's user: postgres when we are root, else ourselves.
as_owner() {
  if [[ $EUID -eq 0 ]]; then runuser -u postgres -- "$@"; else "$@"; fi
}

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

start() {
  local bin dir port password
  bin=$(pg_bin)
  # In memory when the host has a /dev/shm: a test suite truncates every table after
  # each test, and file creation on a busy disk made that the bulk of the run.
  # PG_THROWAWAY_DURABLE=1 (the benchmark's PostgreSQL burst) keeps a server's usual
  # costs instead: the cluster on disk, fsync and synchronous commit on.
  local parent=/dev/shm durability="-c fsync=off -c synchronous_commit=off -c full_page_writes=off"
  [[ -d $parent && -w $parent ]] || parent=${TMPDIR:-/tmp}
  if [[ ${PG_THROWAWAY_DURABLE:-} == 1 ]]; then
    parent=${TMPDIR:-/tmp}
    durability=""
  fi
  dir=$(mktemp -d "$parent/paas-pg-XXXXXX")
  chmod 0700 "$dir"
  [[ $EUID -eq 0 ]] && chown postgres: "$dir"
  port=$(free_port)
  password=$(python3 -c 'import secrets; print(secrets.token_hex(16))')
  # Trust over the socket in our private dir (only the owner can reach it), a password
  # over TCP. fsync off (unless durable): the cluster is thrown away, speed matters.
  as_owner "$bin/initdb" -D "$dir/data" -U postgres --auth-local=trust \
    --auth-host=scram-sha-256 --no-sync -E UTF8 --locale=C.UTF-8 >"$dir/initdb.log" 2>&1 \
    || { cat "$dir/initdb.log" >&2; rm -rf "$dir"; exit 1; }
  as_owner "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 30 start -o \
    "-c listen_addresses=127.0.0.1 -p $port -k $dir $durability -c max_connections=200" \
    >/dev/null || { cat "$dir/server.log" >&2; stop "$dir"; exit 1; }
  as_owner "$bin/psql" -h "$dir" -p "$port" -U postgres -d postgres -q -v ON_ERROR_STOP=1 \
    -c "CREATE ROLE paas LOGIN CREATEDB PASSWORD '$password'" \
    -c "CREATE DATABASE paas OWNER paas" >/dev/null || { stop "$dir"; exit 1; }
  echo "export PG_THROWAWAY_DIR=$dir"
  echo "export PAAS_TEST_DATABASE_URL=postgres://paas:$password@127.0.0.1:$port/paas"
  say "PostgreSQL $(basename "$(dirname "$bin")") on 127.0.0.1:$port (cluster in $dir)"
}

stop() {
  local dir=${1:?usage: pg-throwaway.sh stop DIR}
  [[ -d "$dir" && "$(basename "$dir")" == paas-pg-* ]] || { say "not a throwaway cluster: $dir"; return 1; }
  if [[ -f "$dir/data/postmaster.pid" ]]; then
    as_owner "$(pg_bin)/pg_ctl" -D "$dir/data" -m immediate -w -t 30 stop >/dev/null 2>&1 || true
  fi
  rm -rf "$dir"
}

run() {
  [[ "${1:-}" == "--" ]] && shift
  (($#)) || { say "usage: pg-throwaway.sh run -- CMD ARGS..."; exit 2; }
  eval "$(start)"
  # shellcheck disable=SC2064 # the directory is known now, and must be removed whatever happens
  trap "stop '$PG_THROWAWAY_DIR'" EXIT
  trap 'exit 130' INT
  trap 'exit 143' TERM
  "$@"
}

case "${1:-}" in
  start) start ;;
  stop) shift; stop "$@" ;;
  run) shift; run "$@" ;;
  *) say "usage: pg-throwaway.sh start | stop DIR | run -- CMD ARGS..."; exit 2 ;;
esac
