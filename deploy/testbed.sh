#!/usr/bin/env bash
# deploy/testbed.sh -- a real 3-node Patroni cluster (Debian 12: patroni 3.0.2, etcd 3.4,
# PostgreSQL 15) on loopback only, for pgmesh's tests, benchmarks and demo.
#
# Prerequisites: deploy/install-deps.sh (patroni, etcd-server, postgresql-15, curl).
# As root, PostgreSQL runs as the `postgres` user (it refuses root). The superuser `postgres` has
# the password TB_SUPERUSER_PASSWORD (default postgres-pass) over TCP; the unix socket is trust.
#
# usage:
#   testbed.sh up     [BASE_DIR]   start (or resume) etcd + N patroni nodes, wait until healthy
#                                  (1 leader + N-1 streaming replicas), print ports; exit 0 when healthy
#   testbed.sh status [BASE_DIR]   show every process and node; exit 0 only when healthy
#   testbed.sh down   [BASE_DIR]   stop everything it started (by PID) and remove BASE_DIR
#   testbed.sh leader [BASE_DIR]    print the current leader's name
#   testbed.sh kill NODE|leader [BASE_DIR]
#                                  SIGKILL that node's patroni AND postmaster (unplanned failover);
#                                  a later `up` restarts it and it rejoins (pg_rewind)
#
# BASE_DIR defaults to $TB_BASE or /tmp/pgmesh-testbed.  Settings (env, read only when a testbed is
# created, then kept in BASE_DIR/testbed.env): TB_NODES=3 TB_SCOPE=demo TB_ETCD_PORT=12379 (peer port +1)
# TB_PG_PORT=15432 TB_API_PORT=18008 (node i uses port+i-1) TB_TTL=10 TB_LOOP_WAIT=2 TB_RETRY_TIMEOUT=4
# TB_PG_BIN=/usr/lib/postgresql/15/bin TB_USER=postgres (used when run as root) TB_TIMEOUT=120.
# TB_SSL_CERT=FILE TB_SSL_KEY=FILE (PEM; unset = ssl off, as before): every node gets a copy (mode 600,
# owned by the PostgreSQL user) and runs with ssl=on, clients may then use TLS or not.
set -Eeuo pipefail

PROG=$(basename "$0")
die() { echo "$PROG: error: $*" >&2; exit 1; }
log() { echo "$PROG: $*" >&2; }
now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$(now)" 'BEGIN{printf "%.1f", b-a}'; }

