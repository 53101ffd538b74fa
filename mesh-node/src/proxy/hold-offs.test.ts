import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { HoldOffs } from './hold-offs.js'

describe('hold-offs', () => {
  it('holds a backend for holdMs of the injected clock, with its reason', () => {
    let now = 1_000
    const h = new HoldOffs({ mono: () => now }, 200)
    assert.equal(h.hold('a', 'cannot connect'), true)
    assert.equal(h.hold('a', 'is not accepting sessions (57P03)'), false, 'already held: no second log')
    assert.equal(h.isHeld('a'), true)
    assert.equal(h.isHeld('b'), false)
    now += 100
    assert.deepEqual(h.list(), [
      { backend: 'a', reason: 'is not accepting sessions (57P03)', remainingMs: 100 },
    ])
    now += 200
    assert.equal(h.isHeld('a'), false)
    assert.deepEqual(h.list(), [])
    h.prune()
    assert.equal(h.size, 0)
    assert.equal(h.hold('a', 'again'), true)
  })
})
