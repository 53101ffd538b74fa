import assert from 'node:assert/strict'
import { readdirSync, readFileSync } from 'node:fs'
import { dirname, join, relative, resolve } from 'node:path'
import { describe, it } from 'node:test'
import { ROOT } from './helpers/processes.js'

function sources(dir: string, { tests = false } = {}): string[] {
  return readdirSync(join(ROOT, dir), { recursive: true, encoding: 'utf8' })
    .filter((f) => f.endsWith('.ts') && (tests || !f.endsWith('.test.ts')))
    .map((f) => join(ROOT, dir, f))
}

/** The repository path (`mesh-node/src/x.ts`) a relative import names; null for a package import. */
function importedPath(file: string, spec: string): string | null {
  if (!spec.startsWith('.')) return null
  return relative(ROOT, resolve(dirname(file), spec)).replace(/\.js$/, '.ts')
}

function imports(file: string): string[] {
  const text = readFileSync(file, 'utf8')
  return [
    ...text.matchAll(/^\s*(?:import|export)\s[^'"]*?from\s+['"]([^'"]+)['"]/gm),
    ...text.matchAll(/^\s*import\s+['"]([^'"]+)['"]/gm),
  ].map((m) => m[1]!)
}

/** The dependency rules of DESIGN.md, checked on the source so a stray import fails CI. */
describe('package layout', () => {
  it('protocol imports only zod', () => {
    for (const f of sources('protocol/src')) {
      for (const i of imports(f)) assert.ok(i === 'zod' || i.startsWith('./'), `${f} imports ${i}`)
    }
  })

  it('control-api is runtime-agnostic: only protocol and hono, no node: modules', () => {
    for (const f of sources('control-api/src')) {
      for (const i of imports(f)) {
        assert.ok(
          i === '@pgmesh/protocol' ||
            i === 'hono' ||
            i.startsWith('hono/') ||
            i.startsWith('./') ||
            // a sub-folder reaching back up, but never out of control-api/src
            (i.startsWith('../') && resolve(dirname(f), i).startsWith(join(ROOT, 'control-api', 'src'))),
          `${f} imports ${i}`,
        )
      }
    }
  })

  it('mesh-node never reaches into other packages by relative path', () => {
    for (const f of sources('mesh-node/src')) {
      for (const i of imports(f)) assert.ok(!i.includes('../../'), `${f} imports ${i}`)
    }
  })

  it('no part of mesh-node imports the composition root; only the entry points wire it', () => {
    const root = 'mesh-node/src/mesh-node.ts'
    // the entry points, and the in-process harness that builds whole nodes for tests
    const wiring = (f: string) =>
      f === 'mesh-node/src/index.ts' ||
      f === 'mesh-node/src/cli.ts' ||
      f.startsWith('mesh-node/src/cli/') ||
      f.startsWith('mesh-node/src/testing/')
    for (const f of sources('mesh-node/src')) {
      const file = relative(ROOT, f)
      if (wiring(file)) continue
      for (const i of imports(f)) {
        assert.notEqual(importedPath(f, i), root, `${file} imports ${i}`)
        // the package entry re-exports the composition root: no way round the rule through it
        assert.ok(!(i === '@pgmesh/mesh-node' || i.startsWith('@pgmesh/mesh-node/')), `${file} imports ${i}`)
      }
    }
  })

  it('the simulator reaches the cores through their package entry, not by path into src/', () => {
    const files = sources('test/sim', { tests: true })
    assert.ok(files.length > 0, 'no simulator sources found')
    for (const f of files) {
      for (const i of imports(f)) {
        const path = importedPath(f, i)
        const local = path?.startsWith('test/sim/') === true
        assert.ok(
          local || i.startsWith('@pgmesh/') || i.startsWith('node:'),
          `${relative(ROOT, f)} imports ${i}`,
        )
      }
    }
  })
})
