#!/usr/bin/env bash
# A real multi-node Docker Swarm on this one machine, for the swarm tests (root only).
#
#   swarm-lab.sh up N [IMAGE...]   make a lab of N nodes, load IMAGEs into each, print its env
#   swarm-lab.sh engine [IMAGE...] a lab of one node and no swarm, its dockerd with
#                                  --live-restore: a plain engine of a run's own
#   swarm-lab.sh env LAB           print a running lab's env (PAAS_SWARM_* lines)
#   swarm-lab.sh stop LAB NODE     kill one node's dockerd and its containers (a lost node)
#   swarm-lab.sh start LAB NODE    start it again on the same data (the node comes back)
#   swarm-lab.sh restart LAB NODE  stop its dockerd as a service manager does (SIGTERM),
#                                  start it again, print both pids (an engine lab's
#                                  containers keep running)
#   swarm-lab.sh down LAB          remove everything the lab made
#
# Each node is a dockerd in its own network namespace with a veth into a bridge of the lab,
# its own data root, exec root, pid file and unix socket, and its engine API on
# tcp://<addr>:2376 over TLS (a CA, a server certificate per node and the platform's
# client certificate, all made by `up` with openssl, as the playbook makes them); the
# platform's env names the TLS URLs, the unix sockets are for the lab's own use. Every name derives from the lab id
# (PAAS_LAB_ID, default random), so two runs never collide. Never a second dockerd in the
# host's own network namespace: that one deletes the host's docker0.
set -euo pipefail
[ -z "${LAB_TRACE:-}" ] || { PS4='+ $(date +%T.%N | cut -c1-12) '; set -x; }

STATE_ROOT=/run/paas-swarm-lab
DATA_ROOT=/var/lib/paas-swarm-lab

die() { echo "swarm-lab: $*" >&2; exit 1; }
say() { echo "swarm-lab: $*" >&2; }

[ "$(id -u)" = 0 ] || die "must run as root (network namespaces, dockerd)"

# --- names: all from the lab id ------------------------------------------------------------
lab_names() {  # sets the names of lab $1
  LAB=$1
  STATE=$STATE_ROOT/$LAB
  BRIDGE=plb-$LAB            # interface names stay under 15 characters
}
node_names() {  # sets the names of node $2 of lab $1
  NODE=n$2
  NS=pl-$LAB-$NODE
  VETH=plv$LAB$2
  SOCK=/run/pl-$LAB-$NODE.sock
  EXEC=/run/pl-$LAB-$NODE
  PIDFILE=/run/pl-$LAB-$NODE.pid
  DATA=$DATA_ROOT/$LAB/$NODE
  ADDR=$SUBNET.$((10 + $2))
}

