#!/usr/bin/env bash
# Builds the pgmesh Debian package from this checkout: the bundled CLI (mesh-node/dist/pgmesh.mjs,
# from `npm run build`) with a pinned Node.js runtime, the systemd unit from deploy/systemd/, and
# /etc/pgmesh/pgmesh.yaml (the example config) as a conffile. dpkg-deb only; no root needed.
#
#   deploy/deb/build.sh [--out DIR]        writes DIR/pgmesh_<version>_<arch>.deb (default dist/deb)
#
#   PGMESH_NODE=/path/to/node   the runtime to embed (default: the `node` on PATH, which the
#                               project's set-up provides); it must satisfy package.json's engines
#   DEB_COMPRESS=gzip|xz|zstd|none   dpkg-deb compression (default zstd, fast and small)
# Prints the path of the package on stdout.
set -Eeuo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
OUT="$ROOT/dist/deb"
while [ $# -gt 0 ]; do
  case "$1" in
    --out) OUT=$2; shift 2 ;;
    *) echo "build.sh: unknown argument '$1' (usage: build.sh [--out DIR])" >&2; exit 2 ;;
  esac
done

die() { echo "build.sh: $*" >&2; exit 1; }

BUNDLE="$ROOT/mesh-node/dist/pgmesh.mjs"
[ -f "$BUNDLE" ] || die "$BUNDLE is missing: run 'npm run build' first"

NODE_BIN=${PGMESH_NODE:-$(command -v node || true)}
[ -n "$NODE_BIN" ] || die "no node on PATH; set PGMESH_NODE"
NODE_BIN=$(readlink -f "$NODE_BIN")
NODE_VERSION=$("$NODE_BIN" --version)
# the embedded runtime must run the bundle on its own: a Debian nodejs linked to libnode cannot be copied
if ldd "$NODE_BIN" 2>/dev/null | grep -q 'libnode\.so'; then
  die "$NODE_BIN is linked against libnode; embed a self-contained Node.js binary (PGMESH_NODE)"
fi
ENGINES=$("$NODE_BIN" -p "require('$ROOT/package.json').engines.node")
"$NODE_BIN" -e "
  const [maj, min] = process.versions.node.split('.').map(Number)
  const m = /^>=\s*(\d+)(?:\.(\d+))?/.exec(process.argv[1])
  if (m === null) { console.error('build.sh: cannot read engines.node: ' + process.argv[1]); process.exit(1) }
  const [wantMaj, wantMin] = [Number(m[1]), Number(m[2] ?? 0)]
  if (maj < wantMaj || (maj === wantMaj && min < wantMin)) {
    console.error('build.sh: ' + process.version + ' does not satisfy engines.node ' + process.argv[1] + ': set PGMESH_NODE')
    process.exit(1)
  }" "$ENGINES"

VERSION=$("$NODE_BIN" -p "require('$ROOT/mesh-node/package.json').version")
ARCH=$(dpkg --print-architecture)
COMPRESS=${DEB_COMPRESS:-zstd}

STAGE=$(mktemp -d "${TMPDIR:-/tmp}/pgmesh-deb.XXXXXX")
trap 'rm -rf "$STAGE"' EXIT
P="$STAGE/pgmesh"
install -d "$P/DEBIAN" "$P/usr/bin" "$P/usr/lib/pgmesh/bin" "$P/usr/lib/pgmesh/dist" \
  "$P/lib/systemd/system" "$P/etc/pgmesh" "$P/usr/share/doc/pgmesh"

install -m 0755 "$NODE_BIN" "$P/usr/lib/pgmesh/bin/node"
install -m 0644 "$BUNDLE" "$P/usr/lib/pgmesh/dist/pgmesh.mjs"
# the CLI reads its version from ../package.json next to dist/
"$NODE_BIN" -e "
  const p = require('$ROOT/mesh-node/package.json')
  process.stdout.write(JSON.stringify({ name: p.name, version: p.version, type: 'module', private: true }) + '\n')
" >"$P/usr/lib/pgmesh/package.json"
chmod 0644 "$P/usr/lib/pgmesh/package.json"
cat >"$P/usr/bin/pgmesh" <<'SH'
#!/bin/sh
# pgmesh with the Node.js runtime it was built and tested with
# --max-semi-space-size=2: see deploy/systemd/pgmesh.service
exec /usr/lib/pgmesh/bin/node --max-semi-space-size=2 /usr/lib/pgmesh/dist/pgmesh.mjs "$@"
SH
chmod 0755 "$P/usr/bin/pgmesh"

# the unit of deploy/systemd/, pointed at the packaged binary and docs
sed -e 's|^ExecStart=.*pgmesh\.mjs |ExecStart=/usr/bin/pgmesh |' \
  -e 's|^Documentation=.*|Documentation=file:///usr/share/doc/pgmesh/README.md|' \
  "$ROOT/deploy/systemd/pgmesh.service" >"$P/lib/systemd/system/pgmesh.service"
grep -q '^ExecStart=/usr/bin/pgmesh start ' "$P/lib/systemd/system/pgmesh.service" ||
  die "deploy/systemd/pgmesh.service: its ExecStart line has an unexpected shape"
chmod 0644 "$P/lib/systemd/system/pgmesh.service"

install -m 0644 "$ROOT/deploy/examples/pgmesh.yaml" "$P/etc/pgmesh/pgmesh.yaml"
install -m 0644 "$ROOT/README.md" "$P/usr/share/doc/pgmesh/README.md"
for doc in configuration migrating packaging metrics errors; do
  [ -f "$ROOT/docs/$doc.md" ] && install -m 0644 "$ROOT/docs/$doc.md" "$P/usr/share/doc/pgmesh/$doc.md"
done
printf 'pgmesh\n\nLicense: Apache-2.0 (/usr/share/common-licenses/Apache-2.0)\nNode.js %s: MIT and the licenses in its own LICENSE file\n' \
  "$NODE_VERSION" >"$P/usr/share/doc/pgmesh/copyright"
chmod 0644 "$P/usr/share/doc/pgmesh/copyright"

install -m 0755 "$ROOT/deploy/deb/debian/postinst" "$ROOT/deploy/deb/debian/prerm" "$ROOT/deploy/deb/debian/postrm" "$P/DEBIAN/"
install -m 0644 "$ROOT/deploy/deb/debian/conffiles" "$P/DEBIAN/conffiles"
SIZE=$(du -sk --exclude=DEBIAN "$P" | cut -f1)
sed -e "s|@VERSION@|$VERSION|" -e "s|@ARCH@|$ARCH|" -e "s|@SIZE@|$SIZE|" -e "s|@NODE_VERSION@|$NODE_VERSION|" \
  "$ROOT/deploy/deb/debian/control.in" >"$P/DEBIAN/control"

mkdir -p "$OUT"
DEB="$OUT/pgmesh_${VERSION}_${ARCH}.deb"
dpkg-deb --root-owner-group -Z"$COMPRESS" --build "$P" "$DEB" >/dev/null
echo "build.sh: built $DEB (pgmesh $VERSION, Node.js $NODE_VERSION, $COMPRESS)" >&2
echo "$DEB"
