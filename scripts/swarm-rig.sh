#!/usr/bin/env bash
# A Docker Swarm of several daemons on this one machine, for berth's swarm
# tier: each node a dockerd in a network namespace of its own, hanging off a
# bridge in a hub namespace; nothing is made in the host's namespace, and the
# namespaces have no route out, so no packet leaves them.
#
#   scripts/swarm-rig.sh up [NODES]   # default 3: bsw-n1 the manager, the rest workers;
#                                     # writes the berth configuration that serves it
#                                     # (/run/bsw/berth.toml, over the nodes' Unix sockets;
#                                     # /run/bsw/berth-tls.toml, over mutual TLS on their
#                                     # addresses, for a berth in the hub) and prints the
#                                     # first's path last
#   scripts/swarm-rig.sh exec CMD...  # CMD inside the hub namespace (beside the nodes)
#   scripts/swarm-rig.sh cut N        # node N cut off: its link down in its namespace
#   scripts/swarm-rig.sh mend N       # and up again
#   scripts/swarm-rig.sh restart N    # node N's daemon stopped and started again
#   scripts/swarm-rig.sh down         # everything it made, by pid and by name
#   scripts/swarm-rig.sh status
#
# Node i: netns bsw-n$i with eth0 192.168.177.$i/24, hostname bsw-n$i, engine
# socket /run/bsw/n$i.sock (a Unix socket: reachable from the host's
# namespace), data /var/lib/bsw/n$i, exec root /run/bsw/n$i, pidfile
# /run/bsw/n$i.pid, cgroup parent /bsw-n$i, log /run/bsw/n$i.log. The daemons
# run as `bsw-dockerd` (a symlink to dockerd), so nothing that looks for the
# host's daemon by name takes one of them for it. Each worker's daemon.json
# sets no-new-privileges (API 1.41 cannot ask for it per service) and the
# rig's nodes have no swap. Images the tier needs are copied from the host's
# engine into every node (`docker save | docker load`); tasks use what the
# node holds (DOCKER_SERVICE_PREFER_OFFLINE_IMAGE=1), never a registry. Each
# daemon also serves its engine over mutual TLS on tcp://192.168.177.$i:2376
# (certificates of a CA the rig makes, in /run/bsw/tls), reachable only
# from the rig's namespaces.
#
# Idempotent: `up` on a rig that answers only checks it. Run as root.
set -euo pipefail

readonly PREFIX=bsw
readonly HUB=$PREFIX-hub
readonly SUBNET=192.168.177
readonly RUN=/run/$PREFIX
readonly DATA=/var/lib/$PREFIX
readonly IMAGES=(busybox:1.35 python:3.11-slim berth/base:1)

log() { echo "swarm-rig: $*" >&2; }
die() { echo "swarm-rig: ERROR: $*" >&2; exit 1; }
[ "$(id -u)" -eq 0 ] || die "must run as root"

