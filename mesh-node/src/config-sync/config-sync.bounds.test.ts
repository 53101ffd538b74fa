import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { ClusterConfigSchema, decodeGossip, ERROR_CODES, MAX_CONFIG_VERSION_JUMP } from '@pgmesh/protocol'
import fc from 'fast-check'
import { pino } from 'pino'
import { configHash } from './config-hash.js'
import { memoryConfigStore } from './config-store.js'
import { ConfigSync, type RunningConfig } from './config-sync.js'

const NOW = new Date('2026-11-28T00:00:00Z')
const doc = { name: 'c1' }
const initial: RunningConfig = {
  stamp: { version: 1, hash: configHash(doc), origin: 'n1', source: 'file', at: NOW.toISOString() },
  input: doc,
  parsed: ClusterConfigSchema.parse(doc),
}

function sync(): { s: ConfigSync; applied: number[] } {
  const applied: number[] = []
  const s = new ConfigSync({
    self: 'n1',
    initial,
    fileHash: null,
    store: memoryConfigStore(),
    logger: pino({ level: 'silent' }),
    maxMessageBytes: 1_048_576,
    now: () => NOW,
    apply: async (next) => {
      applied.push(next.stamp.version)
    },
  })
  return { s, applied }
}

/** A gossip `config` message as raw bytes, its `cluster` holding arrays nested `depth` deep. */
function deepConfigMessage(depth: number): Uint8Array {
  const nested = `${'['.repeat(depth)}${']'.repeat(depth)}`
  const hash = 'a'.repeat(64)
  const text =
    `{"v":1,"kind":"config","cluster":"c1","node":"evil","peerId":"p","incarnation":1,"sentAt":1,` +
    `"config":{"version":2,"hash":"${hash}","origin":"evil","source":"api","at":"x",` +
    `"cluster":{"name":"c1","x":${nested}}}}`
  return new TextEncoder().encode(text)
}

describe('config sync: bounded inbound', () => {
  it('a gossiped config nested thousands deep is a typed drop on the real decode + offer path, never a throw', () => {
    const { s, applied } = sync()
    for (const depth of [5_000, 50_000]) {
      const bytes = deepConfigMessage(depth)
      const decoded = decodeGossip(bytes)
      if (!decoded.ok) {
        assert.equal(decoded.error.code, 'GOSSIP_TOO_DEEP')
        continue
      }
      assert.equal(decoded.value.kind, 'config')
      if (decoded.value.kind !== 'config') continue
      const r = s.offer(decoded.value.config, decoded.value.node)
      assert.equal(r.ok, false)
    }
    assert.equal(s.current.stamp.version, 1)
    assert.deepEqual(applied, [])
  })

  it('an offered or edited config nested too deep is refused with a code before it is hashed', () => {
    const { s } = sync()
    let deep: unknown[] = []
    const cluster = { name: 'c1', x: deep }
    for (let i = 0; i < 20_000; i++) {
      const next: unknown[] = []
      deep.push(next)
      deep = next
    }
    const offered = s.offer(
      { version: 2, hash: 'b'.repeat(64), origin: 'n2', source: 'api', at: NOW.toISOString(), cluster },
      'n2',
    )
    assert.equal(offered.ok, false)
    if (!offered.ok) assert.equal(offered.error.code, 'GOSSIP_CONFIG_INVALID')
    const edited = s.edit(cluster, 'api')
    assert.equal(edited.ok, false)
    if (!edited.ok) assert.equal(edited.error.code, 'CONFIG_INVALID')
    assert.equal(s.current.stamp.version, 1)
  })
})

describe('config sync: versions within bounds', () => {
  const next = { name: 'c1', election: { preemptDelayMs: 5 } }
  it('a config at version 2^53-1 is refused, and config edits keep working', () => {
    const { s, applied } = sync()
    const huge = Number.MAX_SAFE_INTEGER
    const offered = s.offer(
      {
        version: huge,
        hash: configHash(next),
        origin: 'n2',
        source: 'api',
        at: NOW.toISOString(),
        cluster: next,
      },
      'n2',
    )
    assert.equal(offered.ok ? offered.value : offered.error.code, 'GOSSIP_CONFIG_INVALID')
    const edited = s.edit(next, 'api')
    assert.ok(edited.ok, JSON.stringify(edited))
    assert.equal(edited.value.stamp.version, 2)
    assert.ok(Number.isSafeInteger(s.current.stamp.version))
    assert.deepEqual(applied.length <= 1, true)
  })

  it('a version ahead by at most MAX_CONFIG_VERSION_JUMP is adopted (a node that was away catches up)', () => {
    const { s } = sync()
    const r = s.offer(
      {
        version: 1 + MAX_CONFIG_VERSION_JUMP,
        hash: configHash(next),
        origin: 'n2',
        source: 'api',
        at: NOW.toISOString(),
        cluster: next,
      },
      'n2',
    )
    assert.equal(r.ok ? r.value : r.error.code, 'adopted')
  })
})

describe('config sync fuzzing', () => {
  const RUNS = Number(process.env.FUZZ_RUNS ?? 500)
  it(`offer and edit: any decodable config message is adopted or a typed refusal, never a throw (${RUNS} cases)`, () => {
    const { s } = sync()
    const cluster = fc.oneof(
      fc.dictionary(fc.string({ maxLength: 12 }), fc.jsonValue({ maxDepth: 30 })),
      fc.jsonValue({ maxDepth: 4 }).map((x) => ({ name: 'c1', election: x })),
    )
    fc.assert(
      fc.property(
        cluster,
        fc.oneof(fc.integer({ min: 0, max: 5 }), fc.maxSafeNat()),
        fc.boolean(),
        (doc, version, rightHash) => {
          const hash = rightHash ? tryHash(doc) : 'c'.repeat(64)
          const offered = s.offer(
            { version, hash, origin: 'n2', source: 'api', at: NOW.toISOString(), cluster: doc },
            'n2',
          )
          const edited = s.edit(doc, 'api')
          for (const r of [offered, edited]) if (!r.ok) assert.ok(ERROR_CODES.includes(r.error.code))
          assert.ok(Number.isSafeInteger(s.current.stamp.version))
        },
      ),
      { numRuns: RUNS, seed: Number(process.env.FUZZ_SEED ?? 20261201), endOnFailure: true },
    )
  })
})

function tryHash(doc: Record<string, unknown>): string {
  try {
    return configHash(doc)
  } catch {
    return 'd'.repeat(64)
  }
}
