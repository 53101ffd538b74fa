import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import {
  ClusterConfigSchema,
  checkClusterAgainstLocal,
  NodeAllowSchema,
  type VersionedConfig,
} from '@pgmesh/protocol'
import { pino } from 'pino'
import { canonicalJson, configHash } from './config-hash.js'
import { memoryConfigStore } from './config-store.js'
import { ConfigSync, initialConfig, type RunningConfig } from './config-sync.js'

const NOW = new Date('2026-11-28T00:00:00Z')
const listener = (name: string, port: number) => ({
  name,
  bind: `127.0.0.1:${port}`,
  role: 'servers',
  servers: [{ address: '127.0.0.1:1' }],
})
const input = (...ports: number[]) => ({ name: 'c1', listeners: ports.map((p, i) => listener(`l${i}`, p)) })

function running(version: number, doc: Record<string, unknown>, origin = 'n1'): RunningConfig {
  return {
    stamp: { version, hash: configHash(doc), origin, source: 'api', at: NOW.toISOString() },
    input: doc,
    parsed: ClusterConfigSchema.parse(doc),
  }
}

function versioned(version: number, doc: Record<string, unknown>, origin = 'n2'): VersionedConfig {
  return { version, hash: configHash(doc), origin, source: 'api', at: NOW.toISOString(), cluster: doc }
}

function sync(initial: RunningConfig) {
  const applied: number[] = []
  const store = memoryConfigStore()
  const s = new ConfigSync({
    self: 'n1',
    initial,
    fileHash: null,
    store,
    logger: pino({ level: 'silent' }),
    maxMessageBytes: 65_536,
    now: () => NOW,
    apply: async (next) => {
      applied.push(next.stamp.version)
    },
  })
  return { s, applied, store }
}

describe('canonical config hash', () => {
  it('does not depend on key order', () => {
    assert.equal(
      canonicalJson({ b: 1, a: { d: [1, { f: 1, e: 2 }], c: 3 } }),
      '{"a":{"c":3,"d":[1,{"e":2,"f":1}]},"b":1}',
    )
    assert.equal(configHash({ a: 1, b: 2 }), configHash({ b: 2, a: 1 }))
  })
})

