#!/usr/bin/env bash
# A throw-away lab for a real VIP, on this machine only (docs/getting-started.md walks through it):
# a Linux bridge with 198.18.7.254/24 in the root namespace, a PostgreSQL 15 in namespace
# `<tag>-db` (198.18.7.10:5432), and three pgmesh nodes in `<tag>-n1..3` (198.18.7.1-3) with the
# linux VIP driver holding 198.18.7.100 on the MASTER, each serving a `primary` listener on :5432.
# A client in the root namespace writes through the VIP; kill the MASTER and the VIP moves.
# 198.18.0.0/15 is the benchmarking range: nothing outside the lab answers there.
#
# usage (root: namespaces, a bridge, PostgreSQL as the postgres user):
#   deploy/vip-lab.sh up     [DIR]   build the lab, start everything, wait for a MASTER; print what to try
#   deploy/vip-lab.sh status [DIR]   the mesh as node 1 sees it
#   deploy/vip-lab.sh down   [DIR]   stop everything it started (by PID), remove the namespaces, the bridge and DIR
# DIR defaults to /tmp/pgmesh-vip-lab. PGMESH_LAB_TAG (default pgmlab) prefixes the namespaces and
# the bridge; PGMESH_LAB_NET (default 198.18.7) is the lab's /24, apart from the 198.18.0.0/24 the
# netns tests use; PGMESH_LAB_WAIT_S (default 180) bounds the wait for a MASTER serving writes.
set -Eeuo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
CMD=${1:-}
DIR=${2:-/tmp/pgmesh-vip-lab}
TAG=${PGMESH_LAB_TAG:-pgmlab}
BRIDGE=${TAG}br
NET=${PGMESH_LAB_NET:-198.18.7}
VIP=$NET.100
DB_ADDR=$NET.10
DB_PASSWORD=lab-pass
PG_BIN=/usr/lib/postgresql/15/bin
NODES=(n1 n2 n3)
declare -A PRIORITY=([n1]=110 [n2]=105 [n3]=100) ADDR=([n1]=$NET.1 [n2]=$NET.2 [n3]=$NET.3)