CMD=${1:-}
[ $# -gt 0 ] && shift
KILL_TARGET=
if [ "$CMD" = kill ]; then
    KILL_TARGET=${1:-}; [ -n "$KILL_TARGET" ] || die "usage: $PROG kill NODE|leader [BASE_DIR]"; shift
fi
BASE=${1:-${TB_BASE:-${TMPDIR:-/tmp}/pgmesh-testbed}}
case "$BASE" in /*) ;; *) BASE="$PWD/$BASE" ;; esac
BASE=${BASE%/}
case "$BASE" in ""|/|/tmp|/root|/home|/var|/usr|/etc) die "refusing to use BASE_DIR '$BASE'" ;; esac
MARKER="$BASE/.testbed"
SETTINGS="$BASE/testbed.env"

# ---------------------------------------------------------------- settings
load_settings() {
    if [ -f "$SETTINGS" ]; then
        # shellcheck disable=SC1090
        . "$SETTINGS"
    fi
    TB_NODES=${TB_NODES:-3}
    TB_SCOPE=${TB_SCOPE:-demo}
    TB_ETCD_PORT=${TB_ETCD_PORT:-12379}
    TB_PG_PORT=${TB_PG_PORT:-15432}
    TB_API_PORT=${TB_API_PORT:-18008}
    TB_TTL=${TB_TTL:-10}
    TB_LOOP_WAIT=${TB_LOOP_WAIT:-2}
    TB_RETRY_TIMEOUT=${TB_RETRY_TIMEOUT:-4}
    TB_USER=${TB_USER:-postgres}
    TB_TIMEOUT=${TB_TIMEOUT:-120}
    TB_SUPERUSER_PASSWORD=${TB_SUPERUSER_PASSWORD:-postgres-pass}
    TB_REPLICATION_PASSWORD=${TB_REPLICATION_PASSWORD:-rep-pass}
    TB_REWIND_PASSWORD=${TB_REWIND_PASSWORD:-rewind-pass}
    TB_SSL_CERT=${TB_SSL_CERT:-}
    TB_SSL_KEY=${TB_SSL_KEY:-}
    if [ -z "${TB_PG_BIN:-}" ]; then
        local v
        for v in 15 16 17 14 13; do
            if [ -x "/usr/lib/postgresql/$v/bin/postgres" ]; then TB_PG_BIN=/usr/lib/postgresql/$v/bin; break; fi
        done
    fi
    TB_PG_BIN=${TB_PG_BIN:-/usr/lib/postgresql/15/bin}
    # Patroni 3.0.2 + etcd3: retry_timeout < 2 makes every leader-lock update fail ("deadline < 1")
    [ "$TB_RETRY_TIMEOUT" -ge 2 ] || die "TB_RETRY_TIMEOUT must be >= 2 (got $TB_RETRY_TIMEOUT)"
    [ "$TB_TTL" -ge $((TB_LOOP_WAIT + 2 * TB_RETRY_TIMEOUT)) ] ||
        die "need TB_LOOP_WAIT + 2*TB_RETRY_TIMEOUT <= TB_TTL (got $TB_LOOP_WAIT/$TB_RETRY_TIMEOUT/$TB_TTL)"
}

save_settings() {
    cat > "$SETTINGS" <<EOF
TB_NODES=$TB_NODES
TB_SCOPE=$TB_SCOPE
TB_ETCD_PORT=$TB_ETCD_PORT
TB_PG_PORT=$TB_PG_PORT
TB_API_PORT=$TB_API_PORT
TB_TTL=$TB_TTL
TB_LOOP_WAIT=$TB_LOOP_WAIT
TB_RETRY_TIMEOUT=$TB_RETRY_TIMEOUT
TB_USER=$TB_USER
TB_TIMEOUT=$TB_TIMEOUT
TB_PG_BIN=$TB_PG_BIN
TB_SUPERUSER_PASSWORD=$TB_SUPERUSER_PASSWORD
TB_REPLICATION_PASSWORD=$TB_REPLICATION_PASSWORD
TB_REWIND_PASSWORD=$TB_REWIND_PASSWORD
TB_SSL_CERT=$TB_SSL_CERT
TB_SSL_KEY=$TB_SSL_KEY
EOF
}

node_names() { local i; for ((i = 1; i <= TB_NODES; i++)); do echo "n$i"; done; }
node_idx() { echo "${1#n}"; }
pg_port() { echo $((TB_PG_PORT + $(node_idx "$1") - 1)); }
api_port() { echo $((TB_API_PORT + $(node_idx "$1") - 1)); }

# ---------------------------------------------------------------- process helpers (by PID only)
# cmdline_has PID STRING: the live process PID has STRING in its command line (guards against PID reuse)
cmdline_has() {
    local pid=$1 want=$2 cmd
    [ -n "$pid" ] && [ -r "/proc/$pid/cmdline" ] || return 1
    cmd=$(tr '\0' ' ' < "/proc/$pid/cmdline" 2>/dev/null) || return 1
    [[ "$cmd" == *"$want"* ]]
}
readpid() { [ -f "$1" ] && head -n1 "$1" | tr -dc '0-9' || true; }
etcd_pid() { local p; p=$(readpid "$BASE/etcd.pid"); cmdline_has "$p" "--data-dir $BASE/etcd/data" && echo "$p" || true; }
patroni_pid() { local p; p=$(readpid "$BASE/$1/patroni.pid"); cmdline_has "$p" "$BASE/$1/patroni.yml" && echo "$p" || true; }
postmaster_pid() { local p; p=$(readpid "$BASE/$1/data/postmaster.pid"); cmdline_has "$p" "-D $BASE/$1/data" && echo "$p" || true; }

port_in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
# children_of PID: PIDs whose parent is PID (reads /proc, no procps needed)
children_of() { awk -v pp="$1" '/^PPid:/ && $2 == pp { split(FILENAME, a, "/"); print a[3] }' /proc/[0-9]*/status 2>/dev/null || true; }