describe('ConfigSync', () => {
  it('an edit is the running version + 1, applied and stored; the same content is not a new version', async () => {
    const { s, applied, store } = sync(running(1, input(5000)))
    const r = s.edit(input(5000, 5001), 'api')
    assert.ok(r.ok)
    assert.equal(r.value.stamp.version, 2)
    assert.equal(r.value.stamp.origin, 'n1')
    await s.settled()
    assert.deepEqual(applied, [2])
    assert.equal(store.saved?.config.version, 2)
    const again = s.edit(input(5000, 5001), 'api')
    assert.ok(again.ok)
    assert.equal(again.value.stamp.version, 2)
  })

  it('refuses an invalid edit listing every problem, and a cluster rename, and changes nothing', () => {
    const { s } = sync(running(3, input(5000)))
    const bad = s.edit(
      { name: 'other', listeners: [{ name: 'x', bind: 'nope', role: 'wat' }], bogus: 1 },
      'api',
    )
    assert.ok(!bad.ok)
    const paths = (bad.error.issues ?? []).map((i) => i.path)
    assert.ok(paths.includes('cluster.listeners.0.bind'), paths.join())
    assert.ok(paths.includes('cluster.listeners.0.role'), paths.join())
    assert.ok(paths.includes('cluster.bogus'), paths.join())
    const rename = s.edit({ name: 'other' }, 'api')
    assert.ok(!rename.ok)
    assert.match(rename.error.issues?.[0]?.message ?? '', /cannot change in a running cluster/)
    assert.equal(s.current.stamp.version, 3)
  })

  it('baseVersion must be the running version (409-style CONFIG_CONFLICT), nothing merged', () => {
    const { s } = sync(running(4, input(5000)))
    const r = s.edit(input(5001), 'api', 3)
    assert.ok(!r.ok)
    assert.equal(r.error.code, 'CONFIG_CONFLICT')
    assert.ok(s.edit(input(5001), 'api', 4).ok)
  })

  it('adopts a newer version from a peer; ignores an older one', async () => {
    const { s, applied } = sync(running(2, input(5000)))
    const newer = s.offer(versioned(5, input(6000)), 'n2')
    assert.ok(newer.ok)
    assert.equal(newer.value, 'adopted')
    assert.equal(s.current.stamp.version, 5)
    assert.equal(s.current.parsed.listeners[0]?.bind.port, 6000)
    const older = s.offer(versioned(3, input(7000)), 'n3')
    assert.ok(older.ok)
    assert.equal(older.value, 'older')
    await s.settled()
    assert.deepEqual(applied, [5])
  })

  it('two edits of the same version: both sides end on the lower hash and report the other as lost', () => {
    const base = running(1, input(5000))
    const a = sync(base)
    const b = sync(base)
    const ea = a.s.edit(input(5001), 'api')
    const eb = b.s.edit(input(5002), 'api')
    assert.ok(ea.ok && eb.ok)
    const va: VersionedConfig = { ...ea.value.stamp, cluster: ea.value.input }
    const vb: VersionedConfig = { ...eb.value.stamp, origin: 'n2', cluster: eb.value.input }
    a.s.offer(vb, 'n2')
    b.s.offer(va, 'n1')
    assert.equal(a.s.current.stamp.hash, b.s.current.stamp.hash, 'both run the same config')
    const winner = [va.hash, vb.hash].sort()[0]
    assert.equal(a.s.current.stamp.hash, winner)
    for (const side of [a.s, b.s]) {
      assert.equal(side.conflicts().length, 1)
      assert.notEqual(side.conflicts()[0]?.lost.hash, winner)
      assert.equal(side.conflicts()[0]?.to.hash, winner)
    }
  })

  it('drops a config whose hash does not match, or that is not valid here', () => {
    const { s } = sync(running(1, input(5000)))
    const forged = { ...versioned(9, input(5001)), hash: configHash(input(1)) }
    const r = s.offer(forged, 'n2')
    assert.ok(!r.ok)
    assert.equal(r.error.code, 'GOSSIP_CONFIG_INVALID')
    const renamed = s.offer(versioned(9, { name: 'other' }), 'n2')
    assert.ok(!renamed.ok)
    assert.equal(s.current.stamp.version, 1)
  })

  it('a joining node (version 0) takes any mesh version and refuses edits until then', () => {
    const { s } = sync(running(0, input(5000)))
    const edit = s.edit(input(5001), 'api')
    assert.ok(!edit.ok)
    assert.equal(edit.error.code, 'CONFIG_CONFLICT')
    const r = s.offer(versioned(1, input(5003)), 'n2')
    assert.ok(r.ok && r.value === 'adopted')
    assert.equal(s.conflicts().length, 0)
  })

  it('a changed config file is an edit; the same file again is not', () => {
    const { s } = sync(running(2, input(5000)))
    const first = s.fileChanged(input(5005))
    assert.ok(first.ok)
    assert.equal(first.value?.stamp.version, 3)
    assert.equal(first.value?.stamp.source, 'reload')
    const same = s.fileChanged(input(5005))
    assert.ok(same.ok)
    assert.equal(same.value, null)
  })
})

describe('initialConfig', () => {
  const file = { input: input(5000), parsed: ClusterConfigSchema.parse(input(5000)) }
  it('without a stored version: the file, version 1 on a founding node and 0 on a joining one', () => {
    assert.equal(
      initialConfig({ self: 'n1', file, stored: null, founding: true, now: NOW }).running.stamp.version,
      1,
    )
    assert.equal(
      initialConfig({ self: 'n1', file, stored: null, founding: false, now: NOW }).running.stamp.version,
      0,
    )
  })

  it('a stored version wins over the file; a file that changed while the node was down is only noted', () => {
    const stored = { config: versioned(7, input(6000)), fileHash: configHash(input(5000)) }
    const unchanged = initialConfig({ self: 'n1', file, stored, founding: true, now: NOW })
    assert.equal(unchanged.running.stamp.version, 7)
    assert.equal(unchanged.note, null)
    const changed = initialConfig({
      self: 'n1',
      file,
      stored: { ...stored, fileHash: configHash(input(4000)) },
      founding: true,
      now: NOW,
    })
    assert.equal(changed.running.stamp.version, 7)
    assert.match(changed.note ?? '', /differs from the stored cluster config version 7/)
  })
})

