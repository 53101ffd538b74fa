import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { ListenerConfigSchema, PolicyDeltaSchema } from '@pgmesh/protocol'
import { ListenerPolicy } from './listener-policy.js'
import { MeshPolicy } from './mesh-policy.js'

function config(over: Record<string, unknown>) {
  return ListenerConfigSchema.parse({ name: 'pg', bind: '127.0.0.1:6432', role: 'replica', ...over })
}

/** Two nodes' policies for one listener, each with its MeshPolicy, exchanging deltas as heartbeats would. */
function twoNodes(over: Record<string, unknown>) {
  const a = new ListenerPolicy(config(over))
  const b = new ListenerPolicy(config(over))
  const meshA = new MeshPolicy(() => new Map([['pg', a]]))
  const meshB = new MeshPolicy(() => new Map([['pg', b]]))
  /** one heartbeat each way; the deltas go through the wire schema as a heartbeat's would */
  const exchange = (now: number) => {
    const da = meshA.exportDelta(now)
    const db = meshB.exportDelta(now)
    if (da !== undefined) meshB.mergeRemote('a', PolicyDeltaSchema.parse(JSON.parse(JSON.stringify(da))), now)
    if (db !== undefined) meshA.mergeRemote('b', PolicyDeltaSchema.parse(JSON.parse(JSON.stringify(db))), now)
    return { da, db }
  }
  return { a, b, meshA, meshB, exchange }
}