# wait_gone SECONDS PID... : wait until none of the PIDs exists
wait_gone() {
    local deadline=$(( $(date +%s) + $1 )); shift
    local p alive
    while :; do
        alive=0
        for p in "$@"; do [ -n "$p" ] && kill -0 "$p" 2>/dev/null && alive=1; done
        [ $alive = 0 ] && return 0
        [ "$(date +%s)" -ge "$deadline" ] && return 1
        sleep 0.2
    done
}

IS_ROOT=0; [ "$(id -u)" = 0 ] && IS_ROOT=1

# spawn PIDFILE LOGFILE CMD...: start CMD detached (own session, stdin /dev/null, our lock fd closed),
# as TB_USER when we are root; PIDFILE receives the PID of CMD itself (sh execs into it).
spawn() {
    local pidfile=$1 logfile=$2; shift 2
    local -a pre=()
    if [ $IS_ROOT = 1 ]; then
        pre=(setpriv "--reuid=$TB_USER" "--regid=$(id -g "$TB_USER")" --init-groups)
    fi
    setsid "${pre[@]}" env -i PATH="$TB_PG_BIN:/usr/sbin:/usr/bin:/sbin:/bin" \
        HOME="$(getent passwd "$RUN_USER" | cut -d: -f6)" USER="$RUN_USER" LOGNAME="$RUN_USER" \
        LANG=C.UTF-8 LC_ALL=C.UTF-8 \
        sh -c 'echo $$ > "$0"; exec "$@"' "$pidfile" "$@" \
        </dev/null >>"$logfile" 2>&1 9>&- &
    local i
    for i in $(seq 1 50); do [ -s "$pidfile" ] && return 0; sleep 0.1; done
    die "could not start: $* (see $logfile)"
}

as_run_user() {
    if [ $IS_ROOT = 1 ]; then setpriv "--reuid=$TB_USER" "--regid=$(id -g "$TB_USER")" --init-groups "$@"; else "$@"; fi
}

# ---------------------------------------------------------------- cluster inspection (system python3)
# prints one line per node plus a summary line; exit 0 when 1 leader + all others streaming replicas
inspect() {
    local args=() n
    for n in $(node_names); do args+=("$n" "$(api_port "$n")" "$(pg_port "$n")"); done
    /usr/bin/python3 - "$@" "${args[@]}" <<'PY'
import json, sys, urllib.request, urllib.error
quiet = sys.argv[1] == 'quiet'
a = sys.argv[2:]
nodes = [(a[i], int(a[i + 1]), int(a[i + 2])) for i in range(0, len(a), 3)]

def get(port, path):
    try:
        with urllib.request.urlopen('http://127.0.0.1:%d%s' % (port, path), timeout=2) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()
    except Exception:
        return None, b''

leaders, replicas, info = [], [], {}
for name, api, pg in nodes:
    pc, body = get(api, '/primary')
    rc, _ = get(api, '/replica')
    try:
        st = json.loads(body) if body else {}
    except ValueError:
        st = {}
    info[name] = st
    if pc == 200:
        leaders.append(name)
    if rc == 200:
        replicas.append(name)
    if not quiet:
        print('%-4s pg=127.0.0.1:%d api=http://127.0.0.1:%d  /primary=%s /replica=%s  role=%s state=%s timeline=%s'
              % (name, pg, api, pc or '---', rc or '---', st.get('role', '-'), st.get('state', '-'),
                 st.get('timeline', '-')))
streaming = []
if len(leaders) == 1:
    streaming = [r.get('application_name') for r in info[leaders[0]].get('replication', [])
                 if r.get('state') == 'streaming']
want = [n for n, _, _ in nodes if n not in leaders]
healthy = len(leaders) == 1 and sorted(replicas) == sorted(want) and sorted(streaming) == sorted(want)
print('cluster: %s leader=%s replicas=%s streaming=%s'
      % ('HEALTHY' if healthy else 'NOT-HEALTHY', ','.join(leaders) or '-', ','.join(sorted(replicas)) or '-',
         ','.join(sorted(streaming)) or '-'))
sys.exit(0 if healthy else 1)
PY
}

