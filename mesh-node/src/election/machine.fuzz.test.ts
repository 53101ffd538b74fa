import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import {
  type ElectionConfig,
  ElectionConfigSchema,
  type ElectionMessage,
  ElectionMessageSchema,
  MAX_TERM_JUMP,
} from '@pgmesh/protocol'
import fc from 'fast-check'
import { electionStep, initElection } from './machine.js'
import type { ElectionAction, ElectionEvent, ElectionState } from './types.js'

/**
 * Property-based fuzzing of the election step: any sequence of decodable frames (extreme counters
 * included), timers, member lists, checks and operator events. The step never throws, never emits a
 * frame a peer would refuse, never moves its term by more than MAX_TERM_JUMP + 1 in one step, and
 * never persists a value outside the schema. `FUZZ_RUNS` raises the case count.
 */
const RUNS = Number(process.env.FUZZ_RUNS ?? 1_000)
const opts = { numRuns: RUNS, seed: Number(process.env.FUZZ_SEED ?? 20261201), endOnFailure: true }
const VOTERS = ['a', 'b', 'c']
const SENDERS = ['a', 'b', 'c', 'evil', 'joiner']

const counter = fc.oneof(
  fc.integer({ min: 0, max: 12 }),
  fc.constantFrom(Number.MAX_SAFE_INTEGER, Number.MAX_SAFE_INTEGER - 1, MAX_TERM_JUMP, MAX_TERM_JUMP + 1),
  fc.maxSafeNat(),
)
const clock = fc.oneof(fc.integer({ min: 0, max: 20_000 }), fc.constant(Number.MAX_SAFE_INTEGER))
const priority = fc.integer({ min: 1, max: 254 })
const id = fc.constantFrom(...SENDERS)
const configId = fc.record({ term: counter, version: counter })
const voterConfig = fc.record({
  term: counter,
  version: counter,
  voters: fc.uniqueArray(id, { minLength: 1, maxLength: 5 }),
  prev: fc.option(fc.uniqueArray(id, { minLength: 1, maxLength: 5 }), { nil: null }),
})

const message: fc.Arbitrary<ElectionMessage> = fc.oneof(
  fc.record({
    kind: fc.constant('status' as const),
    term: counter,
    effectivePriority: priority,
    eligible: fc.boolean(),
    holder: fc.boolean(),
    leader: fc.option(id, { nil: null }),
    config: fc.option(configId, { nil: null }),
  }),
  fc.record({
    kind: fc.constant('voteRequest' as const),
    preVote: fc.boolean(),
    term: counter,
    sentAt: clock,
    effectivePriority: priority,
    eligible: fc.boolean(),
    config: configId,
  }),
  fc.record(
    {
      kind: fc.constant('voteResponse' as const),
      preVote: fc.boolean(),
      term: counter,
      granted: fc.boolean(),
      sentAt: clock,
      promiseMs: fc.integer({ min: 0, max: 3_600_000 }),
    },
    { requiredKeys: ['kind', 'preVote', 'term', 'granted', 'sentAt'] },
  ),
  fc.record({
    kind: fc.constant('lease' as const),
    term: counter,
    sentAt: clock,
    effectivePriority: priority,
    eligible: fc.boolean(),
    config: voterConfig,
  }),
  fc.record(
    {
      kind: fc.constant('leaseAck' as const),
      term: counter,
      sentAt: clock,
      ok: fc.boolean(),
      promiseMs: fc.integer({ min: 0, max: 3_600_000 }),
      effectivePriority: priority,
      eligible: fc.boolean(),
      config: fc.option(configId, { nil: null }),
    },
    { requiredKeys: ['kind', 'term', 'sentAt', 'ok', 'effectivePriority', 'eligible', 'config'] },
  ),
  fc.record({
    kind: fc.constant('release' as const),
    term: counter,
    successor: fc.option(id, { nil: null }),
  }),
)

