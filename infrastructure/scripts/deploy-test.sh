#!/usr/bin/env bash
# Tests of the deployment (infrastructure/): `make deploy-test` runs them all.
#
#   deploy-test.sh lint       ansible-playbook --syntax-check + ansible-lint (production)
#   deploy-test.sh scripts    bash -n + shellcheck of infrastructure/scripts/*.sh
#   deploy-test.sh vagrant    vagrant validate of infrastructure/Vagrantfile
#   deploy-test.sh converge   apply site.yml to a fresh Debian 12 container running systemd
#   deploy-test.sh nodes      the several-hosts part (certificates, a pool node's TLS and
#                             firewall settings) on a control and a node container
#   deploy-test.sh all        the five above (the default)
#
# The converge: a Debian bookworm image with systemd as PID 1 is made offline (debootstrap
# + docker import, cached by a hash of its recipe, never pulled), run as the target with
# host networking and the host's Docker socket (nested Docker is not available here, so
# the playbook runs with paas_install_docker=false and the platform inside drives the
# host's engine). Because the target shares the host's network, the pool containers'
# published ports are on 127.0.0.1 for it too: PAAS_PROBE_HOST=127.0.0.1. The run has its
# own PAAS_INSTANCE (deploytest-<id>), its own port ranges and a free web port, so it never
# meets a dev platform or a test run on the same daemon. It asserts: the three units are
# active, /healthz answers 200, the pools are warm, a pool port answers through the probe
# host, and a second run of the playbook reports changed=0. Then it removes the target,
# the pool containers and network of its instance (the cached image stays).
#
# Environment: PAAS_DEPLOYTEST_KEEP=1 keeps the target for inspection;
# PAAS_DEPLOYTEST_RUN_ID sets the run id. Logs: test-artifacts/deploy-test/<run id>/.
# Nothing is written into ./var (a platform started by `make run` keeps its data there).
set -euo pipefail
cd "$(dirname "$0")/../.."
repo=$(pwd)
infra=$repo/infrastructure
venv=$repo/.cache/deploy-venv  # a tool cache shared by runs, not platform data
export ANSIBLE_CONFIG=$infra/ansible.cfg
export ANSIBLE_FORCE_COLOR=0 ANSIBLE_NOCOLOR=1 PY_COLORS=0

log() { printf '[deploy-test] %s\n' "$*"; }
fail() { printf '[deploy-test] FAIL: %s\n' "$*" >&2; exit 1; }
clock() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(clock)" 'BEGIN { printf "%.1f", b - a }'; }
is_root() { [ "$(id -u)" = 0 ]; }

apt_install() {
  is_root && command -v apt-get >/dev/null || return 1
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -qq --no-install-recommends "$@" >/dev/null 2>&1 \
    || { apt-get update -qq >/dev/null 2>&1 && apt-get install -y -qq --no-install-recommends "$@" >/dev/null 2>&1; }
}

# --- controller tools ----------------------------------------------------------------
ensure_venv() {
  local stamp
  stamp="$venv/.installed-$(sha256sum "$infra/requirements-deploy.txt" | cut -c1-16)"
  [ -f "$stamp" ] && return 0
  log "installing Ansible into $venv (infrastructure/requirements-deploy.txt)"
  if ! python3 -m venv "$venv" 2>/dev/null; then
    apt_install python3-venv || fail "python3 -m venv failed; install python3-venv"
    rm -rf "$venv"; python3 -m venv "$venv"
  fi
  "$venv/bin/pip" install -q --upgrade pip
  "$venv/bin/pip" install -q -r "$infra/requirements-deploy.txt"
  rm -f "$venv"/.installed-*
  touch "$stamp"
}

do_lint() {
  ensure_venv
  log "ansible-playbook --syntax-check"
  (cd "$infra" && "$venv/bin/ansible-playbook" --syntax-check -i localhost, site.yml)
  log "ansible-lint (production profile)"
  (cd "$infra" && PATH="$venv/bin:$PATH" "$venv/bin/ansible-lint" --offline --profile production \
    site.yml roles)
  log "lint: ok"
}