current_leader() { inspect quiet | sed -n 's/.* leader=\([^ ]*\) .*/\1/p' | grep -v '^-$' | grep -v ',' || true; }

# ---------------------------------------------------------------- config
write_node_config() {
    local n=$1 d="$BASE/$1"
    [ -f "$d/patroni.yml" ] && return 0
    local ssl_params=""
    if [ -n "$TB_SSL_CERT" ] || [ -n "$TB_SSL_KEY" ]; then
        [ -r "$TB_SSL_CERT" ] && [ -r "$TB_SSL_KEY" ] || die "TB_SSL_CERT and TB_SSL_KEY must both name readable PEM files"
        install -m 600 "$TB_SSL_CERT" "$d/server.crt"
        install -m 600 "$TB_SSL_KEY" "$d/server.key"
        if [ $IS_ROOT = 1 ]; then chown "$TB_USER:$(id -gn "$TB_USER")" "$d/server.crt" "$d/server.key"; fi
        ssl_params=$(printf '\n    ssl: "on"\n    ssl_cert_file: %s\n    ssl_key_file: %s' "$d/server.crt" "$d/server.key")
    fi
    cat > "$d/patroni.yml" <<EOF
scope: $TB_SCOPE
namespace: /service/
name: $n

restapi:
  listen: 127.0.0.1:$(api_port "$n")
  connect_address: 127.0.0.1:$(api_port "$n")

etcd3:
  hosts: 127.0.0.1:$TB_ETCD_PORT

bootstrap:
  dcs:
    ttl: $TB_TTL
    loop_wait: $TB_LOOP_WAIT
    retry_timeout: $TB_RETRY_TIMEOUT
    maximum_lag_on_failover: 1048576
    postgresql:
      use_pg_rewind: true
      use_slots: true
      parameters:
        wal_level: replica
        hot_standby: "on"
        wal_log_hints: "on"
        max_connections: 100
        max_wal_senders: 10
        max_replication_slots: 10
        wal_keep_size: 128MB
        wal_retrieve_retry_interval: 1s
  initdb:
    - encoding: UTF8
    - locale: C.UTF-8
    - data-checksums

postgresql:
  listen: 127.0.0.1:$(pg_port "$n")
  connect_address: 127.0.0.1:$(pg_port "$n")
  data_dir: $d/data
  bin_dir: $TB_PG_BIN
  pgpass: $d/pgpass
  use_unix_socket: true
  basebackup:
    - checkpoint: fast
  authentication:
    superuser:
      username: postgres
      password: $TB_SUPERUSER_PASSWORD
    replication:
      username: replicator
      password: $TB_REPLICATION_PASSWORD
    rewind:
      username: rewind_user
      password: $TB_REWIND_PASSWORD
  parameters:
    unix_socket_directories: $d
    shared_buffers: 32MB$ssl_params
  pg_hba:
    - local all all trust
    - host all all 127.0.0.1/32 scram-sha-256
    - host all all ::1/128 scram-sha-256
    - host replication replicator 127.0.0.1/32 scram-sha-256
    - host replication replicator ::1/128 scram-sha-256

tags:
  nofailover: false
  noloadbalance: false
  clonefrom: false
  nosync: false
EOF
}

