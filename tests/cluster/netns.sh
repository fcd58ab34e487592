# shellcheck shell=bash
# Hosts made of network namespaces, for the tests that need a real network
# between dfs processes (sourced after lib.sh, not run).
#
# One "switch" namespace holds a bridge; every host is a namespace joined to
# it by a veth pair (eth0 on the host side, v-NAME on the switch side), with
# an address in 10.213.0.0/24 and no route anywhere else.  Cutting a host off
# is setting its switch port down.  Nothing is created in the root namespace:
# both ends of each veth are made inside the namespaces.
#
# Every host gets its own folder $DIR/NAME with its own copy of the cluster
# key, so nothing relies on a shared folder either.  Processes run with
# `ip netns exec`; their pids are remembered and netns_down (on exit) stops
# them, then deletes the namespaces, which removes the veths with them.
#
# Layout of netns_cluster_up: masters m1..m3 at 10.213.0.1..3 (:9400, status
# page :9480), chunkservers c1..cN at 10.213.0.11.. (:9420), the client cl at
# 10.213.0.100.  Tests run client commands through $CLBIN/dfsadmin, dfsput,
# dfsget (and faultload when built), which run inside cl.

NS_PREFIX="dfs$$r$RANDOM"
NS_SWITCH="$NS_PREFIX-sw"
NS_NET=10.213.0
NS_MASTER_PORT=9400
NS_HTTP_PORT=9480
NS_CS_PORT=9420
NS_NAMES=()              # host names created, for the teardown
declare -A NS_PID=()     # "name" -> pid of the dfs process on that host
CLBIN=$DIR/clbin

ns_of() { echo "$NS_PREFIX-$1"; }
ns_exec() { local h=$1; shift; ip netns exec "$(ns_of "$h")" "$@"; }
ns_addr() {
    case $1 in
        m*) echo "$NS_NET.${1#m}" ;;
        c[0-9]*) echo "$NS_NET.$((10 + ${1#c}))" ;;
        cl) echo "$NS_NET.100" ;;
    esac
}

netns_skip() {
    echo "SKIP: $(basename "$0" .sh): $*"
    exit 0
}

netns_down() {
    local pid ns n
    for pid in "${NS_PID[@]}"; do kill -TERM "$pid" 2>/dev/null; done
    for n in $(seq 50); do
        local left=0
        for pid in "${NS_PID[@]}"; do kill -0 "$pid" 2>/dev/null && left=1; done
        [ $left = 0 ] && break
        sleep 0.1
    done
    for pid in "${NS_PID[@]}"; do kill -KILL "$pid" 2>/dev/null; done
    # Anything else still inside our namespaces (a client a test left
    # behind) was started by this test: end it by pid before the delete.
    for n in "${NS_NAMES[@]}" sw; do
        ns=$(ns_of "$n")
        [ -e "/run/netns/$ns" ] || continue
        for pid in $(ip netns pids "$ns" 2>/dev/null); do kill -KILL "$pid" 2>/dev/null; done
        ip netns del "$ns" 2>/dev/null
    done
    NS_PID=()
}

netns_cleanup() {
    netns_down
    cleanup
}
trap netns_cleanup EXIT
# A timeout or ^C must still tear the namespaces down.
trap 'exit 143' TERM INT HUP

# Creates the switch, or skips the test with the reason it cannot.
netns_switch_up() {
    [ "$(id -u)" = 0 ] || netns_skip "not root: network namespaces need CAP_NET_ADMIN"
    command -v ip >/dev/null || netns_skip "no ip command (iproute2)"
    local err
    err=$(ip netns add "$NS_SWITCH" 2>&1) || netns_skip "cannot create a network namespace: $err"
    NS_NAMES+=(sw)
    err=$(ip -n "$NS_SWITCH" link add br0 type bridge 2>&1) || netns_skip "no bridge support: $err"
    ip -n "$NS_SWITCH" link set br0 up
}

# netns_host NAME: a host namespace on the switch, at its address.
netns_host() {
    local h=$1 ns err
    ns=$(ns_of "$h")
    err=$(ip netns add "$ns" 2>&1) || netns_skip "cannot create a network namespace: $err"
    NS_NAMES+=("$h")
    err=$(ip -n "$NS_SWITCH" link add "v-$h" type veth peer name eth0 netns "$ns" 2>&1) \
        || netns_skip "no veth support: $err"
    ip -n "$NS_SWITCH" link set "v-$h" master br0 up || fail "bridge port for $h"
    ip -n "$ns" addr add "$(ns_addr "$h")/24" dev eth0 || fail "address of $h"
    ip -n "$ns" link set eth0 up || fail "eth0 of $h"
    ip -n "$ns" link set lo up || fail "lo of $h"
    mkdir -p "$DIR/$h"
}

# Cuts HOST off the network (its switch port down), and back.
netns_cut() { ip -n "$NS_SWITCH" link set "v-$1" down; }
netns_heal() { ip -n "$NS_SWITCH" link set "v-$1" up; }

# netns_start NAME PROGRAM ARGS...: runs PROGRAM inside NAME, output to
# $DIR/NAME/stderr.log.  `ip netns exec` execs, so $! is PROGRAM's pid.
netns_start() {
    local h=$1; shift
    ns_exec "$h" "$@" </dev/null >>"$DIR/$h/stderr.log" 2>&1 &
    NS_PID[$h]=$!
}

netns_alive() { kill -0 "${NS_PID[$1]}" 2>/dev/null; }

