import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import type { Heartbeat } from '@pgmesh/protocol'
import { TEST_TIMINGS, testHeartbeat } from '../testing/heartbeats.js'
import {
  initialMembership,
  MAX_MEMBERS,
  MAX_PENDING_MEMBERS,
  type MembershipChange,
  type MembershipEvent,
  type MembershipState,
  membershipStep,
  redialTargets,
  unconnectedMembers,
} from './membership.js'

const T = TEST_TIMINGS
const hb = (node: string, incarnation: number, seq: number, extra: Partial<Heartbeat> = {}) =>
  testHeartbeat(node, { incarnation, seq, addrs: [`/ip4/127.0.0.1/tcp/1/p2p/peer-${node}`], ...extra })

function run(events: readonly (readonly [number, MembershipEvent])[], start = initialMembership('self')) {
  let s: MembershipState = start
  const changes: MembershipChange[] = []
  for (const [now, e] of events) {
    const r = membershipStep(s, e, now, T)
    s = r.state
    changes.push(...r.changes)
  }
  return { s, changes }
}

describe('membership: relayed removals', () => {
  it('a relayed removal cannot evict a member this node hears from, at any incarnation', () => {
    const { s } = run([
      [0, { type: 'heartbeat', msg: hb('master', 5, 1) }],
      [50, { type: 'remove', id: 'master', incarnation: 5, ageMs: 0 }],
      [60, { type: 'remove', id: 'master', incarnation: 2 ** 40, ageMs: 0 }],
      [100, { type: 'heartbeat', msg: hb('master', 5, 2) }],
    ])
    assert.equal(s.members.get('master')?.state, 'alive')
    assert.equal(
      s.removed.has('master'),
      false,
      'no removal is remembered that would hide its next heartbeats',
    )
  })

  it('nor a suspect one (one closed connection makes a member suspect at once)', () => {
    const { s } = run([
      [0, { type: 'heartbeat', msg: hb('m', 5, 1) }],
      [10, { type: 'peerDisconnected', peerId: 'peer-m' }],
      [20, { type: 'remove', id: 'm', incarnation: 5, ageMs: 0 }],
    ])
    assert.equal(s.members.get('m')?.state, 'suspect')
    assert.equal(s.removed.has('m'), false)
  })
})

describe('membership: invented member ids are bounded', () => {
  it('one peer id holds one live member id: a second id from the same peer is refused and reported', () => {
    const { s, changes } = run([
      [0, { type: 'heartbeat', msg: hb('a', 1, 1) }],
      [10, { type: 'heartbeat', msg: hb('b', 1, 1, { peerId: 'peer-a' }) }],
    ])
    assert.equal(s.members.has('b'), false)
    assert.ok(changes.some((c) => c.type === 'refused' && c.id === 'b' && c.reason === 'peerIdInUse'))
  })

  it('at most MAX_PENDING_MEMBERS unconfirmed members at once, and the table never exceeds MAX_MEMBERS', () => {
    const events: [number, MembershipEvent][] = []
    for (let i = 0; i < 300; i++) events.push([i, { type: 'heartbeat', msg: hb(`x${i}`, 1, 1) }])
    const { s, changes } = run(events)
    assert.equal(s.members.size, MAX_PENDING_MEMBERS)
    assert.ok(changes.some((c) => c.type === 'refused' && c.reason === 'tooManyPending'))
    // a flood that confirms itself and then goes quiet fills the table only up to the cap
    let st = s
    for (let round = 0; round < 80; round++) {
      const t0 = 10_000 + round * 3_000
      const batch: [number, MembershipEvent][] = []
      for (let i = 0; i < MAX_PENDING_MEMBERS; i++) {
        const id = `r${round}-${i}`
        batch.push([t0, { type: 'heartbeat', msg: hb(id, 1, 1) }])
        batch.push([t0 + 150, { type: 'heartbeat', msg: hb(id, 1, 2) }])
      }
      batch.push([t0 + 2_000, { type: 'tick' }])
      st = run(batch, st).s
      assert.ok(st.members.size <= MAX_MEMBERS, `${st.members.size} members after round ${round}`)
    }
    // a real member still gets in once the flood stops
    const { s: after } = run(
      [
        [1_000_000, { type: 'tick' }],
        [1_000_001, { type: 'heartbeat', msg: hb('real', 1, 1) }],
      ],
      st,
    )
    assert.equal(after.members.get('real')?.state, 'alive')
  })

  it('redial targets: confirmed silent members only, one per peer id, at most the asked number', () => {
    const events: [number, MembershipEvent][] = []
    for (let i = 0; i < 12; i++) {
      events.push([0, { type: 'heartbeat', msg: hb(`m${i}`, 1, 1) }])
      events.push([200, { type: 'heartbeat', msg: hb(`m${i}`, 1, 2) }])
    }
    events.push([300, { type: 'heartbeat', msg: hb('once', 1, 1) }])
    events.push([2_000, { type: 'tick' }])
    const { s } = run(events)
    const targets = redialTargets(s, 8)
    assert.equal(targets.length, 8)
    assert.ok(
      targets.every((t) => t.id.startsWith('m')),
      'a member heard once is not redialled',
    )
    assert.equal(new Set(targets.map((t) => t.peerId)).size, 8)
  })

  it('unconnected members: confirmed, alive and not connected only, by id, at most the asked number', () => {
    const events: [number, MembershipEvent][] = []
    for (let i = 0; i < 12; i++) {
      events.push([0, { type: 'heartbeat', msg: hb(`m${String(i).padStart(2, '0')}`, 1, 1) }])
      events.push([200, { type: 'heartbeat', msg: hb(`m${String(i).padStart(2, '0')}`, 1, 2) }])
    }
    events.push([250, { type: 'heartbeat', msg: hb('once', 1, 1) }])
    const { s } = run(events)
    const connected = new Set(['peer-m00', 'peer-m01'])
    const targets = unconnectedMembers(s, (p) => connected.has(p), 5)
    assert.deepEqual(
      targets.map((t) => t.id),
      ['m02', 'm03', 'm04', 'm05', 'm06'],
      'connected ones and a member heard once (an invented id) are left out',
    )
    const later = run([[5_000, { type: 'tick' }]], s).s
    assert.deepEqual(
      unconnectedMembers(later, () => false),
      [],
      "silent members are the redial loop's",
    )
  })
})
