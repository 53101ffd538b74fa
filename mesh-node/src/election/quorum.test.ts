import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { effectivePriority, outranks } from './priority.js'
import { compareConfigIds, hasQuorum, leaseDeadline } from './quorum.js'

describe('quorum', () => {
  const simple = { term: 1, version: 0, voters: ['a', 'b', 'c'], prev: null }
  const joint = { term: 1, version: 1, voters: ['a', 'b', 'c', 'd'], prev: ['a', 'b', 'c'] }

  it('needs a majority, and of both sets in a joint configuration', () => {
    assert.ok(hasQuorum(simple, new Set(['a', 'c'])))
    assert.ok(!hasQuorum(simple, new Set(['a', 'd'])))
    assert.ok(!hasQuorum(joint, new Set(['c', 'd'])), 'c,d is no majority of a,b,c')
    assert.ok(!hasQuorum(joint, new Set(['a', 'b'])), 'a,b is no majority of a,b,c,d')
    assert.ok(hasQuorum(joint, new Set(['a', 'b', 'd'])))
  })

  it('bounds the lease by the quorum-th latest promise end, minus drift', () => {
    const acks = new Map([
      ['b', 1250],
      ['c', 1150],
    ])
    assert.equal(leaseDeadline(simple, acks, 'a', 10), 1250 - 10)
    assert.equal(leaseDeadline(joint, acks, 'a', 10), 1150 - 10, 'a,b,c,d needs a third promise: c')
    assert.equal(leaseDeadline(simple, new Map(), 'a', 10), Number.NEGATIVE_INFINITY)
  })

  it('orders configurations by term, then version', () => {
    assert.ok(compareConfigIds({ term: 2, version: 0 }, { term: 1, version: 9 }) > 0)
    assert.ok(compareConfigIds({ term: 1, version: 1 }, { term: 1, version: 2 }) < 0)
    assert.ok(compareConfigIds(null, { term: 0, version: 0 }) < 0)
  })
})

describe('effective priority', () => {
  const checks = [
    { name: 'pg', weight: -20 },
    { name: 'bonus', weight: 5 },
    { name: 'vip-route', weight: 0 },
  ]

  it('applies Keepalived weights', () => {
    assert.deepEqual(effectivePriority(100, checks, new Set()), { priority: 105, eligible: true })
    assert.deepEqual(effectivePriority(100, checks, new Set(['pg'])), { priority: 85, eligible: true })
    assert.deepEqual(effectivePriority(100, checks, new Set(['bonus'])), { priority: 100, eligible: true })
    assert.deepEqual(effectivePriority(100, checks, new Set(['vip-route'])), {
      priority: 105,
      eligible: false,
    })
  })

  it('clamps to 1..254 and breaks ties by id', () => {
    assert.equal(effectivePriority(10, [{ name: 'x', weight: -50 }], new Set(['x'])).priority, 1)
    assert.equal(effectivePriority(250, [{ name: 'x', weight: 50 }], new Set()).priority, 254)
    assert.ok(outranks(100, 'b', 100, 'a'))
    assert.ok(!outranks(99, 'z', 100, 'a'))
  })
})
