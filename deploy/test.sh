#!/usr/bin/env bash
# Installs everything the test suite needs on a fresh Debian 12 machine, then runs the whole suite
# on Node.js 24 (build, type-check, lint, unit, simulation and multi-process tests) and the unit
# tests once more on Node.js 22, the lowest supported line. The runtimes come from
# deploy/runtime.sh when the system's node is older.
#   deploy/test.sh           install, then test
#   deploy/test.sh install   install only: Debian packages, the runtimes, node_modules, a build
set -Eeuo pipefail
cd "$(dirname "$0")/.."

deploy/install-deps.sh
bin=$(deploy/runtime.sh)
bin22=$(deploy/runtime.sh 22)
export PATH="$bin:$PATH"
echo "test: Node.js $(node --version) from $bin" >&2
# npm ci refuses this lock file: the registry mirror here lacks some other-platform optional
# binaries (biome for Windows/macOS), which npm install skips and npm ci counts as missing.
npm install --no-audit --no-fund
if [ "${1:-}" = install ]; then
  npm run build
  exit 0
fi
npm test
echo "test: unit tests on Node.js $(PATH="$bin22:$PATH" node --version), the lowest supported line" >&2
PATH="$bin22:$PATH" npm run test:unit