die() { echo "vip-lab: $*" >&2; exit 1; }
[ "$(id -u)" = 0 ] || die "needs root (network namespaces, a bridge, PostgreSQL as the postgres user)"
case "$DIR" in /*) ;; *) DIR="$PWD/$DIR" ;; esac
case "$DIR" in "" | / | /tmp | /root | /home | /var | /usr | /etc) die "refusing to use DIR '$DIR'" ;; esac

cli() { node --max-semi-space-size=2 "$ROOT/mesh-node/dist/pgmesh.mjs" "$@"; }

alive() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

down() {
  local n pid i
  for n in "${NODES[@]}"; do
    if alive "$DIR/$n.pid"; then kill -TERM "$(cat "$DIR/$n.pid")" 2>/dev/null || true; fi
  done
  for i in $(seq 1 50); do
    pid=
    for n in "${NODES[@]}"; do alive "$DIR/$n.pid" && pid=1; done
    [ -z "$pid" ] && break
    sleep 0.2
  done
  for n in "${NODES[@]}"; do
    if alive "$DIR/$n.pid"; then kill -KILL "$(cat "$DIR/$n.pid")" 2>/dev/null || true; fi
    rm -f "$DIR/$n.pid"
  done
  if [ -f "$DIR/pg/postmaster.pid" ]; then
    runuser -u postgres -- "$PG_BIN/pg_ctl" -D "$DIR/pg" -m fast -w stop >/dev/null 2>&1 || true
  fi
  for n in db "${NODES[@]}"; do
    ip netns del "$TAG-$n" 2>/dev/null || true
    ip link del "${TAG}v$n" 2>/dev/null || true
  done
  ip link del "$BRIDGE" 2>/dev/null || true
  if [ -f "$DIR/.vip-lab" ]; then rm -rf "$DIR"; fi
}

host() { # host NAME ADDRESS: a namespace with eth0 on the bridge
  local ns=$TAG-$1 veth=${TAG}v$1
  ip netns add "$ns"
  ip link add "$veth" type veth peer name eth0 netns "$ns"
  ip link set "$veth" master "$BRIDGE" up
  ip -n "$ns" addr add "$2/24" dev eth0
  ip -n "$ns" link set eth0 up
  ip -n "$ns" link set lo up
}

node_config() { # node_config NAME
  local n=$1 others=() o
  for o in "${NODES[@]}"; do [ "$o" = "$n" ] || others+=("\"${ADDR[$o]}:7946\""); done
  cat <<YAML
node:
  id: $n
  priority: ${PRIORITY[$n]}
  gossip: { listen: "${ADDR[$n]}:7946" }
  # a throw-away lab inside its own namespaces: the status is open to whoever reaches it there
  api: { listen: "${ADDR[$n]}:7947", protectReads: false }
  join: [$(IFS=,; echo "${others[*]}")]
  secretFile: $DIR/cluster.secret
  dataDir: $DIR/data/$n
  vip: { interface: eth0 }
  listenerBinds: { write: "0.0.0.0:5432" }
cluster:
  name: vip-lab
  members:
$(for o in "${NODES[@]}"; do echo "    - { id: $o, priority: ${PRIORITY[$o]} }"; done)
  vip: { address: $VIP/24, driver: linux }
  # slower than the defaults (lease 250 ms), so a lab on a busy laptop or a shared VM does not
  # lose its lease to a scheduling hiccup; a failover then takes about 3-4 s
  election: { leaseMs: 3000, heartbeatIntervalMs: 200, electionTimeoutMinMs: 3200, electionTimeoutMaxMs: 4000, statusIntervalMs: 500 }
  databases:
    - { name: db, address: "$DB_ADDR:5432" }
  databaseChecks: { use: [postgres], passwordFile: $DIR/db.pass }
  listeners:
    - { name: write, bind: "0.0.0.0:5432", role: primary }
YAML
}

up() {
  for tool in ip arping nft "$PG_BIN/initdb" psql curl; do
    command -v "$tool" >/dev/null 2>&1 || die "$tool is missing: run deploy/install-deps.sh"
  done
  local bin
  bin=$("$ROOT/deploy/runtime.sh") && export PATH="$bin:$PATH"
  [ -f "$ROOT/mesh-node/dist/pgmesh.mjs" ] || (cd "$ROOT" && npm run --silent build)
  down
  mkdir -p "$DIR/data"
  touch "$DIR/.vip-lab"
  # the postgres user must reach the data directory
  chmod 755 "$DIR"
  runuser -u postgres -- test -x "$DIR" ||
    die "the postgres user cannot reach $DIR (a parent directory is private): choose one under /tmp"

  ip link add "$BRIDGE" type bridge
  ip addr add "$NET.254/24" dev "$BRIDGE"
  ip link set "$BRIDGE" up
  host db "$DB_ADDR"
  local n
  for n in "${NODES[@]}"; do host "$n" "${ADDR[$n]}"; done

  echo "vip-lab: PostgreSQL in $TAG-db at $DB_ADDR:5432 ..."
  install -d -o postgres -g postgres -m 700 "$DIR/pg" "$DIR/pgsock"
  printf '%s\n' "$DB_PASSWORD" >"$DIR/db.pass"
  chmod 600 "$DIR/db.pass"
  install -o postgres -g postgres -m 600 "$DIR/db.pass" "$DIR/pgsock/pw"
  cd /
  runuser -u postgres -- "$PG_BIN/initdb" -D "$DIR/pg" -U postgres --pwfile="$DIR/pgsock/pw" \
    --auth-local=trust --auth-host=scram-sha-256 >"$DIR/initdb.log" 2>&1 || {
    tail -n 20 "$DIR/initdb.log" >&2
    die "initdb failed"
  }
  echo "host all all $NET.0/24 scram-sha-256" >>"$DIR/pg/pg_hba.conf"
  ip netns exec "$TAG-db" runuser -u postgres -- "$PG_BIN/pg_ctl" -D "$DIR/pg" -w -l "$DIR/pgsock/pg.log" \
    -o "-c listen_addresses=$DB_ADDR -c port=5432 -c unix_socket_directories=$DIR/pgsock" start >/dev/null || {
    tail -n 20 "$DIR/pgsock/pg.log" >&2
    die "PostgreSQL did not start"
  }

  echo "vip-lab: 3 pgmesh nodes in $TAG-n1..3, VIP $VIP on the MASTER ..."
  cli keygen --out "$DIR/cluster.secret" 2>/dev/null
  for n in "${NODES[@]}"; do
    node_config "$n" >"$DIR/$n.yaml"
    # `ip netns exec` replaces itself with node: $! is the node's PID
    ip netns exec "$TAG-$n" node --max-semi-space-size=2 "$ROOT/mesh-node/dist/pgmesh.mjs" start --config "$DIR/$n.yaml" \
      >"$DIR/$n.log" 2>&1 &
    echo $! >"$DIR/$n.pid"
  done

  local deadline=$((SECONDS + ${PGMESH_LAB_WAIT_S:-180}))
  until curl -s -m 2 "http://${ADDR[n1]}:7947/v1/backends" | grep -q '"primary":"db"' &&
    PGPASSWORD=$DB_PASSWORD PGCONNECT_TIMEOUT=2 psql -h "$VIP" -U postgres -tAc 'select 1' >/dev/null 2>&1; do
    if [ $SECONDS -ge $deadline ]; then
      tail -n 5 "$DIR"/n*.log >&2
      die "no MASTER holding $VIP with the primary agreed within ${PGMESH_LAB_WAIT_S:-180} s (logs in $DIR)"
    fi
    sleep 0.5
  done
  cli status --api "${ADDR[n1]}:7947"
  cat <<MSG
The lab is up (logs in $DIR/n*.log). A write through the VIP, from the root namespace:
  PGPASSWORD=$DB_PASSWORD psql -h $VIP -U postgres -c 'create table if not exists hello (at timestamptz default now(), via text)'
  PGPASSWORD=$DB_PASSWORD psql -h $VIP -U postgres -c "insert into hello (via) values ('the VIP') returning *"
Who holds the VIP:
  ip -n $TAG-n1 -br addr show eth0
  curl -s -o /dev/null -w '%{http_code}\\n' http://${ADDR[n1]}:7947/master    # 200 on the MASTER
Kill the MASTER: within about 4 s n2 (the next priority) holds the VIP, and writes go on through it:
  kill -9 \$(cat $DIR/n1.pid)
  PGPASSWORD=$DB_PASSWORD psql -h $VIP -U postgres -c "insert into hello (via) values ('the VIP, after a failover') returning *"
  ip -n $TAG-n2 -br addr show eth0
Stop everything:
  deploy/vip-lab.sh down $DIR
MSG
}

case "$CMD" in
  up) up ;;
  status)
    bin=$("$ROOT/deploy/runtime.sh") && export PATH="$bin:$PATH"
    cli status --api "${ADDR[n1]}:7947"
    ;;
  down)
    down
    echo "vip-lab: down"
    ;;
  *)
    awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"
    exit 2
    ;;
esac
