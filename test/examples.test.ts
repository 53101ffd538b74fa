import assert from 'node:assert/strict'
import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { describe, it } from 'node:test'
import { validateConfig } from '@pgmesh/protocol'
import { parse } from 'yaml'
import { ROOT } from './helpers/processes.js'

describe('deploy/examples', () => {
  it('the example config is valid as shipped', async () => {
    const doc: unknown = parse(await readFile(join(ROOT, 'deploy', 'examples', 'pgmesh.yaml'), 'utf8'))
    const r = validateConfig(doc)
    assert.ok(r.ok, r.ok ? '' : JSON.stringify(r.error.issues, null, 2))
    assert.equal(r.value.cluster.listeners.length, 2)
    assert.equal(r.value.cluster.vip.driver, 'linux')
  })
})
