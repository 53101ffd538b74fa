#!/usr/bin/env bash
# System packages pgmesh's tests, demo and benchmarks use, all from Debian's archive.
# Idempotent; needs root (or passwordless sudo) only when something is missing.
#   iproute2, arping      the linux VIP driver and the network-namespace tests
#   nftables              the linux VIP driver: the kernel fence of the VIP, and new connections held off during a hand-over
#   ipv6toolkit           na6: unsolicited neighbour advertisements for an IPv6 VIP (arping does not do IPv6)
#   systemd               systemd-analyze verify of deploy/systemd/pgmesh.service in the tests
#   keepalived, haproxy   the tools pgmesh replaces, measured side by side in test/bench/
#   patroni, etcd-server, postgresql-15 (pgbench included), postgresql-client-15
#                         the real Patroni cluster the tests and the demo run
#   chromium              the headless browser the status page's e2e test drives (playwright-core)
#   prometheus            promtool checks and unit-tests the alerting rules in deploy/prometheus/
#   systemd, adduser, procps  the Debian package's test: systemd-analyze verify of the unit, the
#                         package's own dependency for its system user, pgrep
#   openssl               the TLS tests make their CA and certificates at test time
#   pgbouncer             the TLS-terminating pooler pgmesh's TLS edge is measured against (test/bench/)
#   conntrack             the kernel fast path cuts its forwarded sessions by deleting their flows
#   nodejs, npm           only where npm is missing: deploy/runtime.sh needs some npm to fetch
#                         Node.js 24 from the npm registry (Debian's own node is too old to run pgmesh)
set -Eeuo pipefail

PACKAGES=(curl iproute2 arping nftables keepalived haproxy patroni etcd-server postgresql-15 postgresql-client-15 hyperfine chromium prometheus systemd adduser procps openssl pgbouncer conntrack ipv6toolkit)

missing=()
for pkg in "${PACKAGES[@]}"; do
  status=$(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null || true)
  [ "$status" = "install ok installed" ] || missing+=("$pkg")
done
command -v npm >/dev/null 2>&1 || missing+=(nodejs npm)
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi

SUDO=
[ "$(id -u)" = 0 ] || SUDO=sudo
echo "install-deps: installing ${missing[*]}" >&2
$SUDO apt-get update -qq
# policy-rc.d: Debian's postinst would start etcd, postgresql and haproxy as services; the tests
# start their own instances on loopback and need the default ports free
POLICY=/usr/sbin/policy-rc.d
created_policy=0
if [ ! -e "$POLICY" ]; then
  printf '#!/bin/sh\nexit 101\n' | $SUDO tee "$POLICY" >/dev/null
  $SUDO chmod 755 "$POLICY"
  created_policy=1
fi
trap '[ "$created_policy" = 1 ] && $SUDO rm -f "$POLICY"' EXIT
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
