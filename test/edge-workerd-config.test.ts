import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
// @ts-expect-error: a plain ESM script (deploy/edge), no type declarations
import { COMPATIBILITY_DATE, workerdConfig } from '../deploy/edge/workerd-config.mjs'

type Gen = (o: { config: unknown; workerPath: string; listen: string }) => string
const gen = workerdConfig as Gen

describe('deploy/edge/workerd-config.mjs', () => {
  it('gives the Worker an outbound network that reaches private and loopback node APIs', () => {
    const text = gen({
      config: { nodes: [{ url: 'http://127.0.0.1:7947' }] },
      workerPath: 'worker.mjs',
      listen: '127.0.0.1:8787',
    })
    assert.match(text, /network = \(allow = \["public", "private", "local"\]\)/)
    assert.match(text, /globalOutbound = "nodes"/)
    assert.match(text, /address = "127\.0\.0\.1:8787", http = \(\)/)
    assert.match(text, /esModule = embed "worker\.mjs"/)
    assert.match(text, new RegExp(`compatibilityDate = "${COMPATIBILITY_DATE as string}"`))
    // the binding holds the validated config, defaults filled in, as a capnp string
    const m = /name = "PGMESH_CONTROL_PLANE", text = ("(?:[^"\\]|\\.)*")/.exec(text)
    assert.ok(m?.[1])
    const config = JSON.parse(JSON.parse(m[1]) as string) as { nodeTimeoutMs: number; name: string }
    assert.deepEqual([config.nodeTimeoutMs, config.name], [1500, 'control-plane'])
  })

  it('keeps node tokens out of the file: tokenEnv becomes a fromEnvironment binding', () => {
    const text = gen({
      config: {
        nodes: [
          { url: 'http://10.0.0.1:7947', tokenEnv: 'NODE_TOKEN' },
          { url: 'http://10.0.0.2:7947', tokenEnv: 'NODE_TOKEN' },
        ],
      },
      workerPath: 'w.mjs',
      listen: '[::1]:8787',
    })
    assert.equal(text.match(/fromEnvironment = "NODE_TOKEN"/g)?.length, 1)
    assert.match(text, /address = "\[::1\]:8787"/)
  })

  it('refuses a config the Worker would refuse, naming the problem', () => {
    assert.throws(
      () => gen({ config: { nodes: [] }, workerPath: 'w.mjs', listen: '127.0.0.1:8787' }),
      /CP_CONFIG_INVALID: nodes/,
    )
    assert.throws(
      () => gen({ config: { nodes: [{ url: 'http://a:1' }] }, workerPath: 'w.mjs', listen: 'nope' }),
      /ADDRESS_INVALID/,
    )
  })
})