type Input = { readonly dt: number; readonly event: ElectionEvent }
const input = (from: fc.Arbitrary<string>): fc.Arbitrary<Input> =>
  fc.record({
    dt: fc.oneof(fc.integer({ min: 0, max: 60 }), fc.integer({ min: 0, max: 2_000 })),
    event: fc.oneof(
      { weight: 8, arbitrary: fc.record({ type: fc.constant('message' as const), from, msg: message }) },
      { weight: 3, arbitrary: fc.constant({ type: 'timer' as const }) },
      { weight: 1, arbitrary: fc.record({ type: fc.constant('peerDisconnected' as const), id }) },
      { weight: 1, arbitrary: fc.record({ type: fc.constant('members' as const), ids: fc.uniqueArray(id) }) },
      {
        weight: 1,
        arbitrary: fc.record({
          type: fc.constant('check' as const),
          name: fc.constantFrom('fault', 'x'),
          passing: fc.boolean(),
        }),
      },
      {
        weight: 1,
        arbitrary: fc.record({ type: fc.constant('maintenance' as const), enabled: fc.boolean() }),
      },
    ),
  })

function start(
  quorum: ElectionConfig['quorum'],
  voters: readonly string[] | null,
): { state: ElectionState; now: number } {
  const r = initElection({
    opts: {
      self: 'a',
      priority: 110,
      checks: [{ name: 'fault', weight: 0 }],
      config: ElectionConfigSchema.parse({ quorum }),
    },
    now: 1_000,
    seed: 7,
    persisted: null,
    initialVoters: voters,
  })
  return { state: r.state, now: 1_000 }
}

function checkActions(actions: readonly ElectionAction[]): void {
  for (const a of actions) {
    if (a.type === 'send' || a.type === 'broadcast') {
      const r = ElectionMessageSchema.safeParse(a.msg)
      assert.ok(r.success, `emitted a frame peers refuse: ${JSON.stringify(a.msg)}`)
    }
    if (a.type === 'persist') {
      assert.ok(Number.isSafeInteger(a.state.term) && a.state.term >= 0, `persisted term ${a.state.term}`)
      const v = a.state.voters
      if (v !== null) assert.ok(Number.isSafeInteger(v.version) && Number.isSafeInteger(v.term))
    }
  }
}

function run(
  quorum: ElectionConfig['quorum'],
  voters: readonly string[] | null,
  inputs: readonly Input[],
  each?: (prev: ElectionState, next: ElectionState, actions: readonly ElectionAction[]) => void,
): ElectionState {
  let { state, now } = start(quorum, voters)
  for (const { dt, event } of inputs) {
    now += dt
    const r = electionStep(state, event, now)
    checkActions(r.actions)
    assert.ok(r.state.term - state.term <= MAX_TERM_JUMP + 1, `term jumped ${state.term} → ${r.state.term}`)
    each?.(state, r.state, r.actions)
    state = r.state
  }
  return state
}

describe('election step fuzzing', () => {
  it(`majority: any frames from voters, non-voters and joiners (${RUNS} sequences)`, () => {
    fc.assert(
      fc.property(fc.array(input(id), { maxLength: 60 }), (inputs) => {
        run('majority', VOTERS, inputs)
      }),
      opts,
    )
  })

  it('majority, a joining node (no voters yet): the same holds', () => {
    fc.assert(
      fc.property(fc.array(input(id), { maxLength: 60 }), (inputs) => {
        run('majority', null, inputs)
      }),
      opts,
    )
  })

  it('frames from a non-voter alone never make a MASTER, never move the term, never take a voter configuration', () => {
    fc.assert(
      fc.property(fc.array(input(fc.constant('evil')), { maxLength: 60 }), (inputs) => {
        const first = start('majority', VOTERS).state
        run('majority', VOTERS, inputs, (prev, next, actions) => {
          assert.ok(!actions.some((a) => a.type === 'acquireVip'), 'a non-voter made this node MASTER')
          // a campaign of its own moves the term by one at most; the non-voter moves nothing
          assert.ok(next.term - prev.term <= 1, `term ${prev.term} → ${next.term} on a non-voter's frame`)
          assert.deepEqual(next.voters, first.voters)
        })
      }),
      opts,
    )
  })

  it('quorum none: any frames, no throw, only decodable frames out', () => {
    fc.assert(
      fc.property(fc.array(input(id), { maxLength: 60 }), (inputs) => {
        run('none', VOTERS, inputs)
      }),
      { ...opts, numRuns: Math.ceil(RUNS / 2) },
    )
  })
})
