import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import type { Heartbeat, Leave, MembershipTimings } from '@pgmesh/protocol'
import {
  initialMembership,
  type MembershipEvent,
  type MembershipState,
  membershipStep,
  memberViews,
} from './membership.js'

const T: MembershipTimings = {
  heartbeatIntervalMs: 100,
  suspectTimeoutMs: 300,
  deadTimeoutMs: 1000,
  leftRetentionMs: 5000,
}

function hb(node: string, incarnation: number, seq: number, extra: Partial<Heartbeat> = {}): Heartbeat {
  return {
    v: 1,
    kind: 'heartbeat',
    cluster: 'c',
    node,
    peerId: `peer-${node}`,
    incarnation,
    sentAt: 0,
    seq,
    priority: 100,
    addrs: [],
    api: null,
    configVersion: 0,
    ...extra,
  }
}
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

  it('operator removal drops a member; a leave from another peer id is ignored', () => {
    const { s } = run([
      [0, { type: 'heartbeat', msg: hb('a', 1, 1) }],
      [0, { type: 'heartbeat', msg: hb('b', 1, 1) }],
      [1, { type: 'leave', msg: { ...leave('b', 1), peerId: 'impostor' } }],
      [2, { type: 'remove', id: 'a' }],
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
  })
})
