#!/usr/bin/env -S node --max-semi-space-size=2
// Stable launcher for the bundled CLI. It is committed (not built) so that `npm install` links
// `npx pgmesh` even on a checkout that was never built; it stays plain JavaScript so that it can
// explain itself on any Node.js.
const MIN_MAJOR = 22
const major = Number(process.versions.node.split('.')[0])
if (major < MIN_MAJOR) {
  process.stderr.write(
    `pgmesh: needs Node.js ${MIN_MAJOR} or newer, and this is ${process.versions.node} (${process.execPath}).\n` +
      '  In the repository, deploy/runtime.sh provides Node.js 24:  export PATH="$(deploy/runtime.sh):$PATH"\n',
  )
  process.exit(1)
}
import('../dist/pgmesh.mjs').catch((e) => {
  if (e?.code === 'ERR_MODULE_NOT_FOUND' && String(e.message).includes('dist/pgmesh.mjs')) {
    process.stderr.write('pgmesh: not built yet; run `npm run build` in the repository root\n')
    process.exit(1)
  }
  throw e
})
