#!/usr/bin/env bash
# Provision a Debian 12 (bookworm) machine for berth's integration tests:
#   1. Debian packages (docker.io, runc, busybox-static, docker-registry, mmdebstrap, ...)
#   2. a running dockerd on /var/run/docker.sock, runsc registered as a runtime
#   3. locally built images busybox:1.35, python:3.11-slim and the sandboxes'
#      berth/base:1 (no registry needed)
#   4. a local registry on 127.0.0.1:5000 holding 127.0.0.1:5000/berth/busybox:1.35
#   5. smoke checks (plain run, hardened run, --internal network) and a summary
#
# Run as root. Idempotent: a second run only checks and takes a few seconds.
# Overrides: BERTH_DEBIAN_MIRROR=http://... (default: read from apt sources).
set -euo pipefail

readonly SUITE=bookworm                        # python3 3.11 comes from bookworm
readonly BUSYBOX_IMAGE=busybox:1.35
readonly PYTHON_IMAGE=python:3.11-slim
readonly REGISTRY_ADDR=127.0.0.1:5000          # loopback only, never all interfaces
readonly REGISTRY_DIR=/var/lib/berth-registry
readonly REGISTRY_REPO=berth/busybox
readonly REGISTRY_TAG=1.35
readonly DOCKERD_LOG=/var/log/berth-dockerd.log
readonly REGISTRY_LOG=/var/log/berth-registry.log
readonly DEFAULT_PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
# iptables: dockerd bridge/NAT/isolation rules; iproute2: ss; procps: ps tools.
# chromium: the console's headless browser test.
readonly PACKAGES=(docker.io docker-compose tmux runc busybox-static docker-registry mmdebstrap curl iptables iproute2 procps mount tini runsc chromium)

# Always talk to the local daemon this script manages, whatever the caller's env says.
export DOCKER_HOST=unix:///var/run/docker.sock
export DEBIAN_FRONTEND=noninteractive

log() { echo "provision: $*"; }
die() { echo "provision: ERROR: $*" >&2; exit 1; }
trap 'die "command failed (exit $?) at line $LINENO: $BASH_COMMAND"' ERR

[ "$(id -u)" -eq 0 ] || die "must run as root"

# Scratch space and test resources are removed however the script ends.
WORK=$(mktemp -d /var/tmp/berth-provision.XXXXXX)
CHECK_NET=berth-provision-check-$$
CHECK_SRV=berth-provision-srv-$$
CHECK_OUT=berth-provision-out-$$
cleanup() {
    if command -v docker >/dev/null && [ -S /var/run/docker.sock ]; then
        docker rm -f "$CHECK_SRV" "$CHECK_OUT" >/dev/null 2>&1 || true
        docker network rm "$CHECK_NET" >/dev/null 2>&1 || true
    fi
    rm -rf "$WORK"
}
trap cleanup EXIT

# Serialise concurrent runs (two test sessions provisioning at once). The daemons we
# start get '9>&-' so they do not inherit this fd and hold the lock forever.
readonly LOCK=/run/lock/berth-provision.lock
mkdir -p "${LOCK%/*}"
exec 9>"$LOCK"
flock -w 300 9 || die "another provision.sh run has held $LOCK for 5 minutes"

# ---------------------------------------------------------------------------
# 1. Debian packages
# ---------------------------------------------------------------------------
installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'; }