# A /24 in 10.77-10.78.x.0 that no route of the host uses (not even another lab's).
pick_subnet() {
  local routes candidate _
  routes=$(ip -4 route show table all)
  for _ in $(seq 0 200); do
    candidate="10.$((77 + (RANDOM % 2))).$((1 + RANDOM % 250))"
    if ! grep -q "^$candidate\.0/24\|[^0-9]$candidate\.0/24" <<<"$routes" \
        && ! grep -rqs "SUBNET=$candidate\$" "$STATE_ROOT"/*/env; then
      echo "$candidate"; return
    fi
  done
  die "no free 10.77-78.x.0/24 subnet"
}

dk() { docker -H "unix://$SOCK" "$@"; }

# --- up ----------------------------------------------------------------------------------
cmd_up() {
  local count=${1:?usage: up N [IMAGE...]}; shift
  lab_names "${PAAS_LAB_ID:-$(head -c 3 /dev/urandom | od -An -tx1 | tr -d ' \n')}"
  [ ! -e "$STATE" ] || die "lab $LAB exists"
  mkdir -p "$STATE_ROOT"
  SUBNET=$(pick_subnet)
  mkdir -p "$STATE" "$DATA_ROOT/$LAB"
  printf 'LAB=%s\nSUBNET=%s\nNODES=%s\nSWARM=%s\n' "$LAB" "$SUBNET" "$count" "$SWARM" \
      >"$STATE/env"
  UP_DONE=""
  trap '[ -n "$UP_DONE" ] || { say "up failed: removing lab $LAB"; cmd_down "$LAB" >&2 || true; }' EXIT
  make_bridge
  local n
  make_ca
  for n in $(seq 1 "$count"); do make_node_cert "$n"; done
  for n in $(seq 1 "$count"); do start_node "$n" & done
  wait_all
  for n in $(seq 1 "$count"); do wait_node "$n"; done
  [ "$SWARM" = no ] || make_swarm "$count"
  if [ $# -gt 0 ]; then
    docker save "$@" >"$DATA_ROOT/$LAB/images.tar"  # once, then into every node at once
    for n in $(seq 1 "$count"); do load_images "$n" & done
    wait_all
    rm -f "$DATA_ROOT/$LAB/images.tar"
  fi
  UP_DONE=1
  cmd_env "$LAB"
}

wait_all() {  # wait for the background jobs; fail if any failed
  local job ok=0
  for job in $(jobs -p); do wait "$job" || ok=1; done
  return $ok
}

make_bridge() {
  ip link add "$BRIDGE" type bridge
  ip addr add "$SUBNET.1/24" dev "$BRIDGE"
  ip link set "$BRIDGE" up
  # The main engine sets FORWARD's policy to DROP: let the lab's nodes talk to each other.
  iptables -I FORWARD -i "$BRIDGE" -o "$BRIDGE" -j ACCEPT
}

# --- TLS: the node API admits only holders of a client certificate of the lab's CA -------
ossl() { openssl "$@" 2>>"$STATE/openssl.log"; }
make_ca() {
  local tls=$STATE/tls
  mkdir -p "$tls"
  ossl req -x509 -new -nodes -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -days 2 \
      -subj "/CN=paas swarm lab $LAB CA" -keyout "$tls/ca-key.pem" -out "$tls/ca.pem"
  sign "$tls" client "/CN=paas platform" "extendedKeyUsage=clientAuth"
  mv "$tls/client-cert.pem" "$tls/cert.pem"; mv "$tls/client-key.pem" "$tls/key.pem"
}
make_node_cert() {
  node_names "$LAB" "$1"
  sign "$STATE/tls" "$NODE" "/CN=$ADDR" \
      "subjectAltName=IP:$ADDR"$'\n'"extendedKeyUsage=serverAuth"
}
sign() {  # sign DIR NAME SUBJECT EXTENSIONS: DIR/NAME-key.pem, DIR/NAME-cert.pem
  local dir=$1 name=$2
  ossl req -new -nodes -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -subj "$3" \
      -keyout "$dir/$name-key.pem" -out "$dir/$name.csr"
  ossl x509 -req -in "$dir/$name.csr" -CA "$dir/ca.pem" -CAkey "$dir/ca-key.pem" \
      -CAserial "$dir/ca.srl" -CAcreateserial -days 2 -out "$dir/$name-cert.pem" \
      -extfile <(printf '%s\n' "$4")
  rm -f "$dir/$name.csr"
}

start_node() {
  node_names "$LAB" "$1"
  ip netns add "$NS"
  ip link add "$VETH" type veth peer name eth0 netns "$NS"
  ip link set "$VETH" master "$BRIDGE" up
  ip netns exec "$NS" ip addr add "$ADDR/24" dev eth0
  ip netns exec "$NS" ip link set eth0 up
  ip netns exec "$NS" ip link set lo up
  ip netns exec "$NS" ip route add default via "$SUBNET.1"
  mkdir -p "$DATA" "$EXEC"
  launch_dockerd
}

launch_dockerd() {  # the node's engine, inside its namespace (node_names set)
  # `ip netns exec` gives the node its own /sys, so it needs its own cgroup mounts: the
  # host's controllers again (v1 or v2, as the host has them), so limits are real.
  ip netns exec "$NS" sh -c "$(cgroup_mounts) && $(dockerd_command)" \
      >>"$STATE/$NODE.log" 2>&1 &
  echo $! >"$STATE/$NODE.launcher"
}

relaunch_dockerd() {  # the engine again, in the mount namespace file $1 of its last run
  # Its containers' mounts (their network namespace files under the exec root) live in
  # that one: a fresh mount namespace would not see them, and live-restore would fail.
  nsenter --mount="$1" --net="/run/netns/$NS" sh -c "$(dockerd_command)" \
      >>"$STATE/$NODE.log" 2>&1 3<&- &
  echo $! >"$STATE/$NODE.launcher"
}

dockerd_command() {  # the shell line that runs the node's dockerd (node_names set)
  # --icc=false: user containers do not talk to each other (like our bridge network);
  # --no-new-privileges: swarm services cannot ask for it per service on API < 1.44.
  # DOCKER_SERVICE_PREFER_OFFLINE_IMAGE: run a loaded image without asking a registry first.
  # --config-file: a file of the node's own; the host's /etc/docker/daemon.json (our
  # setup writes userland-proxy there) must not reach a lab node, and dockerd refuses a
  # setting given both as a flag and in the file.
  # --live-restore (an engine lab only: dockerd refuses it in swarm mode): containers
  # outlive their dockerd, as on a production host.
  echo '{}' >"$STATE/$NODE-daemon.json"
  local live_restore=""
  [ "${SWARM:-yes}" = yes ] || live_restore=--live-restore
  echo "exec env DOCKER_SERVICE_PREFER_OFFLINE_IMAGE=1 dockerd \
      --config-file '$STATE/$NODE-daemon.json' --data-root '$DATA' --exec-root '$EXEC' \
      --pidfile '$PIDFILE' -H 'unix://$SOCK' \
      -H 'tcp://$ADDR:2376' --tlsverify --tlscacert '$STATE/tls/ca.pem' \
      --tlscert '$STATE/tls/$NODE-cert.pem' --tlskey '$STATE/tls/$NODE-key.pem' \
      --cgroup-parent 'pl-$LAB-$NODE' --icc=false --no-new-privileges \
      --iptables=true --userland-proxy=false $live_restore"
}

# Shell lines that mount the host's cgroup hierarchies inside the node's namespace.
cgroup_mounts() {
  if [ -f /sys/fs/cgroup/cgroup.controllers ]; then
    echo "mount -t cgroup2 none /sys/fs/cgroup"
    return
  fi
  local lines="mount -t tmpfs -o mode=755 cgroup /sys/fs/cgroup" dir opts
  while read -r _ dir _ opts _; do
    case "$dir" in /sys/fs/cgroup/*) ;; *) continue ;; esac
    opts=$(tr ',' '\n' <<<"$opts" | grep -vxE 'rw|ro|relatime|nosuid|nodev|noexec' | paste -sd,)
    if [ "$(basename "$dir")" = unified ]; then
      lines="$lines && mkdir -p $dir && mount -t cgroup2 none $dir"
    else
      lines="$lines && mkdir -p $dir && mount -t cgroup -o $opts cgroup $dir"
    fi
  done < <(grep ' /sys/fs/cgroup/' /proc/self/mounts | awk '{print $1, $2, $3, $4}')
  echo "$lines"
}

wait_node() {
  node_names "$LAB" "$1"
  local _
  for _ in $(seq 1 120); do
    dk version >/dev/null 2>&1 && return 0
    kill -0 "$(cat "$STATE/$NODE.launcher")" 2>/dev/null || break
    sleep 0.5
  done
  tail -20 "$STATE/$NODE.log" >&2
  die "node $NODE did not start"
}

make_swarm() {
  node_names "$LAB" 1
  local manager=$ADDR token n
  # A 1 s heartbeat: a lost node is declared down in ~3 s instead of ~15 s.
  dk swarm init --advertise-addr "$manager" --listen-addr "$manager:2377" \
      --dispatcher-heartbeat 1s >/dev/null
  token=$(dk swarm join-token -q worker)
  for n in $(seq 2 "$1"); do
    node_names "$LAB" "$n"
    dk swarm join --token "$token" --advertise-addr "$ADDR" --listen-addr "$ADDR:2377" \
        "$manager:2377" >/dev/null
  done
  node_names "$LAB" 1
  local id
  for id in $(dk node ls -q); do dk node update --label-add paas.pool=true "$id" >/dev/null; done
}

load_images() {
  node_names "$LAB" "$1"
  dk load -q -i "$DATA_ROOT/$LAB/images.tar" >/dev/null
}

# --- env, stop, start ---------------------------------------------------------------------
cmd_env() {
  lab_names "${1:?usage: env LAB}"
  [ -f "$STATE/env" ] || die "no lab $LAB"
  # shellcheck disable=SC1091
  . "$STATE/env"
  local n nodes="" sockets="" addrs=""
  for n in $(seq 1 "${NODES:?}"); do
    node_names "$LAB" "$n"
    nodes="$nodes${nodes:+,}$ADDR=tcp://$ADDR:2376"
    sockets="$sockets${sockets:+,}$ADDR=unix://$SOCK"
    addrs="$addrs${addrs:+,}$ADDR"
  done
  node_names "$LAB" 1
  echo "PAAS_SWARM_LAB=$LAB"
  echo "PAAS_SWARM_MANAGER=unix://$SOCK"
  echo "PAAS_SWARM_NODES=$nodes"
  echo "PAAS_SWARM_TLS_DIR=$STATE/tls"
  echo "PAAS_SWARM_NODE_SOCKETS=$sockets"
  echo "PAAS_SWARM_NODE_ADDRS=$addrs"
}

cmd_start() {  # a node that comes back: its engine again, same data (it rejoins)
  lab_names "${1:?usage: start LAB NODE}"
  # shellcheck disable=SC1091
  . "$STATE/env"
  node_names "$LAB" "${2:?node number}"
  unmount_under "$EXEC"
  launch_dockerd
  wait_node "$2"
}

cmd_restart() {  # the engine restarts (an upgrade, a crash of its service): same data
  lab_names "${1:?usage: restart LAB NODE}"
  # shellcheck disable=SC1091
  . "$STATE/env"
  node_names "$LAB" "${2:?node number}"
  [ -f "$PIDFILE" ] || die "node $NODE has no dockerd (no $PIDFILE)"
  local pid _
  pid=$(cat "$PIDFILE")
  exec 3<"/proc/$pid/ns/mnt"  # held open: the namespace outlives the dockerd
  kill "$pid"
  for _ in $(seq 1 120); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.25
  done
  ! kill -0 "$pid" 2>/dev/null || die "node $NODE's dockerd did not stop"
  # No unmount_under "$EXEC" (cmd_start's): the running containers' mounts are there.
  relaunch_dockerd "/proc/$$/fd/3"
  wait_node "$2"
  echo "$pid $(cat "$PIDFILE")"  # the dockerd before and after
}

cmd_stop() {  # a lost node: its engine (and so its containers) stop
  lab_names "${1:?usage: stop LAB NODE}"
  # shellcheck disable=SC1091
  . "$STATE/env"
  node_names "$LAB" "${2:?node number}"
  if [ -f "$PIDFILE" ]; then kill -9 "$(cat "$PIDFILE")" 2>/dev/null || true; fi
  # dockerd -9 leaves its containerd and shims: stop them so the containers die too.
  pkill_tree_in_ns
}

pkill_tree_in_ns() {
  local pid
  for pid in $(ip netns pids "$NS" 2>/dev/null); do kill -9 "$pid" 2>/dev/null || true; done
}

# --- down --------------------------------------------------------------------------------
cmd_down() {
  lab_names "${1:?usage: down LAB}"
  [ -d "$STATE" ] || { say "no lab $LAB"; return 0; }
  local nodes=9 n
  # shellcheck disable=SC1091
  [ -f "$STATE/env" ] && . "$STATE/env"
  for n in $(seq 1 "${NODES:-$nodes}"); do
    node_names "$LAB" "$n"
    if [ -f "$PIDFILE" ]; then kill "$(cat "$PIDFILE")" 2>/dev/null || true; fi
  done
  sleep 1
  for n in $(seq 1 "${NODES:-$nodes}"); do
    node_names "$LAB" "$n"
    pkill_tree_in_ns
    ip netns del "$NS" 2>/dev/null || true
    ip link del "$VETH" 2>/dev/null || true
    unmount_under "$EXEC"; unmount_under "$DATA"
    rm -rf "$EXEC" "$DATA" "$SOCK" "$PIDFILE"
    remove_cgroups "pl-$LAB-$NODE"
  done
  rm -rf "${DATA_ROOT:?}/$LAB"
  iptables -D FORWARD -i "$BRIDGE" -o "$BRIDGE" -j ACCEPT 2>/dev/null || true
  ip link del "$BRIDGE" 2>/dev/null || true
  rm -rf "$STATE"
  say "lab $LAB removed"
}

unmount_under() {  # mounts a killed dockerd left (overlay, shm, netns files)
  local dir=$1 mnt
  awk -v d="$dir" 'index($2, d) == 1 {print $2}' /proc/self/mounts | sort -r |
    while read -r mnt; do umount -l "$mnt" 2>/dev/null || true; done
}

remove_cgroups() {  # the empty cgroups of the node's containers (cgroup-parent)
  find /sys/fs/cgroup -depth -type d -path "*/$1*" -exec rmdir {} \; 2>/dev/null || true
}

case "${1:-}" in
  up) shift; SWARM=yes cmd_up "$@" ;;
  engine) shift; SWARM=no cmd_up 1 "$@" ;;
  env) cmd_env "${2:-}" ;;
  stop) cmd_stop "${2:-}" "${3:-}" ;;
  start) cmd_start "${2:-}" "${3:-}" ;;
  restart) cmd_restart "${2:-}" "${3:-}" ;;
  down) cmd_down "${2:-}" ;;
  *) die "usage: $0 up N [IMAGE...] | engine [IMAGE...] | env LAB | stop LAB NODE |" \
         "start LAB NODE | restart LAB NODE | down LAB" ;;
esac
