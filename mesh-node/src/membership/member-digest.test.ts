import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { TEST_TIMINGS, testHeartbeat } from '../testing/heartbeats.js'
import { MemberDigest, unknownPeers } from './member-digest.js'
import { initialMembership, type MembershipState, membershipStep } from './membership.js'

const T = TEST_TIMINGS
const hb = (node: string, seq: number) =>
  testHeartbeat(node, { seq, addrs: [`/ip4/127.0.0.1/tcp/1/p2p/peer-${node}`] })

/** A seed's membership and its digest, driven by heartbeats and ticks. */
function seed() {
  let state: MembershipState = initialMembership('seed')
  const digest = new MemberDigest('seed', () => state)
  const step = (now: number, e: Parameters<typeof membershipStep>[1]) => {
    state = membershipStep(state, e, now, T).state
  }
  return { digest, step, listed: () => (digest.heartbeatFields().peers ?? []).map((p) => p.node).sort() }
}

describe('member digest (push-pull in heartbeats)', () => {
  it('two joiners that connect at the same moment learn each other from the seed’s next heartbeat', () => {
    const s = seed()
    // both connect before the seed has heard either: the digest for the connections lists nobody
    s.digest.peerConnected()
    s.digest.peerConnected()
    assert.deepEqual(s.listed(), [])
    // then their heartbeats arrive: the next heartbeat tells each about the other
    s.step(10, { type: 'heartbeat', msg: hb('n2', 1) })
    s.step(12, { type: 'heartbeat', msg: hb('n3', 1) })
    assert.deepEqual(s.listed(), ['n2', 'n3'])
    // nothing new since: no digest
    s.step(110, { type: 'heartbeat', msg: hb('n2', 2) })
    assert.deepEqual(s.listed(), [])
  })

  it('a member back from dead is announced again; a new connection always gets the digest', () => {
    const s = seed()
    s.step(0, { type: 'heartbeat', msg: hb('n2', 1) })
    assert.deepEqual(s.listed(), ['n2'])
    s.step(2000, { type: 'tick' })
    assert.deepEqual(s.listed(), [], 'a dead member is not listed')
    s.step(2100, { type: 'heartbeat', msg: hb('n2', 5) })
    assert.deepEqual(s.listed(), ['n2'])
    assert.deepEqual(s.listed(), [])
    s.digest.peerConnected()
    assert.deepEqual(s.listed(), ['n2'])
  })

  it('a receiver dials only the members it does not know, never itself', () => {
    let state = initialMembership('n2')
    state = membershipStep(state, { type: 'heartbeat', msg: hb('seed', 1) }, 0, T).state
    const digest = [
      { node: 'seed', peerId: 'peer-seed', addrs: [] },
      { node: 'n2', peerId: 'peer-n2', addrs: [] },
      { node: 'n3', peerId: 'peer-n3', addrs: [] },
    ]
    assert.deepEqual(
      unknownPeers(digest, 'n2', state).map((p) => p.node),
      ['n3'],
    )
  })
})
