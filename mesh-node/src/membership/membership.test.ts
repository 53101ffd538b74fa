import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import type { Heartbeat, Leave } from '@pgmesh/protocol'
import { TEST_TIMINGS, testHeartbeat } from '../testing/heartbeats.js'
import {
  initialMembership,
  type MembershipEvent,
  type MembershipState,
  membershipStep,
  memberViews,
  removalsToGossip,
  removedViews,
} from './membership.js'

const T = TEST_TIMINGS
const hb = (node: string, incarnation: number, seq: number, extra: Partial<Heartbeat> = {}) =>
  testHeartbeat(node, { incarnation, seq, ...extra })
const leave = (node: string, incarnation: number): Leave => ({
  v: 1,
  kind: 'leave',
  cluster: 'c',
  node,
  peerId: `peer-${node}`,
  incarnation,
  sentAt: 0,
})

function run(events: [number, MembershipEvent][], start = initialMembership('self')) {
  let s: MembershipState = start
  const log: string[] = []
  for (const [now, e] of events) {
    const r = membershipStep(s, e, now, T)
    s = r.state
    for (const c of r.changes)
      log.push(c.type === 'state' ? `${now} ${c.id} ${c.from}->${c.to}` : `${now} ${c.type} ${c.id}`)
  }
  return { s, log }
}
const stateOf = (s: MembershipState, id: string) => s.members.get(id)?.state

