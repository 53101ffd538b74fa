import assert from 'node:assert/strict'
import { readdirSync, readFileSync } from 'node:fs'
import { dirname, join, resolve } from 'node:path'
import { describe, it } from 'node:test'
import { ROOT } from './helpers/processes.js'

function sources(dir: string): string[] {
  return readdirSync(join(ROOT, dir), { recursive: true, encoding: 'utf8' })
    .filter((f) => f.endsWith('.ts') && !f.endsWith('.test.ts'))
    .map((f) => join(ROOT, dir, f))
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
})