missing=()
for p in "${PACKAGES[@]}"; do installed "$p" || missing+=("$p"); done
if [ ${#missing[@]} -gt 0 ]; then
    log "installing ${missing[*]}"
    apt-get update -qq || die "apt-get update failed"
    # With Recommends, as verified (docker.io recommends apparmor, needed on AppArmor kernels).
    apt-get install -y -qq "${missing[@]}" >/dev/null \
        || die "apt-get install ${missing[*]} failed"
else
    log "packages present"
fi
# promtool, which checks berth's metrics exposition, ships in Debian's prometheus
# package: only the tool is wanted (no Recommends; on a systemd host its server is
# stopped and disabled again).
if ! command -v promtool >/dev/null; then
    log "installing prometheus (for promtool)"
    apt-get install -y -qq --no-install-recommends prometheus >/dev/null || die "apt-get install prometheus failed"
    if command -v systemctl >/dev/null && systemctl is-active -q prometheus 2>/dev/null; then
        systemctl disable --now prometheus >/dev/null 2>&1 || true
    fi
fi

# On a systemd host the docker-registry package starts a registry on *:5000
# (all interfaces). We run our own on loopback instead, so keep that one off.
if [ -d /run/systemd/system ] && systemctl is-enabled --quiet docker-registry.service 2>/dev/null; then
    log "disabling Debian's docker-registry.service (it listens on all interfaces)"
    systemctl disable --now docker-registry.service >/dev/null 2>&1 || true
fi

# ---------------------------------------------------------------------------
# 2. dockerd
# ---------------------------------------------------------------------------
docker_up() { docker version >/dev/null 2>&1; }
runsc_registered() { docker info --format '{{json .Runtimes}}' 2>/dev/null | grep -q '"runsc"'; }

# gVisor's runsc registered in the daemon's configuration as a runtime runs may
# ask for (HostConfig.Runtime): the one change made to the host daemon. The
# rest of an existing daemon.json is kept. --oci-seccomp makes runsc apply the
# engine's seccomp profile too (it ignores it otherwise); the 2022 build's
# default platform is ptrace, the only one without nested KVM. --network=host
# has the sandbox use the container's own network namespace (the engine's
# veth, or loopback only): the 2022 build's netstack refuses to start on this
# kernel, where /proc/sys/net/core/rmem_default shows in every namespace and
# runsc takes each for the root namespace.
readonly DAEMON_JSON=/etc/docker/daemon.json
mkdir -p "${DAEMON_JSON%/*}"
python3 - "$DAEMON_JSON" <<'PY'
import json, os, sys
path = sys.argv[1]
config = {}
if os.path.exists(path):
    with open(path) as f:
        text = f.read().strip()
    config = json.loads(text) if text else {}
want = {"path": "/usr/bin/runsc", "runtimeArgs": ["--oci-seccomp", "--network=host"]}
if config.get("runtimes", {}).get("runsc") != want:
    config.setdefault("runtimes", {})["runsc"] = want
    with open(path + ".berth", "w") as f:
        json.dump(config, f, indent=2)
        f.write("\n")
    os.replace(path + ".berth", path)
PY

if docker_up; then
    log "dockerd already running"
else
    # The host's daemon is the one whose pidfile names a live dockerd; any
    # other process called dockerd (a test rig's daemon) is not ours.
    host_pid=$(cat /var/run/docker.pid 2>/dev/null || true)
    if [ -n "$host_pid" ] && [ "$(cat "/proc/$host_pid/comm" 2>/dev/null)" = dockerd ]; then
        log "dockerd (pid $host_pid) exists but does not answer yet, waiting"
    else
        # Defaults are enough here (overlay2 on ext4, cgroupfs on cgroup v1,
        # iptables-nft); setsid+nohup detach it so it outlives this script.
        log "starting dockerd (log: $DOCKERD_LOG)"
        setsid nohup dockerd -H unix:///var/run/docker.sock >>"$DOCKERD_LOG" 2>&1 </dev/null 9>&- &
    fi
    for _ in $(seq 60); do docker_up && break; sleep 1; done
    if ! docker_up; then
        tail -n 30 "$DOCKERD_LOG" >&2 || true
        die "dockerd did not answer within 60 s (see $DOCKERD_LOG)"
    fi
    log "dockerd is up"
fi
if ! runsc_registered; then
    # A daemon started before the registration reloads its runtimes on SIGHUP.
    host_pid=$(cat /var/run/docker.pid 2>/dev/null || true)
    if [ -n "$host_pid" ] && [ "$(cat "/proc/$host_pid/comm" 2>/dev/null)" = dockerd ]; then
        log "dockerd (pid $host_pid) reloads its configuration to take runsc in"
        kill -HUP "$host_pid"
        for _ in $(seq 20); do runsc_registered && break; sleep 0.5; done
    fi
    runsc_registered || die "dockerd does not list runsc among its runtimes (see $DAEMON_JSON, $DOCKERD_LOG)"
fi

# ---------------------------------------------------------------------------
# 3. Local images
# ---------------------------------------------------------------------------
image_exists() { docker image inspect "$1" >/dev/null 2>&1; }
BUSYBOX_BUILT=0

if image_exists "$BUSYBOX_IMAGE"; then
    log "$BUSYBOX_IMAGE present"
else
    log "building $BUSYBOX_IMAGE from busybox-static"
    root=$WORK/busybox-root
    mkdir -p "$root"/{bin,etc,root,home,tmp,proc,sys,dev,var,usr/bin}
    chmod 1777 "$root/tmp"
    chmod 0700 "$root/root"
    install -m 0755 /bin/busybox "$root/bin/busybox"
    for applet in $("$root/bin/busybox" --list); do
        [ "$applet" = busybox ] || ln -s busybox "$root/bin/$applet"
    done
    ln -s ../../bin/busybox "$root/usr/bin/env"   # for '#!/usr/bin/env sh' scripts
    cat >"$root/etc/passwd" <<'EOF'
root:x:0:0:root:/root:/bin/sh
nobody:x:65534:65534:nobody:/home:/bin/false
EOF
    cat >"$root/etc/group" <<'EOF'
root:x:0:
nobody:x:65534:
EOF
    tar --numeric-owner --owner=0 --group=0 -C "$root" -cf "$WORK/busybox.tar" .
    docker import -m "berth provision: busybox-static $(dpkg-query -W -f='${Version}' busybox-static)" \
        --change 'CMD ["sh"]' --change "ENV PATH=$DEFAULT_PATH" \
        "$WORK/busybox.tar" "$BUSYBOX_IMAGE" >/dev/null
    BUSYBOX_BUILT=1
fi

# The Debian mirror apt already uses (deb822 *.sources first, then one-line
# *.list), so this works behind whatever mirror/proxy host the machine has.
debian_mirror() {
    local f uri
    for f in /etc/apt/sources.list.d/*.sources; do
        [ -f "$f" ] || continue
        uri=$(awk -v suite="$SUITE" '
            BEGIN { RS = ""; FS = "\n" }
            {
                uris = ""; deb = 0; hit = 0; enabled = 1
                for (i = 1; i <= NF; i++) {
                    line = $i
                    if (line ~ /^Types:/)   { if (line ~ /[: \t]deb([ \t]|$)/) deb = 1 }
                    else if (line ~ /^URIs:/)    { sub(/^URIs:[ \t]*/, "", line); uris = line }
                    else if (line ~ /^Enabled:[ \t]*no/) enabled = 0
                    else if (line ~ /^Suites:/) {
                        sub(/^Suites:[ \t]*/, "", line)
                        n = split(line, s, /[ \t]+/)
                        for (j = 1; j <= n; j++) if (s[j] == suite) hit = 1
                    }
                }
                if (deb && hit && enabled && uris != "") { split(uris, u, /[ \t]+/); print u[1]; exit }
            }' "$f")
        [ -n "$uri" ] && { echo "$uri"; return; }
    done
    for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
        [ -f "$f" ] || continue
        uri=$(sed -E 's/\[[^]]*\]//' "$f" \
            | awk -v suite="$SUITE" '$1 == "deb" && $3 == suite { print $2; exit }')
        [ -n "$uri" ] && { echo "$uri"; return; }
    done
    return 0
}