# Client wrappers: the tools run inside the client host, with its key.
netns_client_bin() {
    mkdir -p "$CLBIN"
    local t
    for t in dfsadmin dfsput dfsget faultload; do
        local exe=$BIN/$t
        [ $t = faultload ] && exe=$TOOLS/faultload
        [ -x "$exe" ] || continue
        printf '#!/bin/sh\nexec ip netns exec %s %s "$@"\n' "$(ns_of cl)" "$exe" > "$CLBIN/$t"
        chmod +x "$CLBIN/$t"
    done
}

# One master's own view as "role term leader" (asked from inside its host,
# so it answers even when cut off); empty when it does not answer in 5 s.
netns_master_view() {
    ns_exec "$1" timeout 5 "$BIN/dfsadmin" -M "$(ns_addr "$1"):$NS_MASTER_PORT" \
        -k "$DIR/$1/cluster.key" status --json --no-follow 2>/dev/null \
        | python3 -c "import json,sys; d=json.load(sys.stdin); print(d['role'], d['term'], d['leader'])" 2>/dev/null
}

# The leader as mN, asked from the client host through DFS_MASTERS (the
# answer of a master that says it leads), or nothing.
netns_leader() {
    local id
    id=$(timeout 10 "$CLBIN/dfsadmin" status --json 2>/dev/null \
        | python3 -c "import json,sys; d=json.load(sys.stdin); print(d['leader'] if d.get('role') == 'leader' else '')" 2>/dev/null)
    [ -n "$id" ] && [ "$id" != 0 ] && echo "m$id"
}

netns_wait_leader() {
    local deadline=$((SECONDS + ${1:-30})) l
    while [ $SECONDS -lt $deadline ]; do
        l=$(netns_leader) && { echo "$l"; return 0; }
        sleep 0.2
    done
    return 1
}

# Waits until the leader reports chunkserver ADDR up.
netns_wait_chunkserver() {
    local deadline=$((SECONDS + ${2:-30}))
    while [ $SECONDS -lt $deadline ]; do
        timeout 10 "$CLBIN/dfsadmin" status --json 2>/dev/null | python3 -c "
import json, sys
d = json.load(sys.stdin)
sys.exit(0 if any(c['address'] == '$1' and c['state'] == 'up' for c in d['chunkservers']) else 1)
" 2>/dev/null && return 0
        sleep 0.2
    done
    return 1
}

netns_master_conf() {
    local h=$1 id=${1#m} spec="" http="" m
    for m in $NS_MASTERS_HOSTS; do
        spec="$spec${spec:+,}${m#m}=$(ns_addr "$m"):$NS_MASTER_PORT"
        http="$http${http:+,}${m#m}=$(ns_addr "$m"):$NS_HTTP_PORT"
    done
    cat > "$DIR/$h/master.conf" <<EOF
id = $id
listen = $(ns_addr "$h"):$NS_MASTER_PORT
http = $(ns_addr "$h"):$NS_HTTP_PORT
data_dir = $DIR/$h/data
masters = $spec
masters_http = $http
key_file = $DIR/$h/cluster.key
cluster_id = $NS_CLUSTER_ID
log_file = $DIR/$h/master.log
EOF
}

netns_cs_conf() {
    local h=$1 masters="" m
    for m in $NS_MASTERS_HOSTS; do masters="$masters${masters:+,}$(ns_addr "$m"):$NS_MASTER_PORT"; done
    cat > "$DIR/$h/chunkserver.conf" <<EOF
listen = $(ns_addr "$h"):$NS_CS_PORT
data_dir = $DIR/$h/data
masters = $masters
key_file = $DIR/$h/cluster.key
rack = rack${h#c}
reserved_space = 0
log_file = $DIR/$h/chunkserver.log
EOF
}

# netns_cluster_up [CHUNKSERVERS]: three masters, N chunkservers (default
# 3) and the client, each its own host; exports DFS_MASTERS and
# DFS_KEY_FILE for the client wrappers.  Returns once every chunkserver is
# registered with the leader.
netns_cluster_up() {
    local ncs=${1:-3} h i
    netns_switch_up
    NS_MASTERS_HOSTS="m1 m2 m3"
    NS_CS_HOSTS=$(for i in $(seq "$ncs"); do echo "c$i"; done)
    for h in $NS_MASTERS_HOSTS $NS_CS_HOSTS cl; do netns_host "$h"; done
    "$BIN/dfs-master" --keygen "$DIR/cluster.key" >/dev/null || fail "keygen"
    NS_CLUSTER_ID=$("$BIN/dfs-master" --new-cluster-id) || fail "cluster id"
    # The key is distributed as an operator would: a copy on every host.
    for h in $NS_MASTERS_HOSTS $NS_CS_HOSTS cl; do
        install -m 0600 "$DIR/cluster.key" "$DIR/$h/cluster.key"
    done
    DFS_MASTERS=""
    for h in $NS_MASTERS_HOSTS; do DFS_MASTERS="$DFS_MASTERS${DFS_MASTERS:+,}$(ns_addr "$h"):$NS_MASTER_PORT"; done
    DFS_KEY_FILE=$DIR/cl/cluster.key
    export DFS_MASTERS DFS_KEY_FILE
    netns_client_bin
    for h in $NS_MASTERS_HOSTS; do
        netns_master_conf "$h"
        netns_start "$h" "$BIN/dfs-master" -c "$DIR/$h/master.conf" --init
    done
    netns_wait_leader 30 >/dev/null || fail "no leader elected across the namespaces"
    for h in $NS_CS_HOSTS; do
        netns_cs_conf "$h"
        netns_start "$h" "$BIN/dfs-chunkserver" -c "$DIR/$h/chunkserver.conf"
        netns_wait_chunkserver "$(ns_addr "$h"):$NS_CS_PORT" 30 \
            || fail "chunkserver $h did not register"
    done
}
