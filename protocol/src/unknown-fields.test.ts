import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import {
  ClusterConfigSchema,
  ConfigFileSchema,
  validateClusterConfig,
  validateClusterEditFile,
  validateConfig,
  validatePeerClusterConfig,
} from './config.js'
import { closestName, editDistance, nonStrictObjects } from './unknown-fields.js'

const issuesOf = (r: { ok: boolean; error?: { issues?: readonly { path: string; message: string }[] } }) =>
  r.ok ? [] : (r.error?.issues ?? [])

describe('unknown fields in config files and API input', () => {
  it('every object of the config file schema refuses unknown fields (what the hints rest on)', () => {
    assert.deepEqual(nonStrictObjects(ConfigFileSchema), [])
  })

  it('`prioirty: 5` in the node section is an error naming its path, with a hint', () => {
    const r = validateConfig({ node: { id: 'n1', insecureDev: true, prioirty: 5 } })
    assert.ok(!r.ok)
    assert.deepEqual(issuesOf(r), [
      { path: 'node.prioirty', message: 'unknown field (did you mean "priority"?)' },
    ])
  })

  it('unknown fields at every depth of both sections are listed together, each with its path', () => {
    const r = validateConfig({
      nodes: {},
      node: { id: 'n1', insecureDev: true, gossip: { listn: '127.0.0.1:1' } },
      cluster: {
        members: [{ id: 'n1', priority: 100, wieght: 1 }],
        checks: [{ kind: 'tcp', name: 'c', host: 'h', port: 1, wieght: -20 }],
        listeners: [
          {
            name: 'w',
            bind: '127.0.0.1:5000',
            role: 'servers',
            servers: [{ address: '127.0.0.1:1' }],
            balanse: 'first',
          },
        ],
        membership: { heartbeatIntervallMs: 100 },
        zebra: 1,
      },
    })
    const byPath = new Map(issuesOf(r).map((i) => [i.path, i.message]))
    assert.match(byPath.get('nodes') ?? '', /did you mean "node"/)
    assert.match(byPath.get('node.gossip.listn') ?? '', /did you mean "listen"/)
    assert.match(byPath.get('cluster.members.0.wieght') ?? '', /unknown field/)
    assert.match(byPath.get('cluster.checks.0.wieght') ?? '', /did you mean "weight"/)
    assert.match(byPath.get('cluster.listeners.0.balanse') ?? '', /did you mean "balance"/)
    assert.match(
      byPath.get('cluster.membership.heartbeatIntervallMs') ?? '',
      /did you mean "heartbeatIntervalMs"/,
    )
    // nothing close: the known fields of that object instead
    assert.match(byPath.get('cluster.zebra') ?? '', /known here: .*listeners.*vip/)
  })

  it('a bare cluster section (PUT /v1/config, config check) gets the same hints under "cluster."', () => {
    const r = validateClusterConfig({ members: [{ id: 'n1', prioirty: 5 }] })
    const byPath = new Map(issuesOf(r).map((i) => [i.path, i.message]))
    assert.match(byPath.get('cluster.members.0.prioirty') ?? '', /did you mean "priority"/)
  })

  it('an edit file takes baseVersion and cluster only', () => {
    assert.ok(validateClusterEditFile({ baseVersion: 3, cluster: {} }).ok)
    const r = validateClusterEditFile({ baseVerison: 3, cluster: {} })
    assert.deepEqual(issuesOf(r), [
      { path: 'baseVerison', message: 'unknown field (did you mean "baseVersion"?)' },
    ])
  })
})

describe('unknown fields in a cluster config from a peer or the store (rolling upgrades)', () => {
  it('drops what this version does not know, lists it, and runs the rest', () => {
    const doc = {
      name: 'c1',
      futureTopLevel: { a: 1 },
      membership: { heartbeatIntervalMs: 400, futureTiming: 2 },
      checks: [{ kind: 'tcp', name: 'c', host: 'h', port: 1, futureCheckField: true }],
    }
    const before = structuredClone(doc)
    const r = validatePeerClusterConfig(doc)
    assert.ok(r.ok, JSON.stringify(r))
    assert.equal(r.value.config.membership.heartbeatIntervalMs, 400)
    assert.equal(r.value.config.checks[0]?.name, 'c')
    assert.deepEqual([...r.value.ignored].sort(), [
      'cluster.checks.0.futureCheckField',
      'cluster.futureTopLevel',
      'cluster.membership.futureTiming',
    ])
    assert.deepEqual(doc, before, 'the input is not changed: its hash is what the version is')
  })

  it('still refuses a known field with a bad value', () => {
    const r = validatePeerClusterConfig({ futureField: 1, membership: { heartbeatIntervalMs: 1 } })
    assert.ok(!r.ok)
    assert.ok(issuesOf(r).some((i) => i.path === 'cluster.membership.heartbeatIntervalMs'))
  })

  it('parses a config with nothing unknown exactly as the strict check does', () => {
    const doc = { name: 'c2', checks: [{ kind: 'file', name: 'f', path: '/tmp/x' }] }
    const peer = validatePeerClusterConfig(doc)
    assert.ok(peer.ok)
    assert.deepEqual(peer.value.config, ClusterConfigSchema.parse(doc))
    assert.deepEqual(peer.value.ignored, [])
  })
})

describe('did-you-mean', () => {
  it('edit distance is a metric on small samples (symmetric, zero on equal, triangle)', () => {
    const words = ['', 'a', 'priority', 'prioirty', 'priorty', 'listen', 'listn', 'vip', 'id', 'weight']
    for (const a of words) {
      assert.equal(editDistance(a, a), 0)
      for (const b of words) {
        assert.equal(editDistance(a, b), editDistance(b, a))
        assert.ok(editDistance(a, b) <= Math.max(a.length, b.length))
        for (const c of words) assert.ok(editDistance(a, c) <= editDistance(a, b) + editDistance(b, c))
      }
    }
    assert.equal(editDistance('prioirty', 'priority'), 2)
    assert.equal(editDistance('kitten', 'sitting'), 3)
  })

  it('suggests only a close name', () => {
    assert.equal(closestName('prioirty', ['id', 'priority', 'vip']), 'priority')
    assert.equal(closestName('Priority', ['priority']), 'priority')
    assert.equal(closestName('zebra', ['id', 'priority', 'vip']), undefined)
    assert.equal(closestName('x', []), undefined)
  })
})
