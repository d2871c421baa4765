#!/usr/bin/env bash
# Berth's multi-host test bed (docs/architecture.md#the-test-bed): N Docker hosts on this machine. Host i is a network
# namespace berth-h$i joined to the root namespace by a veth pair (bh$i-o 10.250.$i.1 outside,
# bh$i-i 10.250.$i.2 inside) and runs its own dockerd there, answering on
# unix:///run/berth-testbed/h$i/docker.sock and publishing ports on 10.250.$i.2.
#
#   testbed/hosts.sh up [N] [--userns-remap I[,J...]]
#                                       create hosts 1..N (default 2), start their engines, load the
#                                       test images; idempotent, restarts an engine that died. Hosts named
#                                       by --userns-remap run dockerd --userns-remap=default (root in a
#                                       container is an unprivileged host uid) from their first start, and
#                                       keep it until `down`
#   testbed/hosts.sh down               stop every engine, remove namespaces, veths, mounts, data
#   testbed/hosts.sh status             one line per host
#   testbed/hosts.sh check              run berth-test/web:v1 hardened on every host, fetch it from here
#                                       and from the other hosts, remove it
#   testbed/hosts.sh stop-engine I [--kill]
#                                       stop host I's dockerd (SIGTERM: containers stop gracefully) or,
#                                       with --kill, SIGKILL it, its containerd, shims and containers
#                                       (a power cut); the data-root stays, as on a rebooted machine
#   testbed/hosts.sh start-engine I     start host I's dockerd again on the same data-root
#   testbed/hosts.sh link-down I        set bh$I-o down: its published ports become unreachable
#   testbed/hosts.sh link-up I          set it up again
#   testbed/hosts.sh registry-up        run a password-protected registry at 10.250.2.2:5000 in host 2's
#                                       namespace and push berth-test/web:v2 into it as
#                                       10.250.2.2:5000/berth/web:v2; idempotent (needs `up` first)
#   testbed/hosts.sh registry-down      stop the registry (its storage and password stay until `down`)
#   testbed/hosts.sh tls-up I           host I's engine also answers on tcp://10.250.I.2:2376 with TLS client
#                                       certificates (--tlsverify) from a test CA; restarts its dockerd once
#   testbed/hosts.sh ssh-up I           an sshd on 10.250.I.2:22, key-only, whose one key may only run
#                                       `docker system dial-stdio` against host I's engine; idempotent
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(dirname "$HERE")
STATE=/run/berth-testbed     # sockets, pid files, exec-roots: gone after a reboot, like the engines'
DATA=/var/lib/berth-testbed  # data-roots (images, containers); `down` wipes them
LOGS=/var/log/berth-testbed
REGISTRY_DIR=$DATA/registry  # config, htpasswd, the password, the registry's storage
REGISTRY_HOST=2              # the registry runs in this host's network namespace
REGISTRY=$(printf '10.250.%s.2:5000' "$REGISTRY_HOST")
REGISTRY_USER=berth
REGISTRY_IMAGES=("berth-test/web:v2|berth/web:v2")  # local tag | repository:tag in the registry
# Plain HTTP, so every engine lists the test bed's addresses as insecure registries (testbed/README.md).
INSECURE_REGISTRIES=10.250.0.0/16
TLS_DIR=$DATA/tls            # the test CA, one client certificate, and h$i/ server certificates
TLS_PORT=2376
SSH_DIR=$DATA/ssh            # the client key, and h$i/ host key, sshd_config, authorized_keys
SSH_USER=berth-testbed       # the account ssh:// engine URLs log in as; in group docker
START_TIMEOUT=${BERTH_TESTBED_START_TIMEOUT:-60}
STOP_TIMEOUT=${BERTH_TESTBED_STOP_TIMEOUT:-30}

log() { echo "testbed: $*" >&2; }
die() { log "$*"; exit 1; }

netns() { echo "berth-h$1"; }
engine_url() { echo "unix://$STATE/h$1/docker.sock"; }
address() { echo "10.250.$1.2"; }
engine() { local i=$1; shift; docker -H "$(engine_url "$i")" "$@"; }

# Bound every `docker version` so that a hung engine fails the script instead of hanging it.
answers() { timeout 10 docker -H "$(engine_url "$1")" version --format '{{.Server.Version}}' 2>/dev/null; }

check_index() {
  if ! [[ $1 =~ ^[1-9][0-9]*$ ]] || (($1 > 250)); then die "host index must be 1..250, not '$1'"; fi
}

with_lock() { # serialize commands that change the test bed (pytest-xdist workers all run `up`)
  mkdir -p "$STATE"
  exec 9>"$STATE/lock"
  flock -w 600 9 || die "another testbed/hosts.sh held $STATE/lock for 10 minutes"
}

