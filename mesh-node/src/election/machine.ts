import type { ElectionStatus, VoterConfig } from '@pgmesh/protocol'
import { selfPriority } from './common.js'
import { nextWakeNone, stepNone } from './keepalived.js'
import { nextWakeMajority, stepMajority } from './majority.js'
import { configId } from './quorum.js'
import type {
  Draft,
  ElectionAction,
  ElectionEvent,
  ElectionOptions,
  ElectionState,
  PersistedElection,
  StepResult,
} from './types.js'

export interface ElectionStart {
  readonly opts: ElectionOptions
  /** monotonic clock now (ms) */
  readonly now: number
  /** seeds the election-timeout jitter; the driver passes a random 32-bit integer */
  readonly seed: number
  /** what the last run persisted, or null on first start */
  readonly persisted: PersistedElection | null
  /**
   * The voters when the cluster is first formed (the same list on every founding node), or null for
   * a node joining an existing cluster: it learns the voters from the MASTER and is added by it.
   */
  readonly initialVoters: readonly string[] | null
}

export function initElection(start: ElectionStart): StepResult {
  const { opts, now, persisted, initialVoters } = start
  const founding: VoterConfig | null =
    initialVoters === null || initialVoters.length === 0
      ? null
      : { term: 0, version: 0, voters: [...new Set(initialVoters)].sort(), prev: null }
  // a promise made before the restart may have been longer than today's leaseMs (a config edit)
  const promiseMs = Math.max(opts.config.leaseMs, persisted?.promiseMs ?? 0)
  const state: ElectionState = {
    opts,
    rng: start.seed | 0,
    term: persisted?.term ?? 0,
    votedFor: persisted?.votedFor ?? null,
    voters: persisted?.voters ?? founding,
    role: 'follower',
    failingChecks: new Set(),
    maintenance: false,
    members: founding?.voters ?? [opts.self],
    peers: new Map(),
    promise: null,
    promiseMs,
    promiseMsUntil: now + promiseMs,
    // we may have promised someone a lease just before a restart: make no promise for one lease
    quietUntil: now + promiseMs,
    leader: null,
    lostLeader: null,
    electionAt: now + promiseMs + opts.config.electionTimeoutMinMs,
    nextStatusAt: now,
    round: null,
    deferred: new Map(),
    lead: null,
    preemptAt: null,
    wakeAt: null,
    refusedFrames: 0,
  }
  return electionStep(state, { type: 'timer' }, now)
}

/** The whole election: `(state, event, now) → (state, actions)`. Pure: no clock, timers or I/O. */
export function electionStep(state: ElectionState, event: ElectionEvent, now: number): StepResult {
  const d: Draft = { ...state, ownedPeers: null }
  const out: ElectionAction[] = []
  if (event.type === 'timer') d.wakeAt = null
  if (event.type === 'options') applyOptions(d, event.opts)
  const majority = d.opts.config.quorum === 'majority'
  if (majority) stepMajority(d, event, now, out)
  else stepNone(d, event, now, out)
  const wake = majority ? nextWakeMajority(d) : nextWakeNone(d)
  if (Number.isFinite(wake) && wake !== d.wakeAt) {
    out.push({ type: 'setTimer', name: 'wake', at: wake })
    d.wakeAt = wake
  }
  if (
    d.term !== state.term ||
    d.votedFor !== state.votedFor ||
    d.voters !== state.voters ||
    d.promiseMs !== state.promiseMs
  ) {
    out.unshift({
      type: 'persist',
      state: { term: d.term, votedFor: d.votedFor, voters: d.voters, promiseMs: d.promiseMs },
    })
  }
  return { state: seal(d), actions: out }
}

/**
 * The draft becomes the next state; the step's own reference to the peer table it copied is cleared
 * so the next step copies again (cheaper than building a new object without the field).
 */
function seal(d: Draft): ElectionState {
  d.ownedPeers = null
  return d
}

/** Until when (own clock) this node may serve on the VIP, or null when it is not MASTER. */
export function vipLeaseUntil(state: ElectionState): number | null {
  return state.role === 'leader' && state.lead !== null ? state.lead.leaseUntil : null
}

/**
 * The MASTER as this node knows it for the status API: itself while it leads, else the MASTER it
 * follows, except once its connection to that MASTER closed (a crash, a kill) and no renewal came
 * since. The election keeps following it (a connection can close under a live MASTER), but telling
 * an operator "MASTER: n1" about a dead n1 while no quorum can elect another would be a lie.
 */
export function knownMaster(state: ElectionState): string | null {
  if (state.role === 'leader') return state.opts.self
  return state.leader !== null && state.leader !== state.lostLeader ? state.leader : null
}

/** Frames ignored since start as out of bounds or from a sender that may not move this node. */
export function electionRefusals(state: ElectionState): number {
  return state.refusedFrames
}

/** The election fields for this node's membership heartbeat. */
export function electionStatus(state: ElectionState): ElectionStatus {
  const p = selfPriority(state)
  return {
    term: state.term,
    effectivePriority: p.priority,
    eligible: p.eligible,
    holder: state.role === 'leader',
    leader: state.leader,
    config: configId(state.voters),
  }
}

/**
 * New checks or timings from a config edit. Failing checks no longer configured are forgotten; a
 * check added live only counts once it has a result (the driver adds it to `checks` then). The
 * quorum mode never changes here: the two modes keep different state.
 */
function applyOptions(d: Draft, opts: ElectionOptions): void {
  d.opts = { ...opts, config: { ...opts.config, quorum: d.opts.config.quorum } }
  const names = new Set(opts.checks.map((c) => c.name))
  if ([...d.failingChecks].some((n) => !names.has(n))) {
    d.failingChecks = new Set([...d.failingChecks].filter((n) => names.has(n)))
  }
}
