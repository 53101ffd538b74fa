import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { type Heartbeat, MAX_INCARNATION, type MembershipTimings } from '@pgmesh/protocol'
import fc from 'fast-check'
import { testHeartbeat } from '../testing/heartbeats.js'
import {
  initialMembership,
  MAX_MEMBERS,
  MAX_PENDING_MEMBERS,
  type MembershipEvent,
  type MembershipState,
  membershipStep,
  redialTargets,
} from './membership.js'

/**
 * Property-based fuzzing of the membership step: heartbeats under chosen or invented ids and peer
 * ids, extreme counters, leaves, relayed removals, disconnects and ticks. It never throws, the
 * table stays within its caps, and no removal evicts a member this node hears from.
 */
const RUNS = Number(process.env.FUZZ_RUNS ?? 1_000)
const opts = { numRuns: RUNS, seed: Number(process.env.FUZZ_SEED ?? 20261201), endOnFailure: true }
const T: MembershipTimings = {
  heartbeatIntervalMs: 100,
  suspectTimeoutMs: 300,
  deadTimeoutMs: 1000,
  leftRetentionMs: 5000,
}

const node = fc.oneof(fc.constantFrom('self', 'a', 'b', 'c'), fc.stringMatching(/^[a-z][a-z0-9]{0,6}$/))
const peer = fc.oneof(fc.constantFrom('pa', 'pb', 'pc'), fc.stringMatching(/^p[a-z0-9]{1,6}$/))
const counter = fc.oneof(
  fc.integer({ min: 0, max: 20 }),
  fc.constant(MAX_INCARNATION),
  fc.integer({ min: 0, max: MAX_INCARNATION }),
)

const heartbeat: fc.Arbitrary<Heartbeat> = fc
  .record({
    node,
    peerId: peer,
    incarnation: counter,
    seq: counter,
    priority: fc.integer({ min: 1, max: 254 }),
  })
  .map((f) => ({
    v: 1 as const,
    kind: 'heartbeat' as const,
    cluster: 'c',
    sentAt: 0,
    addrs: [`/ip4/127.0.0.1/tcp/1/p2p/${f.peerId}`],
    api: null,
    configVersion: 0,
    ...f,
  }))

const event: fc.Arbitrary<MembershipEvent> = fc.oneof(
  { weight: 8, arbitrary: heartbeat.map((msg) => ({ type: 'heartbeat' as const, msg })) },
  {
    weight: 1,
    arbitrary: fc.record({ node, peerId: peer, incarnation: counter }).map((f) => ({
      type: 'leave' as const,
      msg: { v: 1 as const, kind: 'leave' as const, cluster: 'c', sentAt: 0, ...f },
    })),
  },
  { weight: 1, arbitrary: peer.map((peerId) => ({ type: 'peerDisconnected' as const, peerId })) },
  {
    weight: 2,
    arbitrary: fc
      .record(
        { id: node, incarnation: counter, ageMs: fc.integer({ min: 0, max: 10_000 }) },
        { requiredKeys: ['id'] },
      )
      .map((r) => ({ type: 'remove' as const, ...r })),
  },
  { weight: 2, arbitrary: fc.constant({ type: 'tick' as const }) },
)

function live(s: MembershipState, id: string): boolean {
  const st = s.members.get(id)?.state
  return st === 'alive' || st === 'suspect'
}

describe('membership step fuzzing', () => {
  it(`any events: no throw, caps hold, removals never evict a member heard from (${RUNS} sequences)`, () => {
    fc.assert(
      fc.property(
        fc.array(fc.record({ dt: fc.integer({ min: 0, max: 1_500 }), event }), { maxLength: 120 }),
        (inputs) => {
          let s = initialMembership('self')
          let now = 0
          for (const { dt, event: e } of inputs) {
            now += dt
            const r = membershipStep(s, e, now, T)
            if (e.type === 'remove' && live(s, e.id)) {
              assert.ok(live(r.state, e.id), `removal evicted live member ${e.id}`)
              assert.ok(!r.state.removed.has(e.id) || s.removed.has(e.id))
            }
            s = r.state
            assert.ok(s.members.size <= MAX_MEMBERS)
            assert.ok(!s.members.has('self'))
            let pending = 0
            for (const m of s.members.values())
              if (!m.confirmed && (m.state === 'alive' || m.state === 'suspect')) pending++
            assert.ok(pending <= MAX_PENDING_MEMBERS, `${pending} pending members`)
            const targets = redialTargets(s, 4)
            assert.ok(targets.length <= 4)
            assert.equal(new Set(targets.map((t) => t.peerId)).size, targets.length)
          }
        },
      ),
      opts,
    )
  })

  it('a flood of invented ids under fresh peer ids is held to MAX_PENDING_MEMBERS', () => {
    fc.assert(
      fc.property(
        fc.uniqueArray(fc.stringMatching(/^[a-z][a-z0-9]{2,8}$/), { minLength: 20, maxLength: 200 }),
        (ids) => {
          let s = initialMembership('self')
          for (const [i, id] of ids.entries()) {
            s = membershipStep(
              s,
              {
                type: 'heartbeat',
                msg: testHeartbeat(id, { peerId: `p-${id}` }),
              },
              i,
              T,
            ).state
          }
          return s.members.size <= MAX_PENDING_MEMBERS
        },
      ),
      opts,
    )
  })
})