if image_exists "$PYTHON_IMAGE"; then
    log "$PYTHON_IMAGE present"
else
    mirror=${BERTH_DEBIAN_MIRROR:-$(debian_mirror)}
    [ -n "$mirror" ] || die "no '$SUITE' mirror found in /etc/apt/sources.list{,.d/*}; set BERTH_DEBIAN_MIRROR"
    log "building $PYTHON_IMAGE with mmdebstrap from $mirror (~40 s)"
    # 'essential' variant + python3: smallest Debian that runs python3 (no apt).
    # The merged-usr hook installs usr-is-merged instead of usrmerge, which would
    # drag in perl (~50 MB). Docs/man/locales are dropped to keep it slim; the
    # customize hooks make sure 'nobody' exists and python3 runs before we import.
    if ! mmdebstrap --mode=root --variant=essential --include=python3 --quiet \
        --hook-dir=/usr/share/mmdebstrap/hooks/merged-usr \
        --dpkgopt='path-exclude=/usr/share/doc/*' \
        --dpkgopt='path-include=/usr/share/doc/*/copyright' \
        --dpkgopt='path-exclude=/usr/share/man/*' \
        --dpkgopt='path-exclude=/usr/share/info/*' \
        --dpkgopt='path-exclude=/usr/share/locale/*' \
        --customize-hook='grep -q "^nobody:" "$1/etc/passwd" || echo "nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin" >>"$1/etc/passwd"' \
        --customize-hook='grep -q ":65534:" "$1/etc/group" || echo "nogroup:x:65534:" >>"$1/etc/group"' \
        --customize-hook='ln -sf /usr/bin/python3 "$1/usr/local/bin/python"' \
        --customize-hook='chroot "$1" python3 -c "print(1)" >/dev/null' \
        "$SUITE" "$WORK/python.tar" "$mirror" >"$WORK/mmdebstrap.log" 2>&1; then
        tail -n 30 "$WORK/mmdebstrap.log" >&2
        die "mmdebstrap failed"
    fi
    docker import -m "berth provision: mmdebstrap $SUITE essential + python3" \
        --change 'CMD ["python3"]' --change "ENV PATH=$DEFAULT_PATH" --change 'ENV LANG=C.UTF-8' \
        "$WORK/python.tar" "$PYTHON_IMAGE" >/dev/null