describe('ListenerPolicy', () => {
  it('allow/deny decide first, with reasons and per-rule counts in the status', () => {
    const p = new ListenerPolicy(config({ allow: ['127.0.0.0/8', '::1'], deny: ['127.0.0.3'] }))
    assert.deepEqual(p.admit('127.0.0.2', 0), { ok: true, source: '127.0.0.2', slot: '127.0.0.2' })
    assert.deepEqual(p.admit('::ffff:127.0.0.2', 0), { ok: true, source: '127.0.0.2', slot: '127.0.0.2' })
    assert.equal(p.admit('::1', 0).ok, true)
    const denied = p.admit('127.0.0.3', 0)
    assert.equal(denied.ok, false)
    assert.equal(!denied.ok && denied.reason, 'denied')
    const outside = p.admit('10.0.0.1', 0)
    assert.equal(!outside.ok && outside.reason, 'notAllowed')
    const s = p.status(0)
    assert.equal(s.refused.denied, 1)
    assert.equal(s.refused.notAllowed, 1)
    assert.equal(s.ruleCount, 3)
    assert.deepEqual(s.rules[0], { list: 'allow', cidr: '127.0.0.0/8', hits: 2 })
    assert.ok(s.rules.some((r) => r.list === 'deny' && r.cidr === '127.0.0.3' && r.hits === 1))
  })

  it('limits: connections per source held until release; limited sources in a bounded top list', () => {
    const p = new ListenerPolicy(config({ limits: { maxConnPerSource: 1 } }))
    assert.equal(p.admit('127.0.0.2', 0).ok, true)
    for (let i = 0; i < 3; i++) assert.equal(p.admit('127.0.0.2', 0).ok, false)
    p.release('127.0.0.2')
    assert.equal(p.admit('127.0.0.2', 0).ok, true)
    assert.deepEqual(p.limited(), [{ source: '127.0.0.2', refused: 3 }])
    for (let i = 0; i < 1_000; i++) {
      p.admit(`10.0.${i >> 8}.${i & 255}`, 0)
      p.admit(`10.0.${i >> 8}.${i & 255}`, 0)
    }
    assert.equal(p.limited().length, 10)
    assert.ok(p.sizes().limitedSources <= 64)
  })

  it('IPv6 clients count per /64 by default (a host cannot make itself new sources), per address at 128', () => {
    const p = new ListenerPolicy(config({ limits: { maxConnPerSource: 2 } }))
    const a = p.admit('2001:db8:1:2::1', 0)
    assert.ok(a.ok)
    assert.equal(a.source, '2001:db8:1:2::1', 'the real address for everything else')
    assert.equal(a.slot, '2001:db8:1:2::')
    assert.equal(p.admit('2001:db8:1:2:ffff::9', 0).ok, true)
    const third = p.admit('2001:db8:1:2::3', 0)
    assert.equal(third.ok, false)
    assert.match(!third.ok ? third.detail : '', /from 2001:db8:1:2::\/64/)
    assert.equal(p.admit('2001:db8:1:3::1', 0).ok, true, 'another /64')
    assert.deepEqual(p.limited(), [{ source: '2001:db8:1:2::/64', refused: 1 }])
    p.release(a.slot)
    assert.equal(p.admit('2001:db8:1:2::3', 0).ok, true)
    const perHost = new ListenerPolicy(config({ limits: { maxConnPerSource: 1, ipv6PrefixBits: 128 } }))
    assert.equal(perHost.admit('2001:db8::1', 0).ok, true)
    assert.equal(perHost.admit('2001:db8::2', 0).ok, true)
    assert.equal(perHost.admit('2001:db8::2', 0).ok, false)
  })

  it('sticky: the same backend while it is a candidate, even when the set changes; another when it is gone', () => {
    const p = new ListenerPolicy(config({ stick: { on: 'source', ttlMs: 60_000 } }))
    const db = (id: string) => ({ id })
    let first = true
    const choose = (cs: { id: string }[]) => () => {
      // a balancer that would move the client as soon as the set changes
      const c = first ? cs[0]! : cs[cs.length - 1]!
      first = false
      return c
    }
    const set1 = [db('db1'), db('db2')]
    assert.equal(p.pick('127.0.0.2', set1, 0, choose(set1))?.id, 'db1')
    const set2 = [db('db1'), db('db2'), db('db3')]
    assert.equal(p.pick('127.0.0.2', set2, 10, choose(set2))?.id, 'db1', 'kept when a backend is added')
    const set3 = [db('db2'), db('db3')]
    assert.equal(p.pick('127.0.0.2', set3, 20, choose(set3))?.id, 'db3', 'moved when its backend is gone')
    assert.equal(p.stuckTo('127.0.0.2', 20), 'db3')
    assert.equal(p.stuckTo('127.0.0.2', 60_021), null, 'expired')
  })

  it('a reload keeps rule counts, buckets and sticky entries; dropping a part drops its state', () => {
    const p = new ListenerPolicy(
      config({ deny: ['127.0.0.3'], limits: { ratePerSource: 1, burst: 1 }, stick: { on: 'source' } }),
    )
    p.admit('127.0.0.3', 0)
    assert.equal(p.admit('127.0.0.2', 0).ok, true)
    p.pick('127.0.0.2', [{ id: 'db1' }], 0, () => ({ id: 'db1' }))
    p.update(
      config({
        deny: ['127.0.0.3', '127.0.0.4'],
        limits: { ratePerSource: 1, burst: 1 },
        stick: { on: 'source' },
      }),
    )
    assert.equal(p.admit('127.0.0.2', 0).ok, false, 'the bucket survived the reload')
    assert.equal(p.stuckTo('127.0.0.2', 0), 'db1')
    assert.equal(p.status(0).rules[0]!.hits, 1)
    p.update(config({}))
    assert.equal(p.admit('127.0.0.2', 0).ok, true)
    assert.equal(p.status(0).stick, null)
  })

  it('PROXY headers are expected from trusted peers only', () => {
    const p = new ListenerPolicy(config({ proxyProtocol: { trusted: ['127.0.0.10/31'] } }))
    assert.equal(p.proxyExpectation('127.0.0.10'), 'required')
    assert.equal(p.proxyExpectation('127.0.0.11'), 'required')
    assert.equal(p.proxyExpectation('127.0.0.12'), 'none')
    p.update(config({ proxyProtocol: { trusted: ['::1'], required: false } }))
    assert.equal(p.proxyExpectation('::1'), 'optional')
    assert.equal(new ListenerPolicy(config({})).proxyExpectation('::1'), 'none')
  })
})