do_scripts() {
  local s
  for s in "$infra"/scripts/*.sh; do bash -n "$s" || fail "bash -n $s"; done
  log "bash -n: ok"
  if ! command -v shellcheck >/dev/null; then
    apt_install shellcheck || true
  fi
  if command -v shellcheck >/dev/null; then
    shellcheck "$infra"/scripts/*.sh
    log "shellcheck: ok"
  else
    log "SKIP shellcheck: not installed and could not be installed"
  fi
}

do_vagrant() {
  if ! command -v vagrant >/dev/null; then
    log "installing Debian's vagrant package (for vagrant validate)"
    apt_install vagrant || true
  fi
  command -v vagrant >/dev/null || { log "SKIP vagrant validate: vagrant not installable here"; return 0; }
  # validate needs no box and no running provider; --ignore-provider skips the
  # provider's own checks, so it also passes where the libvirt plugin is missing.
  VAGRANT_DOTFILE_PATH=$(mktemp -d /tmp/paas-vagrant.XXXXXX)
  export VAGRANT_CHECKPOINT_DISABLE=1 VAGRANT_DOTFILE_PATH
  local ok=0
  (cd "$infra" && vagrant validate --ignore-provider) || ok=$?
  # control + 2 nodes
  [ "$ok" != 0 ] || (cd "$infra" && PAAS_VM_NODES=2 vagrant validate --ignore-provider) || ok=$?
  if [ "$ok" = 0 ] && vagrant plugin list 2>/dev/null | grep -q vagrant-libvirt; then
    (cd "$infra" && VAGRANT_DEFAULT_PROVIDER=libvirt vagrant validate) || ok=$?
  fi
  rm -rf "$VAGRANT_DOTFILE_PATH"  # vagrant's state of these checks: ours, gone either way
  [ "$ok" = 0 ] || fail "vagrant validate failed"
  log "vagrant validate: ok"
}

# --- the target image ------------------------------------------------------------------
target_packages=systemd,systemd-sysv,dbus,python3,python3-apt,sudo,ca-certificates,procps,iproute2
image_recipe="debootstrap --variant=minbase --include=$target_packages bookworm; systemd PID 1; v2"
image_tag="paas-deploytest/target:$(printf '%s' "$image_recipe" | sha256sum | cut -c1-12)"

ensure_image() {
  if docker image inspect "$image_tag" >/dev/null 2>&1; then
    log "TIMING target_image=0.0s (cached $image_tag)"
    return 0
  fi
  command -v debootstrap >/dev/null || apt_install debootstrap || fail "debootstrap missing"
  local started work
  started=$(clock)
  work=$(mktemp -d /var/tmp/paas-deploytest-image.XXXXXX)
  log "building $image_tag with debootstrap (no registry involved)"
  debootstrap --variant=minbase --include="$target_packages" bookworm "$work/rootfs" \
    http://deb.debian.org/debian >"$work/debootstrap.log" 2>&1 \
    || { tail -20 "$work/debootstrap.log" >&2; rm -rf "$work"; fail "debootstrap failed"; }
  # Like a fresh VM image: a machine-id made on first boot, apt lists as installed.
  : >"$work/rootfs/etc/machine-id"
  rm -f "$work/rootfs/var/lib/dbus/machine-id"
  rm -f "$work"/rootfs/var/cache/apt/archives/*.deb
  tar -C "$work/rootfs" --numeric-owner --exclude='./dev/*' --exclude='./proc/*' \
    --exclude='./sys/*' -cf - . | docker import - "$image_tag-rootfs" >/dev/null
  # What `docker import --change` cannot set (STOPSIGNAL, LABEL): one metadata layer.
  cat >"$work/Dockerfile" <<EOF
FROM $image_tag-rootfs
ENV container=docker
LABEL paas.deploytest.image="$image_recipe"
STOPSIGNAL SIGRTMIN+3
CMD ["/lib/systemd/systemd"]
EOF
  DOCKER_BUILDKIT=0 docker build -q --network host -t "$image_tag" "$work" >/dev/null 2>"$work/build.log" \
    || { cat "$work/build.log" >&2; rm -rf "$work"; fail "docker build of the target image failed"; }
  docker rmi "$image_tag-rootfs" >/dev/null
  rm -rf "$work"
  log "TIMING target_image=$(since "$started")s (built $image_tag)"
}

# --- the converge ----------------------------------------------------------------------
free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("0.0.0.0", 0)); print(s.getsockname()[1])'
}

recap_of() {  # the PLAY RECAP line of the target in a playbook log
  grep -E '^target +: ok=' "$1" | tail -1
}

do_converge() {
  ensure_venv
  docker info >/dev/null 2>&1 || fail "no Docker engine answers (make docker)"
  # globals, not locals: the EXIT trap (cleanup) needs them after this function returns
  local web_port prom_port base sizes ranges
  run_id=${PAAS_DEPLOYTEST_RUN_ID:-$(date +%H%M%S)$((RANDOM % 1000))}
  instance=deploytest-$run_id
  target=paas-deploytest-$run_id
  work=$repo/test-artifacts/deploy-test/$run_id
  mkdir -p "$work"
  web_port=$(free_port)
  prom_port=$(free_port)
  base=$((30000 + (RANDOM % 25) * 400))
  sizes="nginx=2,apache=1,python=1,node=1"
  ranges="nginx=$base-$((base + 99)),apache=$((base + 100))-$((base + 199)),python=$((base + 200))-$((base + 299)),node=$((base + 300))-$((base + 399))"
  log "run $run_id: instance $instance, web port $web_port, pool ports $base-$((base + 399)), logs $work"

  ensure_image

  # A snapshot of the code (what the playbook's rsync would take: .gitignore and the
  # role's excludes apply there too), so both runs apply the same tree even while
  # someone edits the checkout.
  rsync -a --delete --exclude=.git/ --exclude=/var/ --exclude=.venv/ --exclude=/.cache/ --exclude=/test-artifacts/ '--filter=:-_.gitignore' \
    "$repo/" "$work/src/"

  cleanup() {
    local rc=$?
    if [ "${PAAS_DEPLOYTEST_KEEP:-0}" = 1 ]; then
      log "keeping $target (docker exec -it $target bash); remove it and the containers labelled paas.instance=$instance yourself"
      return $rc
    fi
    log "cleaning up $target and the containers of $instance"
    # Another suite may be restarting the daemon right now: wait for it (live-restore).
    for _ in $(seq 1 60); do docker info >/dev/null 2>&1 && break; sleep 1; done
    rm -rf "$work/src"
    docker logs "$target" >"$work/target-console.log" 2>&1 || true
    docker exec "$target" journalctl --no-pager -u paas-web -u paas-worker \
      >"$work/journal.log" 2>&1 || true
    # Stop the target first: its units stop, so no watcher recovers what we remove next.
    docker stop -t 30 "$target" >/dev/null 2>&1 || true
    docker ps -aq --filter "label=paas.instance=$instance" | xargs -r docker rm -f >/dev/null 2>&1 || true
    # by label, not name: Docker allows two networks of one name
    docker network ls -q --filter "label=paas.instance=$instance" | xargs -r docker network rm >/dev/null 2>&1 || true
    docker ps -aq --filter "label=paas.deploytest=$run_id" | xargs -r docker rm -f >/dev/null 2>&1 || true
    return $rc
  }
  trap cleanup EXIT

  log "starting the target $target (systemd as PID 1, host network, host Docker socket)"
  docker run -d --name "$target" --label "paas.deploytest=$run_id" \
    --network host --cap-add SYS_ADMIN --tmpfs /run --tmpfs /run/lock \
    -v /sys/fs/cgroup:/sys/fs/cgroup:rw --cgroupns=host \
    -v /var/run/docker.sock:/var/run/docker.sock \
    "$image_tag" >/dev/null
  local state=""
  for _ in $(seq 1 60); do
    state=$(docker exec "$target" systemctl is-system-running 2>/dev/null || true)
    case "$state" in running|degraded) break;; esac
    sleep 1
  done
  case "$state" in
    running) log "target: systemd is running";;
    degraded) log "target: systemd is running (degraded: $(docker exec "$target" systemctl --failed --no-legend --plain | awk '{print $1}' | xargs))";;
    *) fail "systemd in the target did not come up (state '$state')";;
  esac

  # The CAs this host trusts besides Debian's (a TLS-inspecting proxy's, say) are needed
  # by the target too: pip downloads through the same network.
  local extra_cas
  extra_cas=$(python3 -c 'import glob, json; print(json.dumps(sorted(glob.glob("/usr/local/share/ca-certificates/**/*.crt", recursive=True))))')
  printf '[paas]\ntarget ansible_connection=community.docker.docker ansible_host=%s ansible_user=root ansible_python_interpreter=/usr/bin/python3\n' \
    "$target" >"$work/inventory.ini"
  cat >"$work/vars.json" <<EOF
{
  "paas_src_dir": "$work/src",
  "paas_install_docker": false,
  "paas_build_offline": true,
  "paas_instance": "$instance",
  "paas_web_port": $web_port,
  "paas_public_host": "127.0.0.1",
  "paas_probe_host": "127.0.0.1",
  "paas_pool_sizes": "$sizes",
  "paas_port_ranges": "$ranges",
  "paas_monitor_interval": 60,
  "paas_prometheus_port": $prom_port,
  "paas_prometheus_scrape_interval": "5s",
  "paas_extra_ca_certificates": $extra_cas,
  "paas_admin_user": "admin",
  "paas_admin_password": "deploy-test-$run_id-$RANDOM$RANDOM"
}
EOF
  # An upgrade from a release with the separate watcher unit: the playbook must stop,
  # disable and remove it (the watcher now runs inside paas-worker).
  docker exec "$target" sh -c 'printf "[Service]\nExecStart=/bin/sleep infinity\n[Install]\nWantedBy=multi-user.target\n" >/etc/systemd/system/paas-watch.service && systemctl daemon-reload && systemctl enable --now paas-watch' >/dev/null 2>&1 \
    || fail "could not plant an old paas-watch unit in the target"
  local playbook=("$venv/bin/ansible-playbook" -i "$work/inventory.ini" -e "@$work/vars.json" site.yml)
  local started converge_time second_time recap
  log "converge: first run of site.yml (log $work/converge-1.log)"
  started=$(clock)
  if ! (cd "$infra" && PATH="$venv/bin:$PATH" "${playbook[@]}") >"$work/converge-1.log" 2>&1; then
    tail -40 "$work/converge-1.log" >&2
    fail "the first run of the playbook failed (see $work/converge-1.log)"
  fi
  converge_time=$(since "$started")
  log "first run:  $(recap_of "$work/converge-1.log")"
  log "TIMING converge=${converge_time}s"

  # 1. the two units are active, the watcher runs inside paas-worker, the old unit is gone
  local unit state_of
  for unit in paas-web paas-worker; do
    state_of=$(docker exec "$target" systemctl is-active "$unit" || true)
    [ "$state_of" = active ] || fail "$unit is '$state_of', not active"
    log "CHECK $unit: active"
  done
  docker exec "$target" sh -c 'grep -qx paas-watcher /proc/[0-9]*/comm' \
    || fail "no paas-watcher process (the watcher child of paas-worker)"
  log "CHECK paas-watcher: running"
  state_of=$(docker exec "$target" systemctl is-active paas-watch || true)
  if [ "$state_of" = active ] || docker exec "$target" test -e /etc/systemd/system/paas-watch.service; then
    fail "the old paas-watch unit is still there ($state_of)"
  fi
  log "CHECK old paas-watch unit: removed"
  # 2. the platform answers on its port inside the target
  local code path
  for path in /healthz /admin/login/; do
    code=$(docker exec "$target" curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$web_port$path" || true)
    [ "$code" = 200 ] || fail "GET $path on port $web_port answered '$code', not 200"
    log "CHECK GET $path: 200"
  done
  # 3. the pools are warm: idle == size for every runtime
  local status warm=""
  for _ in $(seq 1 30); do
    status=$(docker exec "$target" paas-manage pool status --json 2>"$work/pool-status.err" || true)
    if warm=$(printf '%s' "$status" | python3 -c '
import json, sys
want = dict(p.split("=") for p in sys.argv[1].split(","))
rows = {r["runtime"]: r for r in json.load(sys.stdin)}
assert set(rows) >= set(want), f"runtimes {sorted(rows)}"
for name, size in want.items():
    r = rows[name]
    assert r["idle"] == int(size) and r["failed"] == 0, f"{name}: {r}"
idle = {name: rows[name]["idle"] for name in want}
print(", ".join(f"{name} idle={idle[name]}/{size}" for name, size in want.items()))
' "$sizes" 2>"$work/pool-check.err"); then break; fi
    warm=""; sleep 2
  done
  [ -n "$warm" ] || { cat "$work/pool-check.err" >&2; fail "pools not warm: $status"; }
  log "CHECK pools warm: $warm"
  # 4. a pool container's published port answers the target through the probe host
  local nginx_port
  nginx_port=$(docker ps --filter "label=paas.instance=$instance" --filter label=paas.runtime=nginx \
    --format '{{.Label "paas.port"}}' | head -1)
  [ -n "$nginx_port" ] || fail "no running nginx container labelled paas.instance=$instance"
  code=$(docker exec "$target" curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$nginx_port/" || true)
  [ "$code" = 200 ] || fail "nginx pool port $nginx_port answered '$code' through 127.0.0.1"
  log "CHECK nginx pool port $nginx_port from the target: 200"

  # 5. Prometheus in the target scrapes /metrics with the token, with our alert rules
  local scraped=""
  for _ in $(seq 1 30); do
    if docker exec "$target" curl -s "http://127.0.0.1:$prom_port/api/v1/targets?state=active" \
        | python3 -c 'import json, sys
up = [t for t in json.load(sys.stdin)["data"]["activeTargets"]
      if t["labels"]["job"] == "paas" and t["health"] == "up"]
sys.exit(0 if up else 1)' 2>/dev/null; then scraped=up; break; fi
    sleep 2
  done
  [ -n "$scraped" ] || fail "prometheus in the target does not scrape the platform (job paas not up)"
  docker exec "$target" curl -s "http://127.0.0.1:$prom_port/api/v1/rules" | grep -q PaasPoolEmpty \
    || fail "prometheus in the target has not loaded the alert rules"
  log "CHECK prometheus scrapes /metrics (up) with the alert rules"

  # 6. idempotent: the second run changes nothing
  log "converge: second run of site.yml (log $work/converge-2.log)"
  started=$(clock)
  if ! (cd "$infra" && PATH="$venv/bin:$PATH" "${playbook[@]}") >"$work/converge-2.log" 2>&1; then
    tail -40 "$work/converge-2.log" >&2
    fail "the second run of the playbook failed (see $work/converge-2.log)"
  fi
  second_time=$(since "$started")
  recap=$(recap_of "$work/converge-2.log")
  log "second run: $recap"
  log "TIMING second_run=${second_time}s"
  if ! printf '%s' "$recap" | grep -Eq ' changed=0 +unreachable=0 +failed=0'; then
    grep -E '^changed:' -B1 "$work/converge-2.log" >&2 || true
    fail "the second run is not idempotent: $recap"
  fi
  log "CHECK second run: changed=0"
  log "PASS converge (first run ${converge_time}s, second run ${second_time}s)"
}

# --- several hosts: what of the nodes' part runs in containers ----------------------------
# A control and a pool-node container (systemd, a network of their own) and a third one
# as an outsider. `site.yml --tags paas_swarm_config` makes the CA and the certificates
# on the control host and installs a node's TLS files, engine API address and firewall.
# What cannot run here: a Docker engine inside the containers (no nested Docker), so
# the engine's restart with TLS, `swarm init/join` and the node label are not converged
# (paas_install_docker=false); the lab tests (tests/swarm) cover a TLS node API and the
# swarm itself with real dockerds in network namespaces.
do_nodes() {
  ensure_venv
  docker info >/dev/null 2>&1 || fail "no Docker engine answers (make docker)"
  ensure_image
  run_id=${PAAS_DEPLOYTEST_RUN_ID:-$(date +%H%M%S)$((RANDOM % 1000))}n
  work=$repo/test-artifacts/deploy-test/$run_id
  net=paas-deploytest-$run_id
  mkdir -p "$work"
  log "run $run_id (nodes): network $net, logs $work"
  nodes_cleanup() {
    local rc=$?
    [ "${PAAS_DEPLOYTEST_KEEP:-0}" = 1 ] && { log "keeping the containers of $run_id"; return $rc; }
    docker ps -aq --filter "label=paas.deploytest=$run_id" | xargs -r docker rm -f >/dev/null 2>&1 || true
    docker network rm "$net" >/dev/null 2>&1 || true
    return $rc
  }
  trap nodes_cleanup EXIT
  docker network create --label "paas.deploytest=$run_id" "$net" >/dev/null
  local name
  for name in control node1 outsider; do
    # NET_ADMIN: the node's firewall, in the container's own network namespace.
    docker run -d --name "$net-$name" --hostname "$name" --label "paas.deploytest=$run_id" \
      --network "$net" --cap-add SYS_ADMIN --cap-add NET_ADMIN --tmpfs /run --tmpfs /run/lock \
      -v /sys/fs/cgroup:/sys/fs/cgroup:rw --cgroupns=host "$image_tag" >/dev/null
  done
  control_addr=$(container_addr control); node_addr=$(container_addr node1)
  outsider_addr=$(container_addr outsider)
  for name in control node1; do
    for _ in $(seq 1 60); do
      case "$(docker exec "$net-$name" systemctl is-system-running 2>/dev/null || true)" in
        running|degraded) break;;
      esac
      sleep 1
    done
  done
  # The control host's group of the platform (the common role's, not converged here).
  docker exec "$net-control" groupadd --system paas
  local conn="ansible_connection=community.docker.docker ansible_user=root ansible_python_interpreter=/usr/bin/python3"
  printf '[control]\ncontrol ansible_host=%s %s paas_swarm_addr=%s\n[nodes]\nnode1 ansible_host=%s %s paas_swarm_addr=%s\n' \
    "$net-control" "$conn" "$control_addr" "$net-node1" "$conn" "$node_addr" >"$work/inventory.ini"
  local playbook=("$venv/bin/ansible-playbook" -i "$work/inventory.ini" --tags paas_swarm_config
                  -e paas_install_docker=false site.yml)
  local started run recap
  for run in 1 2; do
    log "nodes: run $run of site.yml --tags paas_swarm_config (log $work/nodes-$run.log)"
    started=$(clock)
    if ! (cd "$infra" && PATH="$venv/bin:$PATH" "${playbook[@]}") >"$work/nodes-$run.log" 2>&1; then
      tail -40 "$work/nodes-$run.log" >&2
      fail "run $run of the playbook (nodes) failed (see $work/nodes-$run.log)"
    fi
    log "TIMING nodes_run_$run=$(since "$started")s"
    if [ "$run" = 1 ]; then nodes_checks; fi
  done
  recap=$(grep -E '^(control|node1) +: ok=' "$work/nodes-2.log" | tr '\n' ' ')
  log "second run: $recap"
  if [ "$(grep -cE '^(control|node1) +: ok=.* changed=0 +unreachable=0 +failed=0' "$work/nodes-2.log")" != 2 ]; then
    grep -E '^changed:' -B1 "$work/nodes-2.log" >&2 || true
    fail "the second run (nodes) is not idempotent: $recap"
  fi
  log "CHECK nodes second run: changed=0"
  log "PASS nodes"
}

container_addr() {
  docker inspect -f "{{(index .NetworkSettings.Networks \"$net\").IPAddress}}" "$net-$1"
}

nodes_checks() {
  local tls=/etc/paas/swarm-tls
  # The control host's CA signed the node's server certificate, for the node's address.
  docker exec "$net-control" openssl verify -CAfile "$tls/ca.pem" "$tls/nodes/node1-cert.pem" >/dev/null \
    || fail "the node's certificate does not verify against the CA"
  docker exec "$net-control" openssl x509 -in "$tls/nodes/node1-cert.pem" -noout -ext subjectAltName \
    | grep -q "IP Address:$node_addr" || fail "the node's certificate does not name $node_addr"
  docker exec "$net-control" openssl verify -CAfile "$tls/ca.pem" -purpose sslclient "$tls/cert.pem" >/dev/null \
    || fail "the platform's client certificate does not verify"
  log "CHECK control: CA, client certificate, node1's server certificate for $node_addr"
  # The node has its TLS files (its key 0600) and the engine API address.
  docker exec "$net-node1" sh -c 'cd /etc/docker/paas-tls && test "$(stat -c %a server-key.pem)" = 600 &&
    openssl verify -CAfile ca.pem server-cert.pem >/dev/null' \
    || fail "node1's TLS files are missing or wrong"
  docker exec "$net-node1" grep -q "tcp://$node_addr:2376" /etc/default/docker \
    || fail "node1's engine API address is not set"
  log "CHECK node1: TLS files, engine API on tcp://$node_addr:2376"
  # The firewall: a listener on the API port answers the control host, not an outsider
  # on the same network. Pool ports are ruled in DOCKER-USER, where DNATed traffic
  # passes; with no engine here, only the rule is read.
  [ "$(docker exec "$net-node1" systemctl is-active paas-node-firewall)" = active ] \
    || fail "paas-node-firewall is not active on node1"
  docker exec -d "$net-node1" python3 -m http.server 2376
  sleep 1
  local probe="import urllib.request
try:
    urllib.request.urlopen('http://$node_addr:2376/', timeout=3); print('open')
except Exception as exc:
    print('closed', exc)"
  docker exec "$net-control" python3 -c "$probe" | grep -q '^open' \
    || fail "the control host cannot reach node1's API port"
  docker exec "$net-outsider" python3 -c "$probe" | grep -q '^closed' \
    || fail "an outsider ($outsider_addr) reaches node1's API port"
  docker exec "$net-node1" iptables -S PAAS-NODE-POOL | grep -q -- "! -s $control_addr/32 .*-j DROP" \
    || fail "node1 has no pool-port rule for the control host"
  log "CHECK node1 firewall: API port open to the control host, closed to an outsider; pool ports ruled"
}

case "${1:-all}" in
  lint) do_lint;;
  scripts) do_scripts;;
  vagrant) do_vagrant;;
  converge) do_converge;;
  nodes) do_nodes;;
  all) do_lint; do_scripts; do_vagrant; do_converge; do_nodes;;
  *) echo "usage: $0 [lint|scripts|vagrant|converge|nodes|all]" >&2; exit 2;;
esac
