import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { describe, it } from 'node:test'
import { jsonTextTooDeep, MAX_CONFIG_DEPTH, MAX_JSON_DEPTH, valueTooDeep } from './codec.js'
import { decodeElectionFrame, decodeGossip, encodeGossip, type Heartbeat, MAX_INCARNATION } from './gossip.js'

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
const bytes = (s: string) => new TextEncoder().encode(s)

describe('gossip codec', () => {
  it('a heartbeat may carry a bounded policy delta; an oversized or malformed one fails the message', () => {
    const policy = {
      seq: 1,
      listeners: [
        {
          name: 'pg',
          rate: [{ source: '127.0.0.2', used: 5 }],
          stick: [{ source: '::1', backend: '10.0.0.11:5432', ageMs: 20 }],
        },
      ],
    }
    const e = encodeGossip({ ...hb, policy })
    assert.ok(e.ok)
    assert.deepEqual(decodeGossip(e.value), { ok: true, value: { ...hb, policy } })
    const many = Array.from({ length: 129 }, (_, i) => ({ source: `10.0.0.${i}`, used: 1 }))
    const big = { ...hb, policy: { seq: 2, listeners: [{ name: 'pg', rate: many, stick: [] }] } }
    const r = decodeGossip(bytes(JSON.stringify(big)))
    assert.equal(r.ok, false)
    const bad = {
      ...hb,
      policy: { seq: 3, listeners: [{ name: 'pg', rate: [{ source: 'evil', used: 1 }], stick: [] }] },
    }
    assert.equal(decodeGossip(bytes(JSON.stringify(bad))).ok, false)
  })

  it('round-trips a heartbeat and a leave', () => {
    const e = encodeGossip(hb)
    assert.ok(e.ok)
    assert.deepEqual(decodeGossip(e.value), { ok: true, value: hb })
    const leave = {
      v: 1,
      kind: 'leave',
      cluster: 'c1',
      node: 'n1',
      peerId: 'p',
      incarnation: 1,
      sentAt: 1,
    } as const
    const l = encodeGossip(leave)
    assert.ok(l.ok)
    assert.deepEqual(decodeGossip(l.value), { ok: true, value: leave })
  })

  it('strips unknown fields so newer senders stay readable', () => {
    const r = decodeGossip(bytes(JSON.stringify({ ...hb, futureField: { x: 1 } })))
    assert.ok(r.ok)
    assert.equal('futureField' in r.value, false)
  })

  it('maps every kind of bad input to a code, never an exception', () => {
    const cases: [Uint8Array, string][] = [
      [new Uint8Array([0xff, 0xfe, 0x00]), 'GOSSIP_NOT_UTF8'],
      [bytes('{"v":1,'), 'GOSSIP_NOT_JSON'],
      [bytes('[1,2]'), 'GOSSIP_INVALID'],
      [bytes('null'), 'GOSSIP_INVALID'],
      [bytes(JSON.stringify({ ...hb, v: 2 })), 'GOSSIP_UNSUPPORTED_VERSION'],
      [bytes(JSON.stringify({ ...hb, priority: 999 })), 'GOSSIP_INVALID'],
      [bytes(JSON.stringify({ ...hb, kind: 'nope' })), 'GOSSIP_INVALID'],
      [bytes(JSON.stringify({ ...hb, addrs: new Array(17).fill('/ip4/1.2.3.4/tcp/1') })), 'GOSSIP_INVALID'],
      [new Uint8Array(70_000), 'GOSSIP_TOO_LARGE'],
    ]
    for (const [input, code] of cases) {
      const r = decodeGossip(input, 65_536)
      assert.ok(!r.ok)
      assert.equal(r.error.code, code)
    }
  })

  it('survives random bytes', () => {
    for (let i = 0; i < 2000; i++) {
      const r = decodeGossip(randomBytes(1 + (i % 300)))
      assert.equal(r.ok, false)
    }
  })

  it('refuses to encode past the limit', () => {
    const r = encodeGossip({ ...hb, api: 'x'.repeat(200) }, 100)
    assert.ok(!r.ok)
    assert.equal(r.error.code, 'GOSSIP_TOO_LARGE')
  })
})