known_hosts() { # indices of every host that has any trace on this machine, ascending
  {
    ip netns list 2>/dev/null | sed -n 's/^berth-h\([0-9]\+\)\b.*/\1/p'
    ip -o link show 2>/dev/null | sed -n 's/^[0-9]\+: bh\([0-9]\+\)-o[@:].*/\1/p'
    find "$STATE" "$DATA" -maxdepth 1 -name 'h[0-9]*' -printf '%f\n' 2>/dev/null | sed 's/^h//'
  } | sort -nu
}

ensure_prerequisites() {
  local -a missing=()
  [[ -x /bin/busybox ]] || missing+=(busybox-static)
  command -v ip >/dev/null || missing+=(iproute2)
  command -v nsenter >/dev/null || missing+=(util-linux)
  if [[ ${1:-} == registry ]]; then
    command -v docker-registry >/dev/null || missing+=(docker-registry)
    command -v htpasswd >/dev/null || missing+=(apache2-utils)
    command -v curl >/dev/null || missing+=(curl)
  fi
  if ((${#missing[@]})); then
    log "installing ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  fi
  # The machine's own engine builds the images; installing docker.io also brings dockerd and iptables.
  # 9>&-: a dockerd it starts must not inherit (and hold forever) the test bed's lock.
  "$REPO/scripts/ensure-docker.sh" >&2 9>&-
}

# --- network ----------------------------------------------------------------------------------

ensure_network() {
  local i=$1 ns out=bh$1-o in=bh$1-i
  ns=$(netns "$i")
  [[ -e /run/netns/$ns ]] || ip netns add "$ns"
  # Deleting either end of a veth deletes both, so the outside end tells whether the pair exists.
  ip link show "$out" >/dev/null 2>&1 || ip link add "$out" type veth peer name "$in" netns "$ns"
  ip addr replace "10.250.$i.1/24" dev "$out"
  ip link set "$out" up
  ip -n "$ns" link set lo up
  ip -n "$ns" addr replace "$(address "$i")/24" dev "$in"
  ip -n "$ns" link set "$in" up
  ip -n "$ns" route replace default via "10.250.$i.1"
}

# Test hosts may reach each other through the root namespace (this machine's dockerd set the
# FORWARD policy to DROP) and nothing else: traffic from a test container to the outside world,
# DNS included, is dropped here instead of leaving the machine.
FORWARD_RULES='-A BERTH-TESTBED -i bh+ -o bh+ -j ACCEPT
-A BERTH-TESTBED -i bh+ -j DROP
-A BERTH-TESTBED -o bh+ -j DROP'

ensure_routing() {
  local rule
  if [[ $(iptables -w -S BERTH-TESTBED 2>/dev/null | grep -v '^-N') != "$FORWARD_RULES" ]]; then
    iptables -w -N BERTH-TESTBED 2>/dev/null || iptables -w -F BERTH-TESTBED
    while read -r rule; do
      # shellcheck disable=SC2086 # a rule is a list of iptables words
      iptables -w $rule
    done <<<"$FORWARD_RULES"
  fi
  iptables -w -C FORWARD -j BERTH-TESTBED 2>/dev/null || iptables -w -I FORWARD -j BERTH-TESTBED
  # With a link down its /24 route goes away, and without this route traffic for that host would
  # follow the default route off the machine. Now it fails at once: "No route to host".
  ip route replace unreachable 10.250.0.0/16
  if [[ $(sysctl -n net.ipv4.ip_forward) != 1 ]]; then
    log "enabling net.ipv4.ip_forward so test hosts can reach each other"
    sysctl -qw net.ipv4.ip_forward=1
  fi
}

remove_routing() {
  ip route del unreachable 10.250.0.0/16 2>/dev/null || true
  while iptables -w -D FORWARD -j BERTH-TESTBED 2>/dev/null; do :; done
  iptables -w -F BERTH-TESTBED 2>/dev/null || true
  iptables -w -X BERTH-TESTBED 2>/dev/null || true
}

# --- engines ----------------------------------------------------------------------------------

# A process that exited stays in /proc as a zombie until its parent reaps it; an engine's parent
# is this machine's PID 1 once hosts.sh has exited, and it reaps late. A zombie counts as dead.
alive() {
  local state
  state=$(sed -n 's/^State:[[:space:]]*\([A-Z]\).*/\1/p' "/proc/$1/status" 2>/dev/null) || return 1
  [[ -n $state && $state != Z && $state != X ]]
}

engine_pid() { # the pid of host i's dockerd, or nothing
  local pid
  pid=$(cat "$STATE/h$1/docker.pid" 2>/dev/null) || return 0
  # A stale pid file may name a reused pid: only a live dockerd started for this host counts.
  if [[ -n $pid && $(cat "/proc/$pid/comm" 2>/dev/null) == dockerd ]] && alive "$pid" &&
    tr '\0' ' ' <"/proc/$pid/cmdline" | grep -qF -- "--exec-root $STATE/h$1/exec "; then
    echo "$pid"
  fi
  return 0
}

engine_config() { # host i's daemon.json
  # Each engine needs its own identity: by default every dockerd on a machine reads
  # /etc/docker/key.json and reports the same engine ID. The key lives with the data-root, so
  # the ID survives stop-engine/start-engine, as a rebooted host's does. 20.10 has no flag for it.
  # Berth makes one bridge network per organization: Docker's default pools hold about 30 of them,
  # /24s from a /16 hold 256 (a new pool needs an engine restart: `down`, then `up`).
  printf '{"deprecated-key-path": "%s", "insecure-registries": ["%s"], %s}\n' "$DATA/h$1/key.json" \
    "$INSECURE_REGISTRIES" '"default-address-pools": [{"base": "10.251.0.0/16", "size": 24}]'
}

configure_engine() { # bring a running engine's daemon.json up to date; dockerd reloads it on SIGHUP
  local i=$1 file=$STATE/h$1/daemon.json pid deadline
  [[ $(cat "$file" 2>/dev/null) == "$(engine_config "$i")" ]] && return 0
  engine_config "$i" >"$file"
  pid=$(engine_pid "$i")
  [[ -n $pid ]] || return 0
  log "host $i: reloading dockerd's configuration (insecure-registries $INSECURE_REGISTRIES)"
  kill -HUP "$pid"
  deadline=$((SECONDS + 10))
  until engine "$i" info --format '{{json .RegistryConfig.InsecureRegistryCIDRs}}' 2>/dev/null |
    grep -qF "\"$INSECURE_REGISTRIES\""; do
    ((SECONDS < deadline)) || die "host $i: dockerd did not take insecure-registries from $file"
    sleep 0.1
  done
}

start_engine() { # start host i's dockerd unless it runs; does not wait for it
  local i=$1 dir=$STATE/h$1
  [[ -n $(engine_pid "$i") ]] && return 0
  # A dockerd that died may have left its containerd, shims, containers and mounts: clear them as
  # a reboot would, so the new dockerd starts from its data-root alone.
  stop_engine "$i" kill
  mkdir -p "$dir" "$DATA/h$i" "$LOGS"
  engine_config "$i" >"$dir/daemon.json"
  echo "=== $(date -u +%FT%TZ) starting dockerd" >>"$LOGS/h$i.log"
  # nsenter changes only the network namespace: `ip netns exec` would also remount /sys in a new
  # mount namespace and hide the cgroup v1 hierarchies dockerd needs. setsid and the redirections
  # detach it from the caller (pytest waits for its pipes to close); 9>&- keeps the lock out of it.
  # --cgroup-parent keeps each host's containers in their own cgroup, where stop-engine finds them.
  # shellcheck disable=SC2046 # tls_flags and userns_flags are lists of words, or none
  nsenter --net="/run/netns/$(netns "$i")" -- setsid dockerd \
    --config-file "$dir/daemon.json" \
    -H "$(engine_url "$i")" $(tls_flags "$i") $(userns_flags "$i") \
    --data-root "$DATA/h$i" \
    --exec-root "$dir/exec" \
    --pidfile "$dir/docker.pid" \
    --ip "$(address "$i")" \
    --cgroup-parent "/berth-h$i" \
    </dev/null >>"$LOGS/h$i.log" 2>&1 9>&- &
}

wait_engine() {
  local i=$1 deadline=$((SECONDS + START_TIMEOUT))
  until answers "$i" >/dev/null; do
    if ((SECONDS >= deadline)); then
      log "host $i: dockerd did not answer within ${START_TIMEOUT}s; last lines of $LOGS/h$i.log:"
      tail -n 30 "$LOGS/h$i.log" >&2
      return 1
    fi
    sleep 0.2
  done
}

host_cgroup_dirs() { # cgroup v1 and v2 directories of host i's containers
  find /sys/fs/cgroup -mindepth 1 -maxdepth 2 -type d -name "berth-h$1" 2>/dev/null
}

host_pids() { # engine processes in host i's namespace, then processes of its containers
  local i=$1 ns_inode p comm dir
  ns_inode=$(stat -L -c %i "/run/netns/$(netns "$i")" 2>/dev/null) || ns_inode=
  if [[ -n $ns_inode ]]; then
    for p in /proc/[0-9]*; do
      [[ $(readlink "$p/ns/net" 2>/dev/null) == "net:[$ns_inode]" ]] || continue
      comm=$(cat "$p/comm" 2>/dev/null) || continue
      # Only the engine's own processes (comm is cut at 15 characters: containerd-shim-runc-v2);
      # its containers are found by cgroup below.
      case $comm in
        dockerd | containerd | containerd-shim* | docker-proxy | runc) echo "${p#/proc/}" ;;
      esac
    done
  fi
  while read -r dir; do
    find "$dir" -name cgroup.procs -exec cat {} + 2>/dev/null
  done < <(host_cgroup_dirs "$i")
}

kill_host_processes() { # SIGKILL every process left of host i, and wait until they are gone
  local i=$1 pids pid
  for _ in $(seq 1 50); do
    pids=$(host_pids "$i" | sort -u | while read -r pid; do if alive "$pid"; then echo "$pid"; fi; done | tr '\n' ' ')
    [[ -z ${pids// /} ]] && return 0
    # shellcheck disable=SC2086 # a list of pids
    kill -KILL $pids 2>/dev/null || true
    sleep 0.1
  done
  log "host $i: processes survived SIGKILL: $pids"
  return 1
}

unmount_host() { # what a killed dockerd left mounted: overlays, shm, netns files, the data-root bind
  local i=$1 target
  awk '{print $5}' /proc/self/mountinfo |
    { grep -E "^($DATA|$STATE)/h$i(/|\$)" || true; } | sort -r |
    while read -r target; do
      umount "$target" 2>/dev/null || umount -l "$target"
    done
}

stop_engine() { # i mode: graceful (SIGTERM, containers stop with their stop signal) or kill
  local i=$1 mode=$2 pid deadline
  pid=$(engine_pid "$i")
  if [[ -n $pid && $mode == graceful ]]; then
    kill -TERM "$pid"
    deadline=$((SECONDS + STOP_TIMEOUT))
    while alive "$pid" && ((SECONDS < deadline)); do sleep 0.1; done
    ! alive "$pid" || log "host $i: dockerd ignored SIGTERM for ${STOP_TIMEOUT}s; killing it"
  fi
  # The dockerd first, so that it restarts nothing, then whatever it left behind.
  [[ -z $pid ]] || kill -KILL "$pid" 2>/dev/null || true
  kill_host_processes "$i"
  unmount_host "$i"
  # The exec-root is runtime state, emptied like /run on a reboot. Left in place, its
  # containerd.pid can name a killed containerd that is still a zombie (this machine's PID 1 reaps
  # orphans late), and the next dockerd then waits for that containerd until it gives up.
  rm -rf "${STATE:?}/h$i/exec" "$STATE/h$i/docker.pid" "$STATE/h$i/docker.sock"
  [[ -z $pid ]] || echo "=== $(date -u +%FT%TZ) engine stopped ($mode)" >>"$LOGS/h$i.log"
}

# --- engines that remap user namespaces -------------------------------------------------------

# A host marked here runs dockerd --userns-remap=default: dockerd makes the `dockremap` user and its
# /etc/subuid and /etc/subgid ranges itself, and root in a container is host uid 100000. The mark
# lives with the data-root, so start-engine and a plain `up` keep it until `down`. Remapping keeps
# images and containers in a data-root of their own (h$i/100000.100000), so a host is marked before
# its first start; a running engine marked later is restarted once and given the images again.
userns_mark() { echo "$DATA/h$1/userns-remap"; }

userns_flags() {
  [[ ! -e $(userns_mark "$1") ]] || echo "--userns-remap=default"
}

engine_remaps() { # whether host i's running dockerd was started with --userns-remap
  local pid
  pid=$(engine_pid "$1")
  [[ -n $pid ]] && tr '\0' ' ' <"/proc/$pid/cmdline" | grep -qF -- "--userns-remap="
}

userns_mark_hosts() { # mark hosts for remapping; restart (gracefully) a running engine that does not remap yet
  local list=$1 i
  for i in ${list//,/ }; do
    check_index "$i"
    mkdir -p "$DATA/h$i"
    touch "$(userns_mark "$i")"
    if [[ -n $(engine_pid "$i") ]] && ! engine_remaps "$i"; then
      log "host $i: restarting dockerd with --userns-remap=default"
      stop_engine "$i" graceful
    fi
  done
}

# --- engines over TLS and ssh -----------------------------------------------------------------

# A host whose server certificate exists serves its engine over TCP too, from then on: start-engine
# keeps the listener, as a real host's daemon.json would. --tlsverify: no client certificate signed by
# the test CA, no answer.
tls_flags() {
  local i=$1
  [[ -s $TLS_DIR/h$i/cert.pem ]] || return 0
  echo "-H tcp://$(address "$i"):$TLS_PORT --tlsverify --tlscacert $TLS_DIR/ca.pem" \
    "--tlscert $TLS_DIR/h$i/cert.pem --tlskey $TLS_DIR/h$i/key.pem"
}

tls_files() { # the test CA and client certificate once, host i's server certificate (IP SAN) once
  local i=$1 dir=$TLS_DIR/h$1
  mkdir -p "$dir"
  chmod 700 "$TLS_DIR"
  if [[ ! -s $TLS_DIR/ca.pem ]]; then
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 3650 -subj "/CN=Berth test-bed CA" \
      -keyout "$TLS_DIR/ca-key.pem" -out "$TLS_DIR/ca.pem" 2>/dev/null
  fi
  if [[ ! -s $TLS_DIR/client-cert.pem ]]; then
    openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=berth" \
      -keyout "$TLS_DIR/client-key.pem" -out "$TLS_DIR/client.csr" 2>/dev/null
    openssl x509 -req -in "$TLS_DIR/client.csr" -CA "$TLS_DIR/ca.pem" -CAkey "$TLS_DIR/ca-key.pem" \
      -CAcreateserial -days 3650 -extfile <(echo "extendedKeyUsage = clientAuth") \
      -out "$TLS_DIR/client-cert.pem" 2>/dev/null
  fi
  if [[ ! -s $dir/cert.pem ]]; then
    openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=$(address "$i")" \
      -keyout "$dir/key.pem" -out "$dir/server.csr" 2>/dev/null
    # The client checks the address it dialled against the IP SAN, as it would a DNS name.
    openssl x509 -req -in "$dir/server.csr" -CA "$TLS_DIR/ca.pem" -CAkey "$TLS_DIR/ca-key.pem" \
      -CAcreateserial -days 3650 -out "$dir/cert.pem" 2>/dev/null \
      -extfile <(printf 'subjectAltName = IP:%s\nextendedKeyUsage = serverAuth\n' "$(address "$i")")
  fi
  chmod 600 "$TLS_DIR"/*key.pem "$dir/key.pem"
}

tls_answers() {
  [[ $(timeout 10 docker -H "tcp://$(address "$1"):$TLS_PORT" --tlsverify --tlscacert "$TLS_DIR/ca.pem" \
    --tlscert "$TLS_DIR/client-cert.pem" --tlskey "$TLS_DIR/client-key.pem" \
    version --format '{{.Server.Version}}' 2>/dev/null) ]]
}

ssh_pid() { # the pid of host i's sshd, or nothing
  local pid
  pid=$(cat "$STATE/h$1/sshd.pid" 2>/dev/null) || return 0
  if [[ -n $pid && $(cat "/proc/$pid/comm" 2>/dev/null) == sshd ]] && alive "$pid"; then echo "$pid"; fi
  return 0
}

ssh_files() { # the client key once; host i's host key, sshd_config and authorized_keys
  local i=$1 dir=$SSH_DIR/h$1
  mkdir -p "$dir" /run/sshd # /run/sshd: sshd's privilege-separation directory, made by its init script elsewhere
  chmod 755 "$SSH_DIR" "$dir"
  [[ -s $SSH_DIR/client_ed25519 ]] || ssh-keygen -q -t ed25519 -N '' -C berth-testbed -f "$SSH_DIR/client_ed25519"
  [[ -s $dir/host_ed25519_key ]] || ssh-keygen -q -t ed25519 -N '' -C "berth-h$i" -f "$dir/host_ed25519_key"
  getent passwd "$SSH_USER" >/dev/null ||
    useradd --system --no-create-home --home-dir /nonexistent --shell /bin/sh --groups docker "$SSH_USER"
  # No password, but not locked either ("!"): sshd without PAM refuses a locked account even a key.
  [[ $(getent shadow "$SSH_USER" | cut -d: -f2) == '*' ]] || usermod -p '*' "$SSH_USER"
  # The key may do one thing: reach this host's engine (docker-py's ssh transport runs exactly
  # `docker system dial-stdio`; the forced command also names the socket, which is not the default one).
  printf 'restrict,command="docker -H %s system dial-stdio" %s\n' "$(engine_url "$i")" \
    "$(cat "$SSH_DIR/client_ed25519.pub")" >"$dir/authorized_keys"
  cat >"$dir/sshd_config" <<CONFIG
ListenAddress $(address "$i"):22
HostKey $dir/host_ed25519_key
PidFile $STATE/h$i/sshd.pid
AuthorizedKeysFile $dir/authorized_keys
AllowUsers $SSH_USER
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin no
UsePAM no
DisableForwarding yes
PermitTTY no
CONFIG
}

ssh_start() {
  local i=$1 deadline
  ssh_files "$i"  # cheap, and sshd reads the user and authorized_keys at each login
  [[ -n $(ssh_pid "$i") ]] && return 0
  echo "=== $(date -u +%FT%TZ) starting sshd" >>"$LOGS/h$i-sshd.log"
  # In the host's namespace, detached like its dockerd; -D so that the pid file names sshd itself.
  nsenter --net="/run/netns/$(netns "$i")" -- setsid /usr/sbin/sshd -D -f "$SSH_DIR/h$i/sshd_config" \
    -E "$LOGS/h$i-sshd.log" </dev/null >>"$LOGS/h$i-sshd.log" 2>&1 9>&- &
  deadline=$((SECONDS + START_TIMEOUT))
  until ssh-keyscan -T 2 -t ed25519 "$(address "$i")" 2>/dev/null | grep -q ssh-ed25519; do
    if ((SECONDS >= deadline)); then
      log "host $i: sshd did not answer; last lines of $LOGS/h$i-sshd.log:"
      tail -n 20 "$LOGS/h$i-sshd.log" >&2
      return 1
    fi
    sleep 0.1
  done
}

ssh_restart_if_set_up() { # stop-engine --kill kills every process in the namespace, sshd included
  [[ ! -e $SSH_DIR/h$1/sshd_config ]] || ssh_start "$1"
}

ssh_stop() {
  local pid
  pid=$(ssh_pid "$1")
  [[ -z $pid ]] || kill -TERM "$pid"
  rm -f "$STATE/h$1/sshd.pid"
}

remove_host() {
  local i=$1 dir
  ssh_stop "$i"
  stop_engine "$i" kill
  ip link del "bh$i-o" 2>/dev/null || true
  ip netns del "$(netns "$i")" 2>/dev/null || true
  rm -rf "${STATE:?}/h$i" "${DATA:?}/h$i" "${TLS_DIR:?}/h$i" "${SSH_DIR:?}/h$i"
  # Docker leaves the parent cgroup it was given; children first, then the parent.
  while read -r dir; do
    find "$dir" -depth -type d -exec rmdir {} + 2>/dev/null || true
  done < <(host_cgroup_dirs "$i")
}

# --- the registry -----------------------------------------------------------------------------

# Debian's docker-registry (distribution 2.8) serves htpasswd (bcrypt) basic auth over plain HTTP,
# and an engine sends credentials to a registry it lists in insecure-registries: no TLS is needed.
# Its password is made once and kept in $REGISTRY_DIR/password (0600) for the tests to read.

registry_pid() { # the pid of the test bed's registry, or nothing
  local pid
  pid=$(cat "$STATE/registry.pid" 2>/dev/null) || return 0
  if [[ -n $pid && $(cat "/proc/$pid/comm" 2>/dev/null) == docker-registry ]] && alive "$pid" &&
    tr '\0' ' ' <"/proc/$pid/cmdline" | grep -qF -- "$REGISTRY_DIR/config.yml"; then
    echo "$pid"
  fi
  return 0
}

registry_answers() { # the registry is up and asks for credentials
  [[ $(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "http://$REGISTRY/v2/") == 401 ]]
}

registry_files() {
  mkdir -p "$REGISTRY_DIR/storage" "$LOGS"
  chmod 700 "$REGISTRY_DIR"
  if [[ ! -s $REGISTRY_DIR/password ]]; then
    (umask 077 && od -An -N16 -tx1 /dev/urandom | tr -d ' \n' >"$REGISTRY_DIR/password")
  fi
  # htpasswd -i reads the password from stdin, so it never shows in a process list.
  htpasswd -c -i -B "$REGISTRY_DIR/htpasswd" "$REGISTRY_USER" <"$REGISTRY_DIR/password" 2>/dev/null
  (umask 077 && printf 'machine %s login %s password %s\n' "${REGISTRY%:*}" "$REGISTRY_USER" \
    "$(cat "$REGISTRY_DIR/password")" >"$REGISTRY_DIR/netrc")
  cat >"$REGISTRY_DIR/config.yml" <<CONFIG
version: 0.1
log:
  level: info
storage:
  filesystem:
    rootdirectory: $REGISTRY_DIR/storage
  delete:
    enabled: true
http:
  addr: $REGISTRY
auth:
  htpasswd:
    realm: berth-testbed
    path: $REGISTRY_DIR/htpasswd
CONFIG
}

registry_start() {
  local deadline
  if [[ -n $(registry_pid) ]] && registry_answers; then return 0; fi
  registry_stop
  registry_files
  echo "=== $(date -u +%FT%TZ) starting docker-registry" >>"$LOGS/registry.log"
  # In host $REGISTRY_HOST's namespace, so that it answers on that host's own address, as a registry
  # on the hosts' network would; detached like the engines (see start_engine).
  nsenter --net="/run/netns/$(netns "$REGISTRY_HOST")" -- setsid docker-registry serve "$REGISTRY_DIR/config.yml" \
    </dev/null >>"$LOGS/registry.log" 2>&1 9>&- &
  echo $! >"$STATE/registry.pid"
  deadline=$((SECONDS + START_TIMEOUT))
  until registry_answers; do
    if ((SECONDS >= deadline)) || [[ -z $(registry_pid) ]]; then
      log "the registry did not answer at $REGISTRY; last lines of $LOGS/registry.log:"
      tail -n 20 "$LOGS/registry.log" >&2
      return 1
    fi
    sleep 0.1
  done
  log "registry answers at http://$REGISTRY (user $REGISTRY_USER, password in $REGISTRY_DIR/password)"
}

registry_stop() {
  local pid deadline
  pid=$(registry_pid)
  if [[ -n $pid ]]; then
    kill -TERM "$pid"
    deadline=$((SECONDS + STOP_TIMEOUT))
    while alive "$pid" && ((SECONDS < deadline)); do sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
    echo "=== $(date -u +%FT%TZ) docker-registry stopped" >>"$LOGS/registry.log"
  fi
  rm -f "$STATE/registry.pid"
}

registry_has() { # repository:tag image-id -> whether the registry holds that image there (config digest = image ID)
  local reference=$1 id=$2 manifest
  manifest=$(curl -fsS --max-time 5 --netrc-file "$REGISTRY_DIR/netrc" \
    -H 'Accept: application/vnd.docker.distribution.manifest.v2+json' \
    "http://$REGISTRY/v2/${reference%:*}/manifests/${reference##*:}" 2>/dev/null) || return 1
  [[ $manifest == *"\"$id\""* ]]
}

registry_push() { # push the test images from host $REGISTRY_HOST's engine where the registry lacks them
  local entry local_tag reference id config out status=0
  config=$(mktemp -d)
  for entry in "${REGISTRY_IMAGES[@]}"; do
    IFS='|' read -r local_tag reference <<<"$entry"
    id=$(engine "$REGISTRY_HOST" image inspect --format '{{.Id}}' "$local_tag") ||
      die "host $REGISTRY_HOST lacks $local_tag: run testbed/hosts.sh up"
    registry_has "$reference" "$id" && continue
    # A throw-away client config: the login must not land in this machine's ~/.docker/config.json.
    # Its output is only shown on failure: it warns that the throw-away file holds the credentials.
    if [[ ! -e $config/config.json ]] && ! out=$(DOCKER_CONFIG=$config engine "$REGISTRY_HOST" login \
      -u "$REGISTRY_USER" --password-stdin "$REGISTRY" <"$REGISTRY_DIR/password" 2>&1); then
      rm -rf "$config"
      die "cannot log in to $REGISTRY from host $REGISTRY_HOST: $out"
    fi
    log "pushing $local_tag as $REGISTRY/$reference"
    engine "$REGISTRY_HOST" tag "$local_tag" "$REGISTRY/$reference"
    DOCKER_CONFIG=$config engine "$REGISTRY_HOST" push "$REGISTRY/$reference" >/dev/null || status=1
  done
  rm -rf "$config"
  return "$status"
}

# --- commands ---------------------------------------------------------------------------------

cmd_up() {
  local n=2 remap= i
  local -a urls=()
  while (($#)); do
    case $1 in
      --userns-remap) remap=${2:?--userns-remap I[,J...]}; shift 2 ;;
      --userns-remap=*) remap=${1#*=}; shift ;;
      *) n=$1; shift ;;
    esac
  done
  check_index "$n"
  for i in ${remap//,/ }; do ((i <= n)) || n=$i; done # a host named there is brought up too
  with_lock
  ensure_prerequisites
  ensure_routing
  [[ -z $remap ]] || userns_mark_hosts "$remap"
  for i in $(seq 1 "$n"); do
    ensure_network "$i"
    if [[ -n $(engine_pid "$i") ]]; then configure_engine "$i"; else start_engine "$i"; fi
  done
  for i in $(seq 1 "$n"); do
    wait_engine "$i"
    ssh_restart_if_set_up "$i"
    urls+=("$(engine_url "$i")")
  done
  "$HERE/images.sh" "${urls[@]}"
  for i in $(known_hosts); do
    ((i > n)) && log "host $i is also up (left as it is)"
  done
  return 0
}

cmd_down() {
  local i
  with_lock
  registry_stop
  rm -rf "${REGISTRY_DIR:?}"
  for i in $(known_hosts); do
    log "removing host $i"
    remove_host "$i"
  done
  remove_routing
  rm -rf "${TLS_DIR:?}" "${SSH_DIR:?}"
  # `ip netns add` bind-mounted /run/netns onto itself; undo that when no namespace is left.
  if [[ -d /run/netns && -z $(ls -A /run/netns) ]] && mountpoint -q /run/netns; then
    umount /run/netns && rmdir /run/netns
  fi
}

cmd_status() {
  local i pid version link running
  printf '%-4s %-42s %-12s %-5s %-28s %s\n' HOST ENGINE ADDRESS LINK DOCKERD CONTAINERS
  for i in $(known_hosts); do
    link=$(ip -br link show "bh$i-o" 2>/dev/null | awk '{print $2}') || true
    pid=$(engine_pid "$i")
    version=$(answers "$i") || true
    if [[ -n $version ]]; then
      running="$(engine "$i" ps -q | wc -l) running"
      if engine_remaps "$i"; then running="$running, userns-remap"; fi
      version="$version (pid $pid)"
    else
      running=-
      version=${pid:+"not answering (pid $pid)"}
    fi
    printf '%-4s %-42s %-12s %-5s %-28s %s\n' "h$i" "$(engine_url "$i")" "$(address "$i")" \
      "${link:-none}" "${version:-stopped}" "$running"
  done
}

cmd_check() { # the facts the test bed promises, checked by hand-sized means
  local i j port failed=0 name=berth-testbed-check
  local -A ports=()
  local -a hosts
  mapfile -t hosts < <(known_hosts)
  ((${#hosts[@]})) || die "no hosts: run testbed/hosts.sh up"
  for i in "${hosts[@]}"; do
    engine "$i" rm -f "$name" >/dev/null 2>&1 || true
    engine "$i" run -d --name "$name" --cap-drop ALL --security-opt no-new-privileges --read-only \
      --tmpfs /tmp --pids-limit 64 -p "$(address "$i")::8080" berth-test/web:v1 >/dev/null
    ports[$i]=$(engine "$i" port "$name" 8080/tcp | head -1 | sed 's/.*://')
  done
  sleep 0.5
  for i in "${hosts[@]}"; do
    port=${ports[$i]}
    if curl -fsS --max-time 5 "http://$(address "$i"):$port/" | grep -qx 'web v1'; then
      log "h$i: web v1 answers at $(address "$i"):$port from this machine"
    else
      log "h$i: nothing answers at $(address "$i"):$port"; failed=1
    fi
    for j in "${hosts[@]}"; do
      [[ $j == "$i" ]] && continue
      # Not `wget -T`: Debian's busybox 1.35 wget segfaults with it.
      if engine "$i" exec "$name" timeout 5 wget -qO- "http://$(address "$j"):${ports[$j]}/" | grep -qx 'web v1'; then
        log "h$i: reaches h$j at $(address "$j"):${ports[$j]}"
      else
        log "h$i: cannot reach h$j at $(address "$j"):${ports[$j]}"; failed=1
      fi
    done
  done
  for i in "${hosts[@]}"; do engine "$i" rm -f "$name" >/dev/null; done
  return "$failed"
}

cmd_stop_engine() {
  local i=$1 mode=graceful
  check_index "$i"
  case ${2:-} in
    "") ;;
    --kill) mode="kill" ;;
    *) die "stop-engine I [--kill]" ;;
  esac
  with_lock
  stop_engine "$i" "$mode"
}

cmd_start_engine() {
  local i=$1
  check_index "$i"
  with_lock
  ensure_routing
  ensure_network "$i"
  start_engine "$i"
  wait_engine "$i"
  ssh_restart_if_set_up "$i"
}

cmd_registry_up() {
  local i
  with_lock
  ensure_prerequisites registry
  answers "$REGISTRY_HOST" >/dev/null || die "host $REGISTRY_HOST's engine does not answer: run testbed/hosts.sh up"
  for i in $(known_hosts); do
    [[ -z $(engine_pid "$i") ]] || configure_engine "$i"
  done
  registry_start
  registry_push
}

cmd_registry_down() {
  with_lock
  registry_stop
}

cmd_tls_up() {
  local i=$1
  check_index "$i"
  with_lock
  answers "$i" >/dev/null || die "host $i's engine does not answer: run testbed/hosts.sh up $i"
  tls_files "$i"
  tls_answers "$i" && return 0
  # dockerd takes listeners from its command line only: restart it with the TCP one (once).
  log "host $i: restarting dockerd to listen on tcp://$(address "$i"):$TLS_PORT with TLS"
  stop_engine "$i" graceful
  start_engine "$i"
  wait_engine "$i"
  tls_answers "$i" || die "host $i: no TLS answer on $(address "$i"):$TLS_PORT; see $LOGS/h$i.log"
}

cmd_ssh_up() {
  local i=$1
  check_index "$i"
  with_lock
  answers "$i" >/dev/null || die "host $i's engine does not answer: run testbed/hosts.sh up $i"
  if ! [[ -x /usr/sbin/sshd ]]; then
    log "installing openssh-server"
    apt-get update -qq
    # Its post-install would start an sshd for the whole machine: policy-rc.d forbids that, as in
    # Debian's container images.
    local policy=/usr/sbin/policy-rc.d made=
    [[ -e $policy ]] || { printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod 755 "$policy" && made=1; }
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends openssh-server >/dev/null
    [[ -z $made ]] || rm -f "$policy"
  fi
  ssh_start "$i"
}

cmd_link() {
  local i=$1 state=$2
  check_index "$i"
  ip link show "bh$i-o" >/dev/null 2>&1 || die "host $i has no link: run testbed/hosts.sh up"
  ip link set "bh$i-o" "$state"
}

main() {
  [[ $EUID == 0 ]] || die "run as root: it creates namespaces and starts dockerd"
  local cmd=${1:-}
  shift || true
  case $cmd in
    up) cmd_up "$@" ;;
    down) cmd_down ;;
    status) cmd_status ;;
    check) cmd_check ;;
    stop-engine) cmd_stop_engine "${1:?stop-engine I [--kill]}" "${2:-}" ;;
    start-engine) cmd_start_engine "${1:?start-engine I}" ;;
    link-down) cmd_link "${1:?link-down I}" down ;;
    link-up) cmd_link "${1:?link-up I}" up ;;
    registry-up) cmd_registry_up ;;
    registry-down) cmd_registry_down ;;
    tls-up) cmd_tls_up "${1:?tls-up I}" ;;
    ssh-up) cmd_ssh_up "${1:?ssh-up I}" ;;
    *) sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//' >&2; exit 2 ;;
  esac
}

main "$@"
