#!/usr/bin/env bash
# The pgmesh demo: a real Patroni cluster (etcd + 3 PostgreSQL 15 nodes, deploy/testbed.sh) with
# 3 pgmesh nodes in front, all on loopback. Installs and builds on first run, starts everything,
# waits until every node lists every other and agrees on the primary, prints what to try, and
# stops everything on Ctrl-C. Usage: deploy/demo.sh [stop]
#   PGMESH_DEMO_PORT=7946   first gossip port (node i: PORT+10*(i-1) gossip, +1 API, +2 write
#                           listener, +3 read listener; PostgreSQL PORT+100.., Patroni PORT+110..,
#                           etcd PORT+120..)
#   PGMESH_DEMO_DB=0        the mesh alone, without PostgreSQL (no root needed)
#   PGMESH_DEMO_SECONDS=N   stop by itself after N seconds (for CI); default: until Ctrl-C
set -Eeuo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
DEMO=${PGMESH_DEMO_DIR:-$ROOT/.demo}
BASE=${PGMESH_DEMO_PORT:-7946}
# Node.js 24 (deploy/runtime.sh installs it into .runtime/ when the system's node is older)
command -v npm >/dev/null 2>&1 || deploy/install-deps.sh
RUNTIME_BIN=$("$ROOT/deploy/runtime.sh")
export PATH="$RUNTIME_BIN:$PATH"
CLI=(node --max-semi-space-size=2 "$ROOT/mesh-node/dist/pgmesh.mjs")

gossip_port() { echo $((BASE + 10 * ($1 - 1))); }
api_port() { echo $((BASE + 10 * ($1 - 1) + 1)); }
write_port() { echo $((BASE + 10 * ($1 - 1) + 2)); }
read_port() { echo $((BASE + 10 * ($1 - 1) + 3)); }
WITH_DB=${PGMESH_DEMO_DB:-1}
[ "$(id -u)" = 0 ] || WITH_DB=0 # the testbed runs PostgreSQL as the postgres user
# the postgres user must reach the testbed's directory: not under a private home
TESTBED=${PGMESH_DEMO_TESTBED:-/tmp/pgmesh-demo-testbed-$BASE}
export TB_PG_PORT=$((BASE + 100)) TB_API_PORT=$((BASE + 110)) TB_ETCD_PORT=$((BASE + 120))
DB_PASSWORD=postgres-pass

stop_nodes() {
  local f pid pids=()
  for f in "$DEMO"/n*.pid; do
    [ -f "$f" ] || continue
    pid=$(cat "$f")
    if [ -r "/proc/$pid/cmdline" ] && tr '\0' ' ' <"/proc/$pid/cmdline" | grep -q "pgmesh.mjs start"; then
      kill -TERM "$pid" 2>/dev/null || true
      pids+=("$pid")
    fi
    rm -f "$f"
  done
  local i
  for i in $(seq 1 50); do
    local alive=0
    for pid in "${pids[@]}"; do kill -0 "$pid" 2>/dev/null && alive=1; done
    [ $alive = 0 ] && return 0
    sleep 0.2
  done
  for pid in "${pids[@]}"; do kill -KILL "$pid" 2>/dev/null || true; done
}

stop_all() {
  stop_nodes
  if [ -f "$TESTBED/.testbed" ]; then "$ROOT/deploy/testbed.sh" down "$TESTBED" >/dev/null 2>&1 || true; fi
}

if [ "${1:-}" = stop ]; then
  stop_all
  echo "demo stopped"
  exit 0
fi

if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  deploy/install-deps.sh
  npm install --no-audit --no-fund
fi
npm run --silent build

mkdir -p "$DEMO"
stop_nodes
[ -f "$DEMO/cluster.secret" ] || "${CLI[@]}" keygen --out "$DEMO/cluster.secret"

if [ "$WITH_DB" = 1 ]; then
  "$ROOT/deploy/testbed.sh" down "$TESTBED" >/dev/null 2>&1 || true
  echo "starting a Patroni cluster (etcd + 3 PostgreSQL nodes) in $TESTBED ..."
  "$ROOT/deploy/testbed.sh" up "$TESTBED" >"$DEMO/testbed.log" 2>&1 || {
    tail -n 20 "$DEMO/testbed.log" >&2
    # the EXIT trap is not set yet: stop what the failed start left running
    "$ROOT/deploy/testbed.sh" down "$TESTBED" >/dev/null 2>&1 || true
    exit 1
  }
  printf '%s\n' "$DB_PASSWORD" >"$DEMO/db.pass"
  chmod 600 "$DEMO/db.pass"
fi

node_config() { # node_config I: node I's config: the same cluster section everywhere, its own listener ports
  local i=$1 f="$DEMO/n$1.yaml"
  {
    if [ "$WITH_DB" = 1 ]; then
      echo "node:"
      echo "  listenerBinds: { write: \"127.0.0.1:$(write_port "$i")\", read: \"127.0.0.1:$(read_port "$i")\" }"
    fi
    echo "cluster:"
    echo "  name: demo"
    if [ "$WITH_DB" = 1 ]; then
      echo "  databaseChecks: { passwordFile: $DEMO/db.pass }"
      echo "  databases:"
      local j
      for j in 1 2 3; do
        echo "    - { name: pg$j, address: \"127.0.0.1:$((TB_PG_PORT + j - 1))\", patroniUrl: \"http://127.0.0.1:$((TB_API_PORT + j - 1))\" }"
      done
      echo "  listeners:"
      echo "    - { name: write, bind: \"127.0.0.1:$(write_port 1)\", role: primary }"
      echo "    - { name: read, bind: \"127.0.0.1:$(read_port 1)\", role: replica }"
    fi
  } >"$f"
  echo "$f"
}