describe('election frames', () => {
  const ack = {
    kind: 'leaseAck',
    term: 3,
    sentAt: 1234.5,
    ok: true,
    effectivePriority: 100,
    eligible: true,
    config: { term: 1, version: 0 },
  }
  const frame = (msg: unknown) => new TextEncoder().encode(JSON.stringify({ v: 1, msg }))

  it('strip unknown fields, so a node still reads the frames of a newer one (rolling upgrade)', () => {
    const r = decodeElectionFrame(frame({ ...ack, promiseMs: 250, futureField: 'x' }))
    assert.ok(r.ok, JSON.stringify(r))
    assert.equal('futureField' in r.value, false)
    assert.equal(r.value.kind === 'leaseAck' ? r.value.promiseMs : null, 250)
    assert.ok(decodeElectionFrame(frame(ack)).ok, 'a frame of an older node (no promiseMs) is read too')
  })

  it('still refuse a frame whose known fields are wrong', () => {
    const r = decodeElectionFrame(frame({ ...ack, term: -1 }))
    assert.equal(r.ok, false)
  })
})

describe('inbound bounds before parsing', () => {
  const nested = (depth: number) => `${'['.repeat(depth)}${']'.repeat(depth)}`

  it('a gossip message or election frame nested too deep is GOSSIP_TOO_DEEP, whatever the depth', () => {
    for (const depth of [MAX_JSON_DEPTH + 1, 5_000, 200_000]) {
      const g = decodeGossip(bytes(`{"v":1,"kind":"heartbeat","x":${nested(depth)}}`))
      assert.equal(g.ok ? 'ok' : g.error.code, 'GOSSIP_TOO_DEEP')
      // an election frame is at most 16 KiB: deeper than that is refused by its size first
      const e = decodeElectionFrame(bytes(`{"v":1,"msg":{"kind":"status","x":${nested(depth)}}}`))
      assert.equal(e.ok ? 'ok' : e.error.code, depth > 5_000 ? 'GOSSIP_TOO_LARGE' : 'GOSSIP_TOO_DEEP')
    }
  })

  it('brackets inside strings do not count, and a message within the bound decodes', () => {
    const hbText = JSON.stringify({ ...hb, api: '[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[\\"{{{{' })
    assert.equal(jsonTextTooDeep(hbText, 4), false)
    const r = decodeGossip(bytes(JSON.stringify({ ...hb, future: JSON.parse(nested(MAX_JSON_DEPTH - 1)) })))
    assert.ok(r.ok, JSON.stringify(r))
  })

  it('valueTooDeep walks without recursion and stops on self-reference', () => {
    let deep: unknown[] = []
    const root = deep
    for (let i = 0; i < 100_000; i++) {
      const next: unknown[] = []
      deep.push(next)
      deep = next
    }
    assert.equal(valueTooDeep(root, MAX_CONFIG_DEPTH), true)
    assert.equal(valueTooDeep({ a: [{ b: 1 }] }, 3), false)
    assert.equal(valueTooDeep({ a: [{ b: [] }] }, 3), true)
    const loop: unknown[] = []
    loop.push(loop)
    assert.equal(valueTooDeep(loop, 1_000_000, 10_000), true)
  })
})

describe('sane counters', () => {
  it('an incarnation beyond MAX_INCARNATION (a restart could never supersede it) is refused', () => {
    const at = (incarnation: number) => decodeGossip(bytes(JSON.stringify({ ...hb, incarnation })))
    assert.ok(at(Math.floor(Date.now() / 1000)).ok, 'a wall-clock incarnation of today decodes')
    assert.ok(at(MAX_INCARNATION).ok)
    const r = at(Number.MAX_SAFE_INTEGER)
    assert.equal(r.ok ? 'ok' : r.error.code, 'GOSSIP_INVALID')
    const removed = decodeGossip(
      bytes(JSON.stringify({ ...hb, removed: [{ node: 'n2', incarnation: MAX_INCARNATION + 1, ageMs: 0 }] })),
    )
    assert.equal(removed.ok, false)
  })
})