fi

# ---------------------------------------------------------------------------
# 4. Local registry on 127.0.0.1:5000
# ---------------------------------------------------------------------------
registry_up() { curl -sf -o /dev/null "http://$REGISTRY_ADDR/v2/"; }

if registry_up; then
    log "registry already answering on $REGISTRY_ADDR"
else
    log "starting docker-registry on $REGISTRY_ADDR (log: $REGISTRY_LOG)"
    mkdir -p "$REGISTRY_DIR/data"
    # Own config: the Debian default listens on :5000 (all interfaces) and wants htpasswd.
    cat >"$REGISTRY_DIR/config.yml" <<EOF
version: 0.1
log:
  level: warn
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: $REGISTRY_DIR/data
  delete:
    enabled: true
http:
  addr: $REGISTRY_ADDR
  headers:
    X-Content-Type-Options: [nosniff]
EOF
    setsid nohup docker-registry serve "$REGISTRY_DIR/config.yml" >>"$REGISTRY_LOG" 2>&1 </dev/null 9>&- &
    for _ in $(seq 20); do registry_up && break; sleep 0.5; done
    if ! registry_up; then
        tail -n 20 "$REGISTRY_LOG" >&2 || true
        die "registry did not answer on $REGISTRY_ADDR within 10 s"
    fi
