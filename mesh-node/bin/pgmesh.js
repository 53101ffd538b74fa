#!/usr/bin/env node
// Stable launcher for the compiled CLI: it exists before the first build, so npm can link it.
import('../dist/pgmesh.mjs').catch((e) => {
  if (e?.code === 'ERR_MODULE_NOT_FOUND' && String(e.message).includes('dist/pgmesh.mjs')) {
    process.stderr.write('pgmesh: not built yet; run `npm run build` in the repository root\n')
    process.exit(1)
  }
  throw e
})