start_node() { # start_node I PRIORITY [JOIN_PORT]
  local i=$1 prio=$2 join=()
  [ -n "${3:-}" ] && join=(--join "127.0.0.1:$3")
  "${CLI[@]}" start --config "$(node_config "$i")" --id "n$i" --priority "$prio" \
    --gossip "127.0.0.1:$(gossip_port "$i")" --api "127.0.0.1:$(api_port "$i")" \
    --secret-file "$DEMO/cluster.secret" --data-dir "$DEMO/n$i" "${join[@]}" \
    >"$DEMO/n$i.log" 2>&1 &
  echo $! >"$DEMO/n$i.pid"
}

SLEEP_PID=
trap '[ -z "$SLEEP_PID" ] || kill "$SLEEP_PID" 2>/dev/null; stop_all; echo; echo "demo stopped"' EXIT
trap 'exit 0' INT TERM
start_node 1 110
start_node 2 105 "$(gossip_port 1)"
start_node 3 100 "$(gossip_port 1)"

deadline=$((SECONDS + 30))
until "${CLI[@]}" status --api "127.0.0.1:$(api_port 3)" 2>/dev/null | grep -q '3 alive'; do
  if [ $SECONDS -ge $deadline ]; then
    echo "demo: the mesh did not form within 30 s; logs:" >&2
    tail -n 5 "$DEMO"/n*.log >&2
    exit 1
  fi
  sleep 0.3
done
if [ "$WITH_DB" = 1 ]; then
  deadline=$((SECONDS + 30))
  until curl -s "http://127.0.0.1:$(api_port 1)/v1/backends" | grep -q '"primary":"pg'; do
    if [ $SECONDS -ge $deadline ]; then
      echo "demo: the nodes did not agree on a primary within 30 s; logs:" >&2
      tail -n 5 "$DEMO"/n*.log >&2
      exit 1
    fi
    sleep 0.3
  done
fi

"${CLI[@]}" status --api "127.0.0.1:$(api_port 1)"
cat <<MSG
The mesh is up: 3 pgmesh nodes on loopback (logs in $DEMO/n*.log).

Try, in another terminal, in $ROOT:
  . deploy/env.sh                                   # Node.js 24 and this checkout's pgmesh on PATH
  curl -s http://127.0.0.1:$(api_port 1)/v1/status
  pgmesh status --api 127.0.0.1:$(api_port 2)
  curl -si http://127.0.0.1:$(api_port 1)/master    # 200 on the MASTER (n1, priority 110), 503 elsewhere

$(if [ "$WITH_DB" = 1 ]; then cat <<DB
PostgreSQL through pgmesh (password $DB_PASSWORD); every node serves both listeners:
  PGPASSWORD=$DB_PASSWORD psql -h 127.0.0.1 -p $(write_port 1) -U postgres -c 'select inet_server_port(), pg_is_in_recovery()'   # the primary
  PGPASSWORD=$DB_PASSWORD psql -h 127.0.0.1 -p $(read_port 2) -U postgres -c 'select inet_server_port(), pg_is_in_recovery()'    # a replica
  curl -s http://127.0.0.1:$(api_port 1)/v1/backends       # what every node sees, and the agreed primary
Move the primary and watch writes follow (the Patroni cluster is in $TESTBED):
  curl -s -XPOST http://127.0.0.1:$TB_API_PORT/switchover -d "{\\"leader\\":\\"\$(deploy/testbed.sh leader $TESTBED)\\"}"
  deploy/testbed.sh kill leader $TESTBED                      # or crash it

DB
fi)
Add a 4th peer, joining through node 3 (any member is a seed):
  pgmesh start --id n4 --cluster demo --gossip 127.0.0.1:$(gossip_port 4) --api 127.0.0.1:$(api_port 4) \\
    --join 127.0.0.1:$(gossip_port 3) --secret-file $DEMO/cluster.secret --data-dir $DEMO/n4
and see it listed everywhere:
  pgmesh status --api 127.0.0.1:$(api_port 1)

Kill the MASTER (kill -9 \$(cat $DEMO/n1.pid)) and n2 becomes MASTER within a second, while the
others list n1 suspect, then dead. Kill n2 as well and no MASTER is elected: a majority of the
voters (every member here) must be up, and \`pgmesh status\` says no MASTER is known.
(The demo runs the VIP driver 'none': the MASTER is recorded, no address moves. The linux driver
and a real VIP are in test/vip.netns.e2e.test.ts.)
Ctrl-C stops the demo.
MSG

# in the background and waited for: bash runs a trap only once a foreground command ends, so a
# SIGTERM to this script alone would otherwise wait for the sleep (and orphan it when killed)
sleep "${PGMESH_DEMO_SECONDS:-infinity}" &
SLEEP_PID=$!
wait "$SLEEP_PID"