node_docker() { local i=$1; shift; DOCKER_HOST=unix://$RUN/n$i.sock docker "$@"; }
answers() { node_docker "$1" version >/dev/null 2>&1; }
nodes_made() { ls "$RUN"/n*.pid 2>/dev/null | sed -E 's|.*/n([0-9]+)\.pid|\1|' | sort -n; }

# TLS material made once per rig: a CA, a certificate per node daemon (its
# name and its namespace address), and a client certificate for berth, in
# $RUN/tls/client as ca.pem, cert.pem, key.pem (the docker CLI's names).
make_pki() {
    local count=$1 dir=$RUN/tls i
    mkdir -p "$dir/client"
    chmod 0700 "$dir"
    if [ ! -f "$dir/ca.pem" ]; then
        openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=berth swarm rig CA" \
            -keyout "$dir/ca-key.pem" -out "$dir/ca.pem" 2>/dev/null
    fi
    for i in $(seq "$count"); do
        [ -f "$dir/n$i-cert.pem" ] && continue
        openssl req -newkey rsa:2048 -nodes -subj "/CN=$PREFIX-n$i" \
            -keyout "$dir/n$i-key.pem" -out "$dir/n$i.csr" 2>/dev/null
        printf 'subjectAltName=DNS:%s,IP:%s\nextendedKeyUsage=serverAuth\n' "$PREFIX-n$i" "$SUBNET.$i" >"$dir/n$i.ext"
        openssl x509 -req -in "$dir/n$i.csr" -CA "$dir/ca.pem" -CAkey "$dir/ca-key.pem" -CAcreateserial \
            -days 2 -extfile "$dir/n$i.ext" -out "$dir/n$i-cert.pem" 2>/dev/null
    done
    if [ ! -f "$dir/client/cert.pem" ]; then
        openssl req -newkey rsa:2048 -nodes -subj "/CN=berth" \
            -keyout "$dir/client/key.pem" -out "$dir/client.csr" 2>/dev/null
        printf 'extendedKeyUsage=clientAuth\n' >"$dir/client.ext"
        openssl x509 -req -in "$dir/client.csr" -CA "$dir/ca.pem" -CAkey "$dir/ca-key.pem" -CAcreateserial \
            -days 2 -extfile "$dir/client.ext" -out "$dir/client/cert.pem" 2>/dev/null
        cp "$dir/ca.pem" "$dir/client/ca.pem"
    fi
}

start_node() {
    local i=$1
    local net=$PREFIX-n$i
    if ! ip netns list | grep -qw "$net"; then
        ip netns add "$net"
        ip -n "$HUB" link add "v$i" type veth peer name eth0 netns "$net"
        ip -n "$HUB" link set "v$i" master br0 up
        ip -n "$net" link set lo up
        ip -n "$net" addr add "$SUBNET.$i/24" dev eth0
        ip -n "$net" link set eth0 up
    fi
    mkdir -p "$DATA/n$i" "$RUN/n$i"
    cat >"$RUN/n$i.json" <<EOF
{
  "storage-driver": "overlay2",
  "log-driver": "json-file",
  "no-new-privileges": true,
  "deprecated-key-path": "$DATA/n$i/key.json"
}
EOF
    # nsenter --net keeps the mount namespace (so dockerd sees the host's
    # cgroups); unshare --uts gives each node its own hostname.
    DOCKER_SERVICE_PREFER_OFFLINE_IMAGE=1 setsid nsenter --net="/run/netns/$net" unshare --uts \
        sh -c "hostname $net; exec $RUN/bin/$PREFIX-dockerd -H unix://$RUN/n$i.sock \
            -H tcp://$SUBNET.$i:2376 --tlsverify --tlscacert $RUN/tls/ca.pem \
            --tlscert $RUN/tls/n$i-cert.pem --tlskey $RUN/tls/n$i-key.pem \
            --data-root $DATA/n$i --exec-root $RUN/n$i --pidfile $RUN/n$i.pid \
            --cgroup-parent /$PREFIX-n$i --config-file $RUN/n$i.json" \
        >>"$RUN/n$i.log" 2>&1 </dev/null 9>&- &
}

up() {
    local count=${1:-3}
    [[ "$count" =~ ^[1-9]$ ]] || die "NODES must be 1..9, not '$count'"
    mkdir -p "$RUN/bin"
    ln -sf "$(command -v dockerd)" "$RUN/bin/$PREFIX-dockerd"
    if ! ip netns list | grep -qw "$HUB"; then
        ip netns add "$HUB"
        ip -n "$HUB" link set lo up
        ip -n "$HUB" link add br0 type bridge
        ip -n "$HUB" link set br0 up
        # The hub's own address on the nodes' segment, for what runs inside it.
        ip -n "$HUB" addr add "$SUBNET.254/24" dev br0
    fi
    make_pki "$count"
    local i
    for i in $(seq "$count"); do
        answers "$i" || start_node "$i"
    done
    for i in $(seq "$count"); do
        for _ in $(seq 60); do answers "$i" && break; sleep 0.5; done
        answers "$i" || { tail -n 20 "$RUN/n$i.log" >&2; die "node $i did not answer within 30 s"; }
    done
    local state
    state=$(node_docker 1 info --format '{{.Swarm.LocalNodeState}}')
    if [ "$state" != active ]; then
        node_docker 1 swarm init --advertise-addr "$SUBNET.1" --listen-addr "$SUBNET.1:2377" >/dev/null
    fi
    local token
    token=$(node_docker 1 swarm join-token -q worker)
    for i in $(seq 2 "$count"); do
        state=$(node_docker "$i" info --format '{{.Swarm.LocalNodeState}}')
        if [ "$state" != active ]; then
            node_docker "$i" swarm join --token "$token" --advertise-addr "$SUBNET.$i" "$SUBNET.1:2377" >/dev/null
        fi
    done
    for _ in $(seq 40); do
        [ "$(node_docker 1 node ls --filter role=worker --format '{{.Status}}' | grep -c Ready)" -eq $((count - 1)) ] && break
        sleep 0.25
    done
    for image in "${IMAGES[@]}"; do
        docker image inspect "$image" >/dev/null 2>&1 || die "the host's engine lacks $image (scripts/provision.sh)"
        local id
        id=$(docker image inspect --format '{{.Id}}' "$image")
        for i in $(seq "$count"); do
            if [ "$(node_docker "$i" image inspect --format '{{.Id}}' "$image" 2>/dev/null)" != "$id" ]; then
                docker save "$image" | node_docker "$i" load >/dev/null
            fi
        done
    done
    status >&2
    write_config "$count"
}

# The berth configuration that serves the rig: the manager and every node by
# its name (its hostname in the swarm) and its engine's socket.
write_config() {
    local count=$1 i
    {
        echo "# Written by scripts/swarm-rig.sh: berth serve --config $RUN/berth.toml"
        echo 'backend = "swarm"'
        echo '# The swarm tier runs several berths side by side; warm pools are'
        echo '# turned on by the tests that are about them.'
        echo 'pools = false'
        echo ''
        echo '[swarm]'
        echo "manager = \"unix://$RUN/n1.sock\""
        echo 'nodes = ['
        for i in $(seq "$count"); do
            echo "  { name = \"$PREFIX-n$i\", engine = \"unix://$RUN/n$i.sock\" },"
        done
        echo ']'
    } >"$RUN/berth.toml"
    # The same swarm over mutual TLS on the nodes' addresses, for a berth in
    # the hub namespace (scripts/swarm-rig.sh exec berth serve --config ...).
    {
        echo "# Written by scripts/swarm-rig.sh: swarm-rig.sh exec berth serve --config $RUN/berth-tls.toml"
        echo 'backend = "swarm"'
        echo 'pools = false'
        echo ''
        echo '[swarm]'
        echo "manager = \"tcp://$SUBNET.1:2376\""
        echo "manager_name = \"$PREFIX-n1\""
        echo "tls = \"$RUN/tls/client\""
        echo 'nodes = ['
        for i in $(seq "$count"); do
            echo "  { name = \"$PREFIX-n$i\", engine = \"tcp://$SUBNET.$i:2376\" },"
        done
        echo ']'
    } >"$RUN/berth-tls.toml"
    echo "$RUN/berth.toml"
}

status() {
    local i
    for i in $(nodes_made); do
        if answers "$i"; then
            echo "n$i unix://$RUN/n$i.sock $SUBNET.$i $(node_docker "$i" info --format '{{.Swarm.LocalNodeState}} {{.Swarm.ControlAvailable}} {{.Name}}')"
        else
            echo "n$i unix://$RUN/n$i.sock $SUBNET.$i down"
        fi
    done
}

# Cuts node N off (its link down in its namespace: its engine, its swarm
# traffic and its tasks' overlay all go silent), or mends it.
link() {
    local i=$1 state=$2
    [[ "$i" =~ ^[1-9]$ ]] || die "node must be 1..9, not '$i'"
    ip netns list | grep -qw "$PREFIX-n$i" || die "node $i is not part of the rig"
    ip -n "$PREFIX-n$i" link set eth0 "$state"
    log "node $i link $state"
}

# Stops node N's daemon (by its pidfile, only a process of the rig's name)
# and starts it again; returns once it answers.
restart() {
    local i=$1 pid
    [[ "$i" =~ ^[1-9]$ ]] || die "node must be 1..9, not '$i'"
    pid=$(cat "$RUN/n$i.pid" 2>/dev/null || true)
    if [ -n "$pid" ] && [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = "$PREFIX-dockerd" ]; then
        kill -TERM "$pid"
        for _ in $(seq 60); do [ -e "/proc/$pid" ] || break; sleep 0.25; done
        [ -e "/proc/$pid" ] && kill -KILL "$pid"
    fi
    start_node "$i"
    for _ in $(seq 60); do answers "$i" && break; sleep 0.5; done
    answers "$i" || die "node $i did not answer within 30 s of its restart"
    log "node $i restarted"
}

down() {
    local i pid
    # The services first, so the manager stops their tasks on every node.
    if answers 1; then
        local services
        services=$(node_docker 1 service ls -q 2>/dev/null || true)
        [ -z "$services" ] || node_docker 1 service rm $services >/dev/null 2>&1 || true
    fi
    for i in $(nodes_made); do
        pid=$(cat "$RUN/n$i.pid" 2>/dev/null || true)
        # Only a process of the rig's own name: never the host's dockerd.
        if [ -n "$pid" ] && [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = "$PREFIX-dockerd" ]; then
            kill -TERM "$pid"
            for _ in $(seq 40); do [ -e "/proc/$pid" ] || break; sleep 0.25; done
            [ -e "/proc/$pid" ] && kill -KILL "$pid"
        fi
        rm -f "$RUN/n$i.pid"
    done
    local net
    for net in $(ip netns list | awk '{print $1}' | grep -E "^$PREFIX-(hub|n[0-9]+)$" || true); do
        ip netns del "$net"
    done
    # What the daemons left mounted under their roots, then the roots.
    local m
    for m in $(awk '{print $2}' /proc/mounts | grep -E "^($RUN|$DATA)(/|$)" | sort -r); do
        umount -l "$m" 2>/dev/null || true
    done
    rm -rf "$RUN" "$DATA"
    local c
    for c in /sys/fs/cgroup/*/"$PREFIX"-n* /sys/fs/cgroup/"$PREFIX"-n*; do
        [ -d "$c" ] && find "$c" -depth -type d -exec rmdir {} \; 2>/dev/null || true
    done
    log "down"
}

case "${1:-}" in
    up) up "${2:-3}" ;;
    down) down ;;
    status) status ;;
    cut) link "${2:-}" down ;;
    mend) link "${2:-}" up ;;
    restart) restart "${2:-}" ;;
    exec)
        shift
        [ $# -gt 0 ] || die "usage: $0 exec CMD..."
        exec nsenter --net="/run/netns/$HUB" "$@"
        ;;
    *) die "usage: $0 up [NODES] | exec CMD... | cut N | mend N | restart N | down | status" ;;
esac
