#!/usr/bin/env bash
# The pgmesh demo: a real 3-node mesh on loopback. Installs and builds on first run, starts the
# nodes, waits until every node lists every other, prints what to try, and stops everything on
# Ctrl-C. Usage: deploy/demo.sh [stop]
#   PGMESH_DEMO_PORT=7946   first gossip port (node i: PORT+10*(i-1) gossip, +1 API)
#   PGMESH_DEMO_SECONDS=N   stop by itself after N seconds (for CI); default: until Ctrl-C
set -Eeuo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
DEMO=${PGMESH_DEMO_DIR:-$ROOT/.demo}
BASE=${PGMESH_DEMO_PORT:-7946}
CLI=(node "$ROOT/mesh-node/dist/pgmesh.mjs")

gossip_port() { echo $((BASE + 10 * ($1 - 1))); }
api_port() { echo $((BASE + 10 * ($1 - 1) + 1)); }

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

if [ "${1:-}" = stop ]; then
  stop_nodes
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

start_node() { # start_node I PRIORITY [JOIN_PORT]
  local i=$1 prio=$2 join=()
  [ -n "${3:-}" ] && join=(--join "127.0.0.1:$3")
  "${CLI[@]}" start --id "n$i" --priority "$prio" --cluster demo \
    --gossip "127.0.0.1:$(gossip_port "$i")" --api "127.0.0.1:$(api_port "$i")" \
    --secret-file "$DEMO/cluster.secret" --data-dir "$DEMO/n$i" "${join[@]}" \
    >"$DEMO/n$i.log" 2>&1 &
  echo $! >"$DEMO/n$i.pid"
}

trap 'stop_nodes; echo; echo "demo stopped"' EXIT
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

"${CLI[@]}" status --api "127.0.0.1:$(api_port 1)"
cat <<MSG
The mesh is up: 3 pgmesh nodes on loopback (logs in $DEMO/n*.log).

Try, in another terminal:
  curl -s http://127.0.0.1:$(api_port 1)/v1/status
  npx pgmesh status --api 127.0.0.1:$(api_port 2)
  curl -si http://127.0.0.1:$(api_port 1)/master    # 200 on the MASTER (n1, priority 110), 503 elsewhere

Add a 4th peer, joining through node 3 (any member is a seed):
  npx pgmesh start --id n4 --cluster demo --gossip 127.0.0.1:$(gossip_port 4) --api 127.0.0.1:$(api_port 4) \\
    --join 127.0.0.1:$(gossip_port 3) --secret-file $DEMO/cluster.secret --data-dir $DEMO/n4
and see it listed everywhere:
  npx pgmesh status --api 127.0.0.1:$(api_port 1)

Kill one (kill -9 \$(cat $DEMO/n2.pid)) and watch it turn suspect, then dead; kill the MASTER
(kill -9 \$(cat $DEMO/n1.pid)) and n2 becomes MASTER within a second.
(The demo runs the VIP driver 'none': the MASTER is recorded, no address moves. The linux driver
and a real VIP are in test/vip.netns.e2e.test.ts.)
Ctrl-C stops the demo.
MSG

if [ -n "${PGMESH_DEMO_SECONDS:-}" ]; then
  sleep "$PGMESH_DEMO_SECONDS"
else
  while :; do sleep 3600; done
fi