fi
# Whatever answers, it must not be reachable from other hosts.
# (Outputs are captured before grepping: with pipefail, 'grep -q' closing the pipe early
# could make the pipeline look failed.)
port=${REGISTRY_ADDR##*:}
listeners=$(ss -Htln "sport = :$port" | awk '{print $4}')
if [ -n "$listeners" ] && grep -qvxF "$REGISTRY_ADDR" <<<"$listeners"; then
    ss -tlnp "sport = :$port" >&2
    die "something listens on port $port beyond $REGISTRY_ADDR; stop it (e.g. Debian's docker-registry service)"
fi

# Push unless the registry already has the tag (and we did not just rebuild it).
# Docker treats 127.0.0.0/8 as an insecure registry by default: no daemon config.
remote=$REGISTRY_ADDR/$REGISTRY_REPO:$REGISTRY_TAG
registry_has_tag() {
    local tags
    tags=$(curl -sf "http://$REGISTRY_ADDR/v2/$REGISTRY_REPO/tags/list") || return 1
    grep -q "\"$REGISTRY_TAG\"" <<<"$tags"
}
if [ "$BUSYBOX_BUILT" = 0 ] && registry_has_tag; then
    log "registry already has $remote"
else
    log "pushing $remote"
    docker tag "$BUSYBOX_IMAGE" "$remote"
    out=$(docker push "$remote" 2>&1) || { echo "$out" >&2; die "docker push $remote failed"; }
    registry_has_tag || die "push reported success but $remote is not in the registry's tag list"
fi

# ---------------------------------------------------------------------------
# 5. Smoke checks
# ---------------------------------------------------------------------------
# The plain run is always checked. The full set (python3, hardening flags,
# --internal network; ~6 containers, several seconds) runs once per daemon
# instance and image pair, remembered in a stamp file; BERTH_PROVISION_CHECK=1 forces it.
[ "$(docker run --rm "$BUSYBOX_IMAGE" echo hi)" = hi ] || die "docker run $BUSYBOX_IMAGE echo hi failed"

full_checks() {
    [ "$(docker run --rm "$PYTHON_IMAGE" python3 -c 'print(1)')" = 1 ] || die "python3 does not run in $PYTHON_IMAGE"

    # The hardening options berth uses must all be accepted together.
    out=$(docker run --rm --network none --read-only --cap-drop ALL \
            --security-opt no-new-privileges --pids-limit 64 --memory 64m --user 65534:65534 \
            "$BUSYBOX_IMAGE" sh -c 'id -u; touch /x 2>/dev/null && echo writable || echo ro') \
        || die "hardened docker run failed"
    [ "$out" = "$(printf '65534\nro')" ] || die "hardened docker run gave unexpected output: $out"

    # --internal network: containers reach each other by name, but nothing beyond the
    # network. "Beyond" is a second web server on the default bridge: a 172.x address on
    # this machine, so no packet is sent off-host. (Docker 20.10 still gives internal
    # networks a default route; the isolation is iptables DROP rules, so we test traffic.)
    # Note: Debian's busybox 1.35 'wget -T' segfaults, hence 'timeout N wget'.
    web='echo pong >/tmp/ping && exec httpd -f -p 8080 -h /tmp'
    # (Functions do not inherit the ERR trap, so failures are reported explicitly.)
    docker network create --internal "$CHECK_NET" >/dev/null || die "docker network create --internal failed"
    docker run -d --name "$CHECK_SRV" --network "$CHECK_NET" "$BUSYBOX_IMAGE" sh -c "$web" >/dev/null \
        || die "could not start $CHECK_SRV on $CHECK_NET"
    docker run -d --name "$CHECK_OUT" --network bridge "$BUSYBOX_IMAGE" sh -c "$web" >/dev/null \
        || die "could not start $CHECK_OUT on the default bridge"
    out_ip=$(docker inspect --format '{{.NetworkSettings.Networks.bridge.IPAddress}}' "$CHECK_OUT") || out_ip=
    [ -n "$out_ip" ] || die "could not get the IP of $CHECK_OUT on the default bridge"
    get() { echo "timeout 2 wget -q -O - http://$1:8080/ping 2>/dev/null"; }
    out=$(docker run --rm --network "$CHECK_NET" "$BUSYBOX_IMAGE" sh -c "
        for i in 1 2 3 4 5 6 7 8 9 10; do $(get "$CHECK_SRV") && break; sleep 0.3; done
        $(get "$out_ip") && echo escaped-internal-network
        true") || die "internal network check container failed"
    [ "$out" = pong ] || die "internal network check: expected 'pong' only, got: ${out:-<nothing>}"
    # Control: the outside server does answer when asked from its own network.
    out=$(docker run --rm --network bridge "$BUSYBOX_IMAGE" sh -c "
        for i in 1 2 3 4 5 6 7 8 9 10; do $(get "$out_ip") && break; sleep 0.3; done; true") || out=
    [ "$out" = pong ] || die "internal network check: control server $out_ip did not answer on the default bridge"
    docker rm -f "$CHECK_SRV" "$CHECK_OUT" >/dev/null || die "docker rm failed"
    docker network rm "$CHECK_NET" >/dev/null || die "docker network rm failed"
}

# ---------------------------------------------------------------------------
# Seed images: the images the seeds' own examples name, made from the local
# ones, so every example of every seed runs here as written.
# ---------------------------------------------------------------------------
# seed_image NAME BASE CMD_JSON [SCRIPT]: SCRIPT (if any) becomes /tool.
seed_image() {
    local name=$1 base=$2 cmd=$3 script=${4:-} tmp=berth-provision-seed
    image_exists "$name" && return 0
    docker rm -f "$tmp" >/dev/null 2>&1 || true
    if [ -n "$script" ]; then
        printf '%s\n' "$script" | docker run -i --name "$tmp" "$base" sh -c 'cat > /tool && chmod 0755 /tool' \
            || die "cannot write the tool of $name"
    else
        docker create --name "$tmp" "$base" >/dev/null || die "cannot create a container of $base"
    fi
    docker commit -m "berth provision: seed example image" --change "CMD $cmd" "$tmp" "$name" >/dev/null \
        || die "cannot commit $name"
    docker rm -f "$tmp" >/dev/null
    log "built seed image $name from $base"
}
seed_image cortex/tool-pdf-extractor:latest "$BUSYBOX_IMAGE" '["/tool"]' \
    '#!/bin/sh
printf "{\"tool\": \"pdf_extractor\", \"file\": \"%s\", \"pages\": 1}\n" "$PARAM_FILE"'
seed_image cortex/relic-research-cache:latest "$PYTHON_IMAGE" \
    '["sh", "-c", "mkdir -p /tmp/www && echo ok > /tmp/www/health && exec python3 -m http.server 8000 --directory /tmp/www"]'
seed_image warder/agent:latest "$BUSYBOX_IMAGE" '["sh", "-c", "echo warder agent up; echo TEST_VAR=$TEST_VAR; exec sleep 86400"]'
seed_image tidepool-agent:latest "$BUSYBOX_IMAGE" '["sleep", "86400"]'
seed_image laias/agent-runner:latest "$BUSYBOX_IMAGE" \
    '["sh", "-c", "echo agent-runner: starting; ls /app/agent; exec sleep 86400"]'

# The sandboxes' `base` template: bash, coreutils and python3, the user
# `user` (uid 1000) in /home/user, as E2B's base template has them.
readonly BASE_IMAGE=berth/base:1
if ! image_exists "$BASE_IMAGE"; then
    docker rm -f berth-provision-base >/dev/null 2>&1 || true
    docker run --name berth-provision-base "$PYTHON_IMAGE" sh -c '
        grep -q "^user:" /etc/passwd || echo "user:x:1000:1000:user:/home/user:/bin/bash" >>/etc/passwd
        grep -q "^user:" /etc/group || echo "user:x:1000:" >>/etc/group
        mkdir -p /home/user && chown 1000:1000 /home/user' || die "cannot prepare $BASE_IMAGE"
    docker commit -m "berth provision: the sandboxes' base template" \
        --change 'USER 1000:1000' --change 'WORKDIR /home/user' --change 'ENV HOME=/home/user' \
        --change 'CMD ["/bin/bash"]' berth-provision-base "$BASE_IMAGE" >/dev/null || die "cannot commit $BASE_IMAGE"
    docker rm -f berth-provision-base >/dev/null
    log "built $BASE_IMAGE from $PYTHON_IMAGE"
fi

readonly STAMP=/run/berth-provision.checked
stamp="$(cat /proc/sys/kernel/random/boot_id) $(cat /var/run/docker.pid 2>/dev/null) \
$(docker image inspect --format '{{.Id}}' "$BUSYBOX_IMAGE" "$PYTHON_IMAGE" | tr '\n' ' ')"
if [ "${BERTH_PROVISION_CHECK:-0}" = 1 ] || [ "$(cat "$STAMP" 2>/dev/null)" != "$stamp" ]; then
    full_checks
    echo "$stamp" >"$STAMP"
    log "checks ok (run, python3, hardened run, --internal network)"
else
    log "checks ok (run; full checks already passed for this daemon and these images)"
fi

# ---------------------------------------------------------------------------
# Summary
# ---------------------------------------------------------------------------
ver=$(docker version --format 'server {{.Server.Version}} api {{.Server.APIVersion}}')
info=$(docker info --format 'storage {{.Driver}} cgroup v{{.CgroupVersion}} ({{.CgroupDriver}})')
bb=$(docker image inspect --format '{{.Id}}' "$BUSYBOX_IMAGE")
py=$(docker image inspect --format '{{.Id}}' "$PYTHON_IMAGE")
log "ready: docker $ver, $info, $BUSYBOX_IMAGE=${bb:7:12} $PYTHON_IMAGE=${py:7:12} registry=$REGISTRY_ADDR"
