#!/usr/bin/env bash
# Installs everything the test suite needs on a fresh Debian 12 machine with Node.js 20, then runs
# the whole suite: build, type-check, lint, unit, simulation and multi-process tests.
set -Eeuo pipefail
cd "$(dirname "$0")/.."

deploy/install-deps.sh
# npm ci refuses this lock file: the registry mirror here lacks some other-platform optional
# binaries (biome for Windows/macOS), which npm install skips and npm ci counts as missing.
npm install --no-audit --no-fund
npm test
