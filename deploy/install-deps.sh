#!/usr/bin/env bash
# System packages pgmesh's tests and demo use, from Debian's archive. Idempotent; needs root
# (or passwordless sudo) only when something is missing.
set -Eeuo pipefail

# command → Debian package
declare -A NEED=(
  [curl]=curl
)

missing=()
for cmd in "${!NEED[@]}"; do
  command -v "$cmd" >/dev/null 2>&1 || missing+=("${NEED[$cmd]}")
done
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi

SUDO=
[ "$(id -u)" = 0 ] || SUDO=sudo
echo "install-deps: installing ${missing[*]}" >&2
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