describe('membership state machine', () => {
  it('a first heartbeat makes a member alive', () => {
    const { s, log } = run([[0, { type: 'heartbeat', msg: hb('a', 1, 1) }]])
    assert.equal(stateOf(s, 'a'), 'alive')
    assert.deepEqual(log, ['0 a null->alive'])
  })

  it('silence makes it suspect, then dead, at the configured bounds', () => {
    const { s, log } = run([
      [0, { type: 'heartbeat', msg: hb('a', 1, 1) }],
      [299, { type: 'tick' }],
      [300, { type: 'tick' }],
      [999, { type: 'tick' }],
      [1000, { type: 'tick' }],
      [5000, { type: 'tick' }],
    ])
    assert.deepEqual(log, ['0 a null->alive', '300 a alive->suspect', '1000 a suspect->dead'])
    assert.equal(stateOf(s, 'a'), 'dead', 'dead members stay listed until an operator removes them')
  })

  it('a heartbeat brings a suspect or dead member back', () => {
    const { s, log } = run([
      [0, { type: 'heartbeat', msg: hb('a', 1, 1) }],
      [2000, { type: 'tick' }],
      [2100, { type: 'heartbeat', msg: hb('a', 1, 2) }],
    ])
    assert.equal(stateOf(s, 'a'), 'alive')
    assert.deepEqual(log.slice(-1), ['2100 a dead->alive'])
  })

  it('ignores duplicate and reordered heartbeats and older incarnations', () => {
    const { s } = run([
      [0, { type: 'heartbeat', msg: hb('a', 2, 5, { priority: 120 }) }],
      [10, { type: 'heartbeat', msg: hb('a', 2, 4, { priority: 1 }) }],
      [20, { type: 'heartbeat', msg: hb('a', 2, 5, { priority: 2 }) }],
      [30, { type: 'heartbeat', msg: hb('a', 1, 99, { priority: 3 }) }],
    ])
    const a = s.members.get('a')
    assert.equal(a?.priority, 120)
    assert.equal(a?.lastHeard, 0)
  })

  it('leave marks a member left at once and late heartbeats do not resurrect it', () => {
    const { s, log } = run([
      [0, { type: 'heartbeat', msg: hb('a', 1, 1) }],
      [50, { type: 'leave', msg: leave('a', 1) }],
      [60, { type: 'heartbeat', msg: hb('a', 1, 2) }],
      [70, { type: 'tick' }],
    ])
    assert.equal(stateOf(s, 'a'), 'left')
    assert.deepEqual(log, ['0 a null->alive', '50 a alive->left'])
  })

  it('a restarted node (higher incarnation) rejoins after leaving', () => {
    const { s, log } = run([
      [0, { type: 'heartbeat', msg: hb('a', 1, 10) }],
      [50, { type: 'leave', msg: leave('a', 1) }],
      [500, { type: 'heartbeat', msg: hb('a', 2, 1) }],
    ])
    assert.equal(stateOf(s, 'a'), 'alive')
    assert.equal(s.members.get('a')?.incarnation, 2)
    assert.deepEqual(log.slice(-1), ['500 a left->alive'])
  })

  it('a restarted node replaces its dead predecessor', () => {
    const { s } = run([
      [0, { type: 'heartbeat', msg: hb('a', 1, 10) }],
      [2000, { type: 'tick' }],
      [2100, { type: 'heartbeat', msg: hb('a', 2, 1, { peerId: 'new-peer' }) }],
    ])
    assert.equal(stateOf(s, 'a'), 'alive')
    assert.equal(s.members.get('a')?.peerId, 'new-peer')
  })

  it('forgets left members after the retention time', () => {
    const { s, log } = run([
      [0, { type: 'heartbeat', msg: hb('a', 1, 1) }],
      [10, { type: 'leave', msg: leave('a', 1) }],
      [5009, { type: 'tick' }],
      [5010, { type: 'tick' }],
    ])
    assert.equal(s.members.has('a'), false)
    assert.deepEqual(log.slice(-1), ['5010 removed a'])
  })

  it('a disconnect is a fast suspect hint that the next heartbeat clears', () => {
    const { s, log } = run([
      [0, { type: 'heartbeat', msg: hb('a', 1, 1) }],
      [20, { type: 'peerDisconnected', peerId: 'peer-a' }],
      [100, { type: 'heartbeat', msg: hb('a', 1, 2) }],
    ])
    assert.equal(stateOf(s, 'a'), 'alive')
    assert.deepEqual(log, ['0 a null->alive', '20 a alive->suspect', '100 a suspect->alive'])
  })

  it('operator removal drops a dead member; a leave from another peer id is ignored', () => {
    const { s } = run([
      [0, { type: 'heartbeat', msg: hb('a', 1, 1) }],
      [0, { type: 'heartbeat', msg: hb('b', 1, 1) }],
      [1, { type: 'leave', msg: { ...leave('b', 1), peerId: 'impostor' } }],
      [1100, { type: 'heartbeat', msg: hb('b', 1, 2) }],
      [1100, { type: 'tick' }],
      [1101, { type: 'remove', id: 'a' }],
    ])
    assert.equal(s.members.has('a'), false)
    assert.equal(stateOf(s, 'b'), 'alive')
  })

  it('reports a heartbeat claiming our own id as a conflict and ignores it', () => {
    const r = membershipStep(initialMembership('self'), { type: 'heartbeat', msg: hb('self', 1, 1) }, 0, T)
    assert.equal(r.state.members.size, 0)
    assert.deepEqual(r.changes, [{ type: 'idConflict', id: 'self', peerId: 'peer-self' }])
  })

  it('renders views with self first-class and consistent times', () => {
    const { s } = run([[1000, { type: 'heartbeat', msg: hb('a', 1, 1) }]])
    const views = memberViews(
      s,
      {
        peerId: 'p',
        incarnation: 3,
        priority: 110,
        addrs: [],
        api: null,
        configVersion: 0,
        startedAt: 0,
        election: null,
        maintenance: { reason: 'kernel upgrade', since: 9_000_000 },
      },
      1500,
      10_000_000,
    )
    assert.deepEqual(
      views.map((v) => [v.id, v.self, v.state, v.lastHeardAgoMs]),
      [
        ['a', false, 'alive', 500],
        ['self', true, 'alive', null],
      ],
    )
    assert.equal(views[0]?.lastHeardAt, new Date(10_000_000 - 500).toISOString())
    assert.equal(views[0]?.maintenance, null)
    assert.deepEqual(views[1]?.maintenance, {
      reason: 'kernel upgrade',
      since: new Date(9_000_000).toISOString(),
    })
  })

  it("shows a member's maintenance from its heartbeats, and its end", () => {
    const m = { reason: null, since: 5 }
    const { s } = run([[0, { type: 'heartbeat', msg: hb('a', 1, 1, { maintenance: m }) }]])
    assert.deepEqual(s.members.get('a')?.maintenance, m)
    const { s: s2 } = run([[10, { type: 'heartbeat', msg: hb('a', 1, 2) }]], s)
    assert.equal(s2.members.get('a')?.maintenance, null)
  })

  it('a removed member stays out at its incarnation and rejoins as a new one', () => {
    const { s, log } = run([
      [0, { type: 'heartbeat', msg: hb('a', 7, 1) }],
      [1500, { type: 'tick' }],
      [1600, { type: 'remove', id: 'a' }],
      [1700, { type: 'heartbeat', msg: hb('a', 7, 2) }],
    ])
    assert.equal(s.members.has('a'), false, 'a late heartbeat of the removed life is ignored')
    assert.deepEqual(s.removed.get('a'), { incarnation: 7, at: 1600 })
    assert.deepEqual(log.slice(-1), ['1600 removed a'])
    const { s: back, log: log2 } = run([[2000, { type: 'heartbeat', msg: hb('a', 8, 1) }]], s)
    assert.equal(stateOf(back, 'a'), 'alive')
    assert.equal(back.removed.has('a'), false)
    assert.deepEqual(log2, ['2000 a null->alive'])
  })

  it('a relayed removal: a dead member goes at any incarnation, a restarted live one stays', () => {
    const { s, log } = run([
      [0, { type: 'heartbeat', msg: hb('dead', 9, 1) }],
      [0, { type: 'heartbeat', msg: hb('back', 9, 1) }],
      [1500, { type: 'heartbeat', msg: hb('back', 9, 2) }],
      [1500, { type: 'tick' }],
      [1600, { type: 'remove', id: 'dead', incarnation: 3, ageMs: 100 }],
      [1600, { type: 'remove', id: 'back', incarnation: 3, ageMs: 100 }],
      [1600, { type: 'remove', id: 'never-heard', incarnation: 0, ageMs: 100 }],
    ])
    assert.equal(s.members.has('dead'), false)
    assert.equal(stateOf(s, 'back'), 'alive')
    assert.deepEqual([...s.removed.keys()].sort(), ['dead', 'never-heard'])
    assert.deepEqual(s.removed.get('dead'), { incarnation: 3, at: 1500 })
    assert.deepEqual(log.slice(-2), ['1600 removed dead', '1600 removed never-heard'])
  })

  it('forgets a removal after leftRetentionMs counted from the removal, and ignores stale ones', () => {
    const { s } = run([
      [1000, { type: 'remove', id: 'a', incarnation: 2, ageMs: 1000 }],
      [1000, { type: 'remove', id: 'b', incarnation: 2, ageMs: T.leftRetentionMs }],
      [1000, { type: 'remove', id: 'self', incarnation: 2 }],
    ])
    assert.deepEqual([...s.removed.keys()], ['a'])
    assert.deepEqual(removalsToGossip(s, 2000), [{ node: 'a', incarnation: 2, ageMs: 2000 }])
    assert.deepEqual(removedViews(s, 2000, 1_000_000), [
      { id: 'a', incarnation: 2, removedAt: new Date(1_000_000 - 2000).toISOString() },
    ])
    const { s: later } = run([[4999, { type: 'tick' }]], s)
    assert.equal(later.removed.has('a'), true)
    const { s: gone } = run([[5000, { type: 'tick' }]], s)
    assert.equal(gone.removed.size, 0)
  })
})