describe('the policy shared through the mesh', () => {
  it('a source over its rate through one node is limited on the other after one exchange', () => {
    const { a, b, exchange } = twoNodes({ limits: { ratePerSource: 5, burst: 5 } })
    let admittedOnA = 0
    for (let i = 0; i < 20; i++) if (a.admit('127.0.0.2', 100).ok) admittedOnA++
    assert.equal(admittedOnA, 5)
    assert.equal(b.admit('127.0.0.9', 100).ok, true, 'another source is untouched')
    const { da } = exchange(150)
    assert.deepEqual(da?.listeners[0]?.rate[0], { source: '127.0.0.2', used: 5 })
    assert.equal(b.admit('127.0.0.2', 150).ok, false, 'limited on the second node too')
    assert.equal(b.status(150).refused.overRate, 1)
    // and it recovers everywhere once it slows down
    assert.equal(b.admit('127.0.0.2', 1_500).ok, true)
  })

  it('the rate is the cluster’s: a source spread over two nodes gets the rate in total, not twice', () => {
    const { a, b, exchange } = twoNodes({ limits: { ratePerSource: 10, burst: 10 } })
    let admitted = 0
    // 40 connections a second to each node for 5 s, a heartbeat every 100 ms
    for (let t = 0; t < 5_000; t += 25) {
      if (a.admit('127.0.0.2', t).ok) admitted++
      if (b.admit('127.0.0.2', t).ok) admitted++
      if (t % 100 === 0) exchange(t)
    }
    // 10 burst + 10/s × 5 s = 60 if perfectly shared; each heartbeat lets at most a little through twice
    assert.ok(admitted <= 80, `${admitted} admitted`)
    assert.ok(admitted >= 50, `${admitted} admitted`)
  })

  it('a sticky entry made on one node is followed by the other (a VIP move keeps the client on its replica)', () => {
    const { a, b, exchange } = twoNodes({ stick: { on: 'source' } })
    const set = [{ id: 'db2' }, { id: 'db3' }]
    a.pick('127.0.0.2', set, 0, () => set[1]!)
    exchange(50)
    assert.equal(b.pick('127.0.0.2', set, 60, () => set[0]!)?.id, 'db3')
    // b's use is newer now: it wins back on a after the next exchange
    const set2 = [{ id: 'db2' }]
    b.pick('127.0.0.2', set2, 70, () => set2[0]!)
    exchange(100)
    assert.equal(a.stuckTo('127.0.0.2', 100), 'db2')
  })

  it('applies a delta once, and again from a restarted peer', () => {
    const { a, meshA, meshB } = twoNodes({ limits: { ratePerSource: 5, burst: 5 } })
    const b2 = new ListenerPolicy(config({ limits: { ratePerSource: 5, burst: 5 } }))
    const meshB2 = new MeshPolicy(() => new Map([['pg', b2]]))
    for (let i = 0; i < 2; i++) b2.admit('127.0.0.2', 0)
    const d = meshB2.exportDelta(0)!
    assert.equal(meshA.mergeRemote('b', d, 0, 1), true)
    assert.equal(meshA.mergeRemote('b', d, 0, 1), false)
    assert.equal(meshA.mergeRemote('b', d, 0, 2), true)
    assert.equal(Math.round(a.status(0).trackedSources), 1)
    assert.equal(meshB.exportDelta(0), undefined, 'nothing happened on b')
  })

  it('the delta stays within the schema’s bounds under a flood of distinct sources', () => {
    const over = {
      limits: { ratePerSource: 1, burst: 1, trackedSources: 1_000 },
      stick: { on: 'source', maxEntries: 1_000 },
    }
    const policies = new Map([
      ['pg', new ListenerPolicy(config(over))],
      ['pg2', new ListenerPolicy(config(over))],
    ])
    const mesh = new MeshPolicy(() => policies)
    for (const p of policies.values()) {
      for (let i = 0; i < 50_000; i++) {
        const s = `10.${i >> 16}.${(i >> 8) & 255}.${i & 255}`
        p.admit(s, 0)
        p.release(s)
        p.pick(s, [{ id: 'db1' }], 0, () => ({ id: 'db1' }))
      }
      assert.deepEqual({ t: p.sizes().trackedSources, s: p.sizes().stickEntries }, { t: 1_000, s: 1_000 })
    }
    const d = mesh.exportDelta(1)!
    assert.equal(PolicyDeltaSchema.safeParse(d).success, true)
    const bytes = JSON.stringify(d).length
    assert.ok(bytes < 17_000, `${bytes} bytes`)
    assert.ok(d.listeners.every((l) => l.rate.length > 0 && l.stick.length > 0))
    // a small gossip message limit: the caller's budget holds too
    for (const p of policies.values()) p.pick('10.9.9.9', [{ id: 'db1' }], 2, () => ({ id: 'db1' }))
    const small = mesh.exportDelta(3, 60)
    assert.ok(small === undefined || JSON.stringify(small.listeners).length <= 60)
    for (const p of policies.values()) p.pick('10.9.9.8', [{ id: 'db1' }], 4, () => ({ id: 'db1' }))
    const fits = mesh.exportDelta(5, 1_000)!
    assert.ok(JSON.stringify(fits.listeners).length <= 1_000)
    assert.equal(fits.listeners.length, 2)
  })
})
