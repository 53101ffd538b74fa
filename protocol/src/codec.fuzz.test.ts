import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { isDeepStrictEqual } from 'node:util'
import fc from 'fast-check'
import { MaintenancePutBodySchema, MembersQuerySchema } from './api.js'
import { ConfigPutBodySchema } from './cluster-config.js'
import { jsonTextTooDeep, MAX_JSON_DEPTH, valueTooDeep } from './codec.js'
import { validateClusterConfig, validateConfig } from './config.js'
import { ERROR_CODES, type Result } from './errors.js'
import {
  decodeElectionFrame,
  decodeGossip,
  encodeElectionFrame,
  encodeGossip,
  type Heartbeat,
} from './gossip.js'

/**
 * Property-based fuzzing of every decoder: whatever bytes or documents arrive, a decoder returns a
 * value or a typed error with a documented code, and never throws. Seeded, so a failure replays
 * (fast-check prints the seed and the shrunk input); `FUZZ_RUNS` raises the case count.
 */
const RUNS = Number(process.env.FUZZ_RUNS ?? 2_000)
const opts = { numRuns: RUNS, seed: Number(process.env.FUZZ_SEED ?? 20261201), endOnFailure: true }
const codes = new Set<string>(ERROR_CODES)
const enc = new TextEncoder()

function typed<T>(r: Result<T>): boolean {
  return r.ok || (codes.has(r.error.code) && typeof r.error.message === 'string')
}

const hb: Heartbeat = {
  v: 1,
  kind: 'heartbeat',
  cluster: 'c1',
  node: 'n1',
  peerId: '12D3KooWExample',
  incarnation: 3,
  sentAt: 1_700_000_000_000,
  seq: 7,
  priority: 110,
  addrs: ['/ip4/127.0.0.1/tcp/7946/p2p/12D3KooWExample'],
  api: '127.0.0.1:7947',
  configVersion: 0,
}

/** Valid documents with one field replaced by anything: the inputs most likely to reach deep code. */
function mutated(base: Record<string, unknown>): fc.Arbitrary<unknown> {
  const keys = [...Object.keys(base), 'extra', 'msg', 'config', 'cluster']
  return fc
    .tuple(fc.constantFrom(...keys), fc.jsonValue({ maxDepth: 6 }))
    .map(([k, v]) => ({ ...base, [k]: v }))
}

const nested = fc
  .tuple(fc.integer({ min: 1, max: 3_000 }), fc.constantFrom('[', '{"a":'), fc.string({ maxLength: 20 }))
  .map(([depth, open, tail]) => {
    const close = open === '[' ? ']' : '}'
    return `{"v":1,"kind":"heartbeat","x":${open.repeat(depth)}1${close.repeat(depth)}${tail}}`
  })

describe('decoder fuzzing', () => {
  it(`decodeGossip: random bytes, JSON, mutated messages and deep nesting (${RUNS} cases each)`, () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 2_048 }), (b) => typed(decodeGossip(b))),
      opts,
    )
    fc.assert(
      fc.property(fc.jsonValue({ maxDepth: 8 }), (v) =>
        typed(decodeGossip(enc.encode(JSON.stringify(v) ?? ''))),
      ),
      opts,
    )
    fc.assert(
      fc.property(mutated(hb as unknown as Record<string, unknown>), (v) =>
        typed(decodeGossip(enc.encode(JSON.stringify(v)))),
      ),
      opts,
    )
    fc.assert(
      fc.property(nested, (text) => {
        const r = decodeGossip(enc.encode(text))
        if (jsonTextTooDeep(text, MAX_JSON_DEPTH)) return !r.ok && r.error.code === 'GOSSIP_TOO_DEEP'
        return typed(r)
      }),
      opts,
    )
  })

  it('decodeElectionFrame: random bytes, JSON, mutated frames', () => {
    const status = {
      kind: 'status',
      term: 1,
      effectivePriority: 100,
      eligible: true,
      holder: false,
      leader: null,
      config: null,
    }
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 1_024 }), (b) => typed(decodeElectionFrame(b))),
      opts,
    )
    fc.assert(
      fc.property(mutated(status), fc.boolean(), (msg, wrap) =>
        typed(decodeElectionFrame(enc.encode(JSON.stringify(wrap ? { v: 1, msg } : msg)))),
      ),
      opts,
    )
    fc.assert(
      fc.property(nested, (text) => typed(decodeElectionFrame(enc.encode(text)))),
      { ...opts, numRuns: Math.ceil(RUNS / 4) },
    )
  })

  it('what a node encodes, it decodes: encode → decode round-trips for any valid heartbeat fields', () => {
    fc.assert(
      fc.property(
        fc.record({
          incarnation: fc.integer({ min: 0, max: 2 ** 40 }),
          seq: fc.nat(),
          priority: fc.integer({ min: 1, max: 254 }),
          configVersion: fc.maxSafeNat(),
        }),
        (fields) => {
          const msg = { ...hb, ...fields }
          const e = encodeGossip(msg)
          assert.ok(e.ok)
          const d = decodeGossip(e.value)
          return d.ok && isDeepStrictEqual(d.value, msg)
        },
      ),
      opts,
    )
    const r = decodeElectionFrame(
      encodeElectionFrame({ kind: 'release', term: Number.MAX_SAFE_INTEGER, successor: null }),
    )
    assert.ok(r.ok)
  })

  it('config files and API bodies: the zod schemas answer with issues, never a throw', () => {
    const doc = fc.oneof(fc.jsonValue({ maxDepth: 6 }), mutated({ name: 'c1', listeners: [], databases: [] }))
    fc.assert(
      fc.property(doc, (d) => typed(validateClusterConfig(d))),
      opts,
    )
    fc.assert(
      fc.property(fc.oneof(doc, mutated({ node: { id: 'n1' }, cluster: { name: 'c1' } })), (d) =>
        typed(validateConfig(d)),
      ),
      opts,
    )
    for (const schema of [ConfigPutBodySchema, MaintenancePutBodySchema, MembersQuerySchema]) {
      fc.assert(
        fc.property(fc.anything({ maxDepth: 5 }), (d) => typeof schema.safeParse(d).success === 'boolean'),
        { ...opts, numRuns: Math.ceil(RUNS / 2) },
      )
    }
  })

  it('the depth checks agree: JSON text too deep ⇔ its parsed value too deep', () => {
    fc.assert(
      fc.property(fc.jsonValue({ maxDepth: 12 }), fc.integer({ min: 1, max: 12 }), (v, max) => {
        const text = JSON.stringify(v) ?? 'null'
        return jsonTextTooDeep(text, max) === valueTooDeep(JSON.parse(text), max)
      }),
      opts,
    )
  })
})
