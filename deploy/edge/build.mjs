// Bundles the control plane twice from one codebase: a Worker module for workerd
// (dist/worker.mjs: Web APIs only) and a Node server (dist/control-plane-node.mjs).
//
//   node deploy/edge/build.mjs [--out DIR]
import { readFileSync } from 'node:fs'
import { dirname, join, resolve } from 'node:path'
import { parseArgs } from 'node:util'
import { build } from 'esbuild'

const here = dirname(new URL(import.meta.url).pathname)
const root = resolve(here, '..', '..')
const { values } = parseArgs({ options: { out: { type: 'string', default: join(here, 'dist') } } })
const out = resolve(values.out)
const version = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')).version

const common = {
  bundle: true,
  format: 'esm',
  // the TypeScript sources of the workspaces, so the bundle does not depend on `tsc -b` having run
  conditions: ['source'],
  sourcemap: 'linked',
  minify: true,
  keepNames: true,
  logLevel: 'warning',
  absWorkingDir: root,
  define: { PGMESH_VERSION: JSON.stringify(version) },
}

await build({
  ...common,
  entryPoints: [join(here, 'worker.ts')],
  outfile: join(out, 'worker.mjs'),
  platform: 'neutral',
  target: 'es2022',
  mainFields: ['module', 'main'],
  conditions: ['source', 'workerd', 'worker', 'browser', 'import', 'default'],
})

await build({
  ...common,
  entryPoints: [join(here, 'node-server.ts')],
  outfile: join(out, 'control-plane-node.mjs'),
  platform: 'node',
  target: 'node20',
  banner: {
    js: "import { createRequire as __pgmeshCreateRequire } from 'node:module'; const require = __pgmeshCreateRequire(import.meta.url);",
  },
})

process.stdout.write(`${join(out, 'worker.mjs')}\n${join(out, 'control-plane-node.mjs')}\n`)