describe('ConfigSync with node.allow', () => {
  const allowing = (initial: RunningConfig) => {
    const applied: number[] = []
    const policy = { allow: NodeAllowSchema.parse({ backendCidrs: ['127.0.0.1/32'] }) }
    const s = new ConfigSync({
      self: 'n1',
      initial,
      fileHash: null,
      store: memoryConfigStore(),
      logger: pino({ level: 'silent' }),
      maxMessageBytes: 65_536,
      now: () => NOW,
      apply: async (next) => {
        applied.push(next.stamp.version)
      },
      admit: (parsed) => checkClusterAgainstLocal(parsed, policy),
    })
    return { s, applied }
  }
  const outside = {
    name: 'c1',
    listeners: [{ ...listener('l0', 5000), servers: [{ address: '127.0.0.9:1' }] }],
  }

  it('refuses a peer version and an edit that the node does not allow, with CONFIG_NOT_ALLOWED', async () => {
    const { s, applied } = allowing(running(1, input(5000)))
    const offered = s.offer(versioned(2, outside), 'n2')
    assert.ok(!offered.ok)
    assert.equal(offered.error.code, 'CONFIG_NOT_ALLOWED')
    assert.equal(offered.error.issues?.[0]?.path, 'cluster.listeners.0.servers.0.address')
    const edited = s.edit(outside, 'api')
    assert.ok(!edited.ok)
    assert.equal(edited.error.code, 'CONFIG_NOT_ALLOWED')
    assert.equal(s.current.stamp.version, 1)
    assert.ok(s.offer(versioned(2, input(5001)), 'n2').ok, 'an allowed version is adopted')
    await s.settled()
    assert.deepEqual(applied, [2])
  })
})

describe('unknown fields: strict for operators, tolerated from peers and the store', () => {
  it('an API or file edit with `prioirty` is refused with a hint; nothing changes', () => {
    const { s, applied } = sync(running(1, input(5000)))
    const r = s.edit({ ...input(5000), members: [{ id: 'n1', prioirty: 5, priority: 5 }] }, 'api')
    assert.ok(!r.ok)
    assert.ok(
      r.error.issues?.some(
        (i) => i.path === 'cluster.members.0.prioirty' && /did you mean "priority"/.test(i.message),
      ),
      JSON.stringify(r.error.issues),
    )
    const reload = s.fileChanged({
      ...input(5001),
      listeners: [{ ...listener('l0', 5001), balanse: 'first' }],
    })
    assert.ok(!reload.ok)
    assert.ok(reload.error.issues?.some((i) => i.path === 'cluster.listeners.0.balanse'))
    assert.equal(s.current.stamp.version, 1)
    assert.deepEqual(applied, [])
  })

  it("a newer node's version with fields this node does not know is adopted, and passed on unchanged", async () => {
    const { s, applied } = sync(running(1, input(5000)))
    const newer = {
      ...input(5001),
      futureSection: { x: 1 },
      listeners: [{ ...listener('l0', 5001), futureKnob: 3 }],
    }
    const v = versioned(2, newer)
    const r = s.offer(v, 'n2')
    assert.deepEqual(r, { ok: true, value: 'adopted' })
    await s.settled()
    assert.deepEqual(applied, [2])
    assert.equal(s.current.parsed.listeners[0]?.bind.port, 5001)
    assert.equal('futureKnob' in (s.current.parsed.listeners[0] ?? {}), false)
    // what this node gossips on is the version as made, so every node agrees on its hash
    assert.equal(s.versioned().hash, v.hash)
    assert.deepEqual(s.versioned().cluster, newer)
  })

  it('a stored version with unknown fields (written before a downgrade) still starts the node on it', () => {
    const file = { input: input(5000), parsed: ClusterConfigSchema.parse(input(5000)) }
    const stored = {
      config: versioned(9, { ...input(6000), futureSection: true }),
      fileHash: configHash(input(5000)),
    }
    const r = initialConfig({ self: 'n1', file, stored, founding: true, now: NOW })
    assert.equal(r.running.stamp.version, 9)
    assert.equal(r.running.parsed.listeners[0]?.bind.port, 6000)
  })
})
