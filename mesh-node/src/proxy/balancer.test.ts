import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { type Candidate, newBalancerState, pickBackend } from './balancer.js'

const c = (id: string, weight = 1, active = 0): Candidate => ({ id, weight, active })

function spread(picks: (Candidate | null)[]): Record<string, number> {
  const out: Record<string, number> = {}
  for (const p of picks) if (p !== null) out[p.id] = (out[p.id] ?? 0) + 1
  return out
}

describe('backend selection', () => {
  it('round robin follows the weights evenly', () => {
    const st = newBalancerState()
    const pool = [c('a', 3), c('b', 1)]
    const picks = Array.from({ length: 8 }, () => pickBackend('roundrobin', pool, st, 'x'))
    assert.deepEqual(spread(picks), { a: 6, b: 2 })
    // smooth: never three a's in a row within a cycle of 4
    assert.notDeepEqual(
      picks.slice(0, 4).map((p) => p?.id),
      ['a', 'a', 'a', 'b'],
    )
  })

  it('leastconn picks the fewest connections per weight', () => {
    const pick = pickBackend('leastconn', [c('a', 1, 5), c('b', 2, 6), c('c', 1, 4)], newBalancerState(), 'x')
    assert.equal(pick?.id, 'b')
  })

  it('source maps one client to one backend', () => {
    const pool = [c('a'), c('b'), c('c')]
    const st = newBalancerState()
    const first = pickBackend('source', pool, st, '198.18.0.9')
    for (let i = 0; i < 10; i++) assert.equal(pickBackend('source', pool, st, '198.18.0.9')?.id, first?.id)
    const clients = Array.from({ length: 60 }, (_, i) => pickBackend('source', pool, st, `10.0.0.${i}`))
    assert.equal(Object.keys(spread(clients)).length, 3)
  })

  it('first takes the first candidate; random takes the less loaded of two', () => {
    assert.equal(pickBackend('first', [c('a'), c('b')], newBalancerState(), 'x')?.id, 'a')
    const seq = [0.1, 0.9]
    const r = () => seq.shift() ?? 0
    assert.equal(pickBackend('random', [c('a', 1, 9), c('b', 1, 1)], newBalancerState(), 'x', r)?.id, 'b')
  })

  it('weight 0 is drained: used only when nothing else is left; no candidate gives null', () => {
    const st = newBalancerState()
    assert.equal(pickBackend('roundrobin', [c('a', 0), c('b', 1)], st, 'x')?.id, 'b')
    assert.equal(pickBackend('roundrobin', [c('a', 0)], st, 'x')?.id, 'a')
    assert.equal(pickBackend('leastconn', [], st, 'x'), null)
  })
})
