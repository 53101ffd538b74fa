# Source me from the repository root:  . deploy/env.sh
# Puts the Node.js pgmesh runs on (deploy/runtime.sh: 24 LTS, installed into .runtime/ when the
# system's node is older) and this checkout's `pgmesh` (node_modules/.bin, after `npm install`)
# first on PATH, in the current shell. Sourced, so it sets no shell options.
#
# `pgmesh start ... &` then runs the node itself as the shell's job (kill %1 stops it), which
# `npx pgmesh start` does not: npx runs it under npm and a shell, and a kill of the job leaves
# the node running.
if [ -z "${BASH_VERSION:-}" ]; then
  echo "deploy/env.sh is for bash" >&2
  return 2 2>/dev/null || exit 2
fi
if [ "${BASH_SOURCE[0]}" = "$0" ]; then
  echo "deploy/env.sh is meant to be sourced:  . deploy/env.sh" >&2
  exit 2
fi
if _pgmesh_runtime=$("$(dirname "${BASH_SOURCE[0]}")/runtime.sh"); then
  _pgmesh_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
  export PATH="$_pgmesh_root/node_modules/.bin:$_pgmesh_runtime:$PATH"
  hash -r
  echo "pgmesh: Node.js $(node --version) from $_pgmesh_runtime; pgmesh from $_pgmesh_root/node_modules/.bin" >&2
  unset _pgmesh_root
else
  echo "pgmesh: no Node.js runtime (deploy/runtime.sh failed); PATH unchanged" >&2
fi
unset _pgmesh_runtime