write_ports_env() {
    local n
    {
        echo "TB_BASE=$BASE"
        echo "ETCD_URL=http://127.0.0.1:$TB_ETCD_PORT"
        echo "PATRONI_SCOPE=$TB_SCOPE"
        echo "PGUSER=postgres"
        echo "PGPASSWORD=$TB_SUPERUSER_PASSWORD"
        echo "PATRONICTL_CONFIG=$BASE/patronictl.yml"
        for n in $(node_names); do
            echo "${n^^}_PG_PORT=$(pg_port "$n")"
            echo "${n^^}_API_URL=http://127.0.0.1:$(api_port "$n")"
            echo "${n^^}_SOCKET_DIR=$BASE/$n"
        done
    } > "$BASE/ports.env"
}

# ---------------------------------------------------------------- commands
lock() {
    exec 9>"$BASE/.lock"
    flock -w 60 9 || die "another $PROG is running on $BASE"
}

preflight() {
    local c
    for c in etcd /usr/bin/patroni /usr/bin/patronictl /usr/bin/python3 curl setsid flock; do
        command -v "$c" >/dev/null || die "missing $c (apt-get install -y patroni etcd-server postgresql-15 curl)"
    done
    [ -x "$TB_PG_BIN/postgres" ] && [ -x "$TB_PG_BIN/initdb" ] ||
        die "no PostgreSQL server binaries in $TB_PG_BIN (apt-get install -y postgresql-15, or set TB_PG_BIN)"
    if [ $IS_ROOT = 1 ]; then
        command -v setpriv >/dev/null || die "missing setpriv (util-linux)"
        id -u "$TB_USER" >/dev/null 2>&1 || die "user $TB_USER does not exist (PostgreSQL refuses to run as root)"
        RUN_USER=$TB_USER
    else
        RUN_USER=$(id -un)
    fi
    # unix socket path must fit in sun_path (107 bytes)
    [ $(( ${#BASE} + 20 )) -le 107 ] || die "BASE_DIR too long for unix sockets: $BASE"
}

cmd_up() {
    local t0; t0=$(now)
    if [ -e "$BASE" ] && [ ! -f "$MARKER" ] && [ -n "$(ls -A "$BASE" 2>/dev/null)" ]; then
        die "$BASE exists, is not empty and was not created by $PROG; refusing to touch it"
    fi
    load_settings
    preflight
    local n
    # --- check every port we are about to bind before starting anything
    local p busy=""
    if [ -z "$(etcd_pid)" ]; then
        for p in "$TB_ETCD_PORT" $((TB_ETCD_PORT + 1)); do
            if port_in_use "$p"; then busy="$busy $p(etcd)"; fi
        done
    fi
    for n in $(node_names); do
        if [ -z "$(patroni_pid "$n")" ]; then
            if port_in_use "$(api_port "$n")"; then busy="$busy $(api_port "$n")($n api)"; fi
            if [ -z "$(postmaster_pid "$n")" ] && port_in_use "$(pg_port "$n")"; then
                busy="$busy $(pg_port "$n")($n pg)"
            fi
        fi
    done
    [ -z "$busy" ] || die "ports already in use by something else:$busy"

    mkdir -p "$BASE" 2>/dev/null || die "cannot create $BASE (as $(id -un))"
    lock
    if [ ! -f "$MARKER" ]; then
        save_settings
        touch "$MARKER"
        log "creating new testbed in $BASE ($TB_NODES nodes, ttl=$TB_TTL loop_wait=$TB_LOOP_WAIT retry_timeout=$TB_RETRY_TIMEOUT, pg bin $TB_PG_BIN)"
    else
        log "resuming testbed in $BASE"
    fi
    mkdir -p "$BASE/etcd"
    for n in $(node_names); do mkdir -p "$BASE/$n"; chmod 700 "$BASE/$n"; done
    chmod 755 "$BASE"
    if [ $IS_ROOT = 1 ]; then chown -R "$TB_USER:$(id -gn "$TB_USER")" "$BASE"; fi
    as_run_user test -w "$BASE/etcd" -a -x "$BASE" ||
        die "$RUN_USER cannot write $BASE (a parent directory is not traversable?); use a base dir under /tmp"
    printf 'etcd3:\n  hosts: 127.0.0.1:%s\nscope: %s\nnamespace: /service/\n' "$TB_ETCD_PORT" "$TB_SCOPE" > "$BASE/patronictl.yml"

    # --- etcd (v3 API; Debian's etcd 3.4 has the v2 API disabled by default)
    if [ -n "$(etcd_pid)" ]; then
        log "etcd already running (pid $(etcd_pid))"
    else
        rm -f "$BASE/etcd.pid"
        spawn "$BASE/etcd.pid" "$BASE/etcd.log" etcd --name tb --data-dir "$BASE/etcd/data" \
            --listen-client-urls "http://127.0.0.1:$TB_ETCD_PORT" \
            --advertise-client-urls "http://127.0.0.1:$TB_ETCD_PORT" \
            --listen-peer-urls "http://127.0.0.1:$((TB_ETCD_PORT + 1))" \
            --initial-advertise-peer-urls "http://127.0.0.1:$((TB_ETCD_PORT + 1))" \
            --initial-cluster "tb=http://127.0.0.1:$((TB_ETCD_PORT + 1))" \
            --initial-cluster-state new --initial-cluster-token "tb-$TB_SCOPE" \
            --logger zap --log-outputs stderr
        log "etcd started (pid $(readpid "$BASE/etcd.pid"))"
    fi
    local i ok=0
    for i in $(seq 1 150); do
        if curl -sf -m 1 "http://127.0.0.1:$TB_ETCD_PORT/health" | grep -q '"health":"true"'; then ok=1; break; fi
        [ -n "$(etcd_pid)" ] || break
        sleep 0.2
    done
    [ $ok = 1 ] || { tail -n 20 "$BASE/etcd.log" >&2; die "etcd did not become healthy"; }

    # --- patroni nodes
    for n in $(node_names); do
        write_node_config "$n"
        if [ -n "$(patroni_pid "$n")" ]; then
            log "$n: patroni already running (pid $(patroni_pid "$n"))"
            continue
        fi
        rm -f "$BASE/$n/patroni.pid"
        spawn "$BASE/$n/patroni.pid" "$BASE/$n/patroni.log" /usr/bin/patroni "$BASE/$n/patroni.yml"
        log "$n: patroni started (pid $(readpid "$BASE/$n/patroni.pid")), pg 127.0.0.1:$(pg_port "$n"), api 127.0.0.1:$(api_port "$n")"
    done
    write_ports_env

    # --- wait for 1 leader + N-1 streaming replicas
    local deadline=$(( $(date +%s) + TB_TIMEOUT ))
    while ! inspect quiet >/dev/null; do
        for n in $(node_names); do
            [ -n "$(patroni_pid "$n")" ] || { tail -n 30 "$BASE/$n/patroni.log" >&2; die "$n: patroni exited"; }
        done
        if [ "$(date +%s)" -ge "$deadline" ]; then
            inspect verbose >&2 || true
            for n in $(node_names); do echo "--- $n/patroni.log" >&2; tail -n 15 "$BASE/$n/patroni.log" >&2; done
            die "cluster not healthy after ${TB_TIMEOUT}s"
        fi
        sleep 0.25
    done
    log "cluster healthy after $(elapsed "$t0")s"
    inspect verbose || true
    echo "--- $BASE/ports.env"
    cat "$BASE/ports.env"
}

cmd_status() {
    if [ ! -f "$MARKER" ]; then echo "no testbed in $BASE"; return 1; fi
    load_settings
    local p n rc=0
    p=$(etcd_pid)
    if [ -n "$p" ]; then
        echo "etcd pid=$p http://127.0.0.1:$TB_ETCD_PORT health=$(curl -s -m 2 "http://127.0.0.1:$TB_ETCD_PORT/health" || echo '-')"
    else
        echo "etcd NOT RUNNING"; rc=1
    fi
    for n in $(node_names); do
        echo "$n patroni pid=$(patroni_pid "$n" | grep . || echo 'NOT-RUNNING') postmaster pid=$(postmaster_pid "$n" | grep . || echo 'NOT-RUNNING')"
    done
    inspect verbose || rc=1
    if [ -n "$(etcd_pid)" ]; then
        timeout 20 /usr/bin/patronictl -c "$BASE/patronictl.yml" list "$TB_SCOPE" 2>&1 || true
    fi
    return $rc
}

cmd_kill() {
    [ -f "$MARKER" ] || die "no testbed in $BASE"
    load_settings
    local n=$KILL_TARGET
    if [ "$n" = leader ]; then
        n=$(current_leader); [ -n "$n" ] || die "no (single) leader to kill"
    fi
    [ -d "$BASE/$n" ] || die "no node $n"
    local pp pm
    pp=$(patroni_pid "$n"); pm=$(postmaster_pid "$n")
    if [ -n "$pp" ]; then kill -KILL "$pp"; fi
    if [ -n "$pm" ]; then kill -KILL "$pm"; fi
    echo "killed $n: patroni pid=${pp:-none} postmaster pid=${pm:-none} at $(date +%s.%N)"
}

cmd_down() {
    if [ ! -e "$BASE" ]; then echo "nothing to do: $BASE does not exist"; return 0; fi
    [ -f "$MARKER" ] || die "$BASE was not created by $PROG; refusing to touch it"
    load_settings
    lock
    local t0 n p pids=() pms=() kids=()
    t0=$(now)
    # 1) patroni: SIGTERM makes it stop its PostgreSQL cleanly
    for n in $(node_names); do
        p=$(patroni_pid "$n")
        if [ -n "$p" ]; then kill -TERM "$p" 2>/dev/null || true; pids+=("$p"); fi
    done
    if ! wait_gone 40 "${pids[@]}"; then
        for p in "${pids[@]}"; do
            if cmdline_has "$p" "$BASE/"; then kill -KILL "$p" 2>/dev/null || true; fi
        done
        wait_gone 5 "${pids[@]}" || true
    fi
    # 2) any postmaster left (patroni was SIGKILLed / crashed): immediate shutdown, then SIGKILL it and its children
    for n in $(node_names); do
        p=$(postmaster_pid "$n")
        if [ -n "$p" ]; then
            pms+=("$p")
            # shellcheck disable=SC2207
            kids+=($(children_of "$p"))
            kill -QUIT "$p" 2>/dev/null || true
        fi
    done
    if [ ${#pms[@]} -gt 0 ] && ! wait_gone 10 "${pms[@]}"; then
        for p in "${pms[@]}"; do
            if cmdline_has "$p" "-D $BASE/"; then kill -KILL "$p" 2>/dev/null || true; fi
        done
    fi
    if [ ${#kids[@]} -gt 0 ] && ! wait_gone 5 "${kids[@]}"; then
        for p in "${kids[@]}"; do
            if cmdline_has "$p" "postgres"; then kill -KILL "$p" 2>/dev/null || true; fi
        done
    fi
    # 3) etcd
    p=$(etcd_pid)
    if [ -n "$p" ]; then
        kill -TERM "$p" 2>/dev/null || true
        if ! wait_gone 15 "$p"; then
            if cmdline_has "$p" "--data-dir $BASE/"; then kill -KILL "$p" 2>/dev/null || true; fi
            wait_gone 5 "$p" || true
        fi
    fi
    rm -rf "$BASE"
    echo "testbed in $BASE stopped and removed ($(elapsed "$t0")s)"
}

case "$CMD" in
    up) cmd_up ;;
    down) cmd_down ;;
    status) cmd_status ;;
    kill) cmd_kill ;;
    leader) load_settings; current_leader ;;
    *) awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; exit 2 ;;
esac
