import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { agreePrimary, type DbView, type Observation } from './agreement.js'

const primary = (timeline: number): DbView => ({
  writable: true,
  reachable: true,
  inRecovery: false,
  timeline,
  lagBytes: 0,
})
const replica = (lag: number | null = 0): DbView => ({
  writable: false,
  reachable: true,
  inRecovery: true,
  timeline: 1,
  lagBytes: lag,
})
const up: DbView = { writable: false, reachable: true, inRecovery: false, timeline: null, lagBytes: null }
const down: DbView = { writable: false, reachable: false, inRecovery: false, timeline: null, lagBytes: null }

function obs(observer: string, db: string, view: DbView, at = 1000): Observation {
  return { observer, db, view, at }
}

const OBSERVERS = ['p1', 'p2', 'p3']
const everyone = (db: string, view: DbView, at = 1000) => OBSERVERS.map((o) => obs(o, db, view, at))

describe('primary agreement', () => {
  it('agrees on the node a majority sees writable, and lists the replicas with their worst lag', () => {
    const a = agreePrimary(
      [
        ...everyone('pg1', primary(3)),
        ...everyone('pg2', replica(10)),
        obs('p1', 'pg3', replica(5)),
        obs('p2', 'pg3', replica(90)),
      ],
      OBSERVERS,
      1500,
      2000,
    )
    assert.equal(a.primary, 'pg1')
    assert.equal(a.primaryTimeline, 3)
    assert.deepEqual(a.replicas, [
      { db: 'pg2', lagBytes: 10 },
      { db: 'pg3', lagBytes: 90 },
    ])
  })

  it('has no primary without a majority of fresh observations', () => {
    const stale = agreePrimary(everyone('pg1', primary(3), 0), OBSERVERS, 5000, 2000)
    assert.equal(stale.primary, null)
    const minority = agreePrimary([obs('p1', 'pg1', primary(3))], OBSERVERS, 1000, 2000)
    assert.equal(minority.primary, null)
    assert.match(minority.notes.join(), /only 1 fresh observation/)
  })

  it('two writable nodes: the higher timeline wins; the same timeline means no primary', () => {
    const split = agreePrimary(
      [...everyone('old', primary(3)), ...everyone('new', primary(4))],
      OBSERVERS,
      1000,
      2000,
    )
    assert.equal(split.primary, 'new')
    assert.match(split.notes.join(), /old \(timeline 3\)/)
    const tie = agreePrimary(
      [...everyone('a', primary(4)), ...everyone('b', primary(4))],
      OBSERVERS,
      1000,
      2000,
    )
    assert.equal(tie.primary, null)
  })

  it('a node only one observer sees writable is not primary; a down node is neither', () => {
    const a = agreePrimary(
      [
        obs('p1', 'pg1', primary(2)),
        obs('p2', 'pg1', replica()),
        obs('p3', 'pg1', replica()),
        ...everyone('pg2', down),
      ],
      OBSERVERS,
      1000,
      2000,
    )
    assert.equal(a.primary, null)
    assert.deepEqual(
      a.replicas.map((r) => r.db),
      ['pg1'],
    )
  })

  it('a node a majority sees reachable with no role (tcp-only checks) is up, neither primary nor replica', () => {
    const a = agreePrimary(
      [...everyone('pg1', up), obs('p1', 'pg2', up), obs('p2', 'pg2', down), obs('p3', 'pg2', down)],
      OBSERVERS,
      1000,
      2000,
    )
    assert.equal(a.primary, null)
    assert.deepEqual(a.replicas, [])
    assert.deepEqual(a.up, ['pg1'])
  })
})
