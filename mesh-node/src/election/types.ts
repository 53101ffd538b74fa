import type {
  ElectionConfig,
  ElectionMessage,
  VoteRequest,
  VoterConfig,
  VoterConfigId,
} from '@pgmesh/protocol'
import type { WeightedCheck } from './priority.js'

export interface ElectionOptions {
  readonly self: string
  /** the node's configured (base) priority */
  readonly priority: number
  readonly checks: readonly WeightedCheck[]
  readonly config: ElectionConfig
}

/** What must survive a restart (Raft's term and vote, plus the voter configuration). */
export interface PersistedElection {
  readonly term: number
  readonly votedFor: string | null
  readonly voters: VoterConfig | null
  /**
   * the longest lease promise (ms) this node may still be bound by: after a restart it makes no
   * promise for this long. Absent in files written before `leaseMs` could change live
   */
  readonly promiseMs?: number
}

export type ElectionRole = 'follower' | 'precandidate' | 'candidate' | 'leader' | 'stopped'

export interface PeerView {
  readonly term: number
  readonly effectivePriority: number
  readonly eligible: boolean
  readonly holder: boolean
  readonly config: VoterConfigId | null
  /** my clock when I last heard anything from the peer */
  readonly heardAt: number
  /** the transport saw the connection close; cleared by the next message */
  readonly disconnected: boolean
  /** highest term in which the peer announced it released the VIP */
  readonly releasedTerm: number
}

/** "I back `to` and nobody else until `until` (my clock)": what a vote or a lease ack gives. */
export interface LeasePromise {
  readonly to: string
  readonly term: number
  readonly until: number
}

export interface VoteRound {
  readonly preVote: boolean
  readonly term: number
  readonly sentAt: number
  readonly grants: ReadonlySet<string>
  /** real votes: voter → the promise length its grant reported */
  readonly promised: ReadonlyMap<string, number>
}

export interface LeaderState {
  /**
   * voter → when (my clock) the promise behind its latest acknowledgement in my term runs out: the
   * acknowledged renewal's send time plus the promise length the voter reported
   */
  readonly acks: ReadonlyMap<string, number>
  readonly leaseUntil: number
  /** voters that acknowledged my current voter configuration in my term */
  readonly configAcks: ReadonlySet<string>
  /** since when a better eligible node has been seen (preemption) */
  readonly preemptSince: number | null
  readonly nextRenewalAt: number
  /** when the next renewal goes to every member, not only the voters (unset: the next one does) */
  readonly nextAnnounceAt?: number
}

export interface DeferredVote {
  readonly request: VoteRequest
  readonly receivedAt: number
}

export interface ElectionState {
  readonly opts: ElectionOptions
  readonly rng: number
  readonly term: number
  readonly votedFor: string | null
  /** agreed voter configuration; null on a joining node until a MASTER sends it */
  readonly voters: VoterConfig | null
  readonly role: ElectionRole
  readonly failingChecks: ReadonlySet<string>
  /** an operator took this node out of service: not eligible (never MASTER), still a voter */
  readonly maintenance: boolean
  /** the membership layer's current member list (the MASTER moves `voters` towards it) */
  readonly members: readonly string[]
  readonly peers: ReadonlyMap<string, PeerView>
  readonly promise: LeasePromise | null
  /** the longest promise length (ms) that may still be running (persisted; see PersistedElection) */
  readonly promiseMs: number
  /** until when (my clock) a promise of `promiseMs` may run; after that a shorter length replaces it */
  readonly promiseMsUntil: number
  /** after a (re)start: no promises until then, we may have made one before the restart */
  readonly quietUntil: number
  /** the MASTER this node follows */
  readonly leader: string | null
  /** a MASTER presumed gone; it does not block candidates of lower priority */
  readonly lostLeader: string | null
  readonly electionAt: number | null
  readonly nextStatusAt: number
  readonly round: VoteRound | null
  readonly deferred: ReadonlyMap<string, DeferredVote>
  readonly lead: LeaderState | null
  /** `quorum: none` only: when this BACKUP takes over from a worse MASTER (Keepalived preemption) */
  readonly preemptAt: number | null
  /** when the wake timer is set for; null when no timer is pending */
  readonly wakeAt: number | null
  /**
   * frames ignored since start because their sender may not move this node (a higher term from a
   * non-voter, a renewal from a stranger) or their counters were out of bounds: a hostile or buggy
   * member; the driver exports it as a drop count
   */
  readonly refusedFrames: number
}

export type ElectionEvent =
  | { readonly type: 'timer' }
  | { readonly type: 'message'; readonly from: string; readonly msg: ElectionMessage }
  /**
   * a member's heartbeat, which gossip carries to every node (election frames reach only connected
   * peers), named the voter configuration it runs: a witness for a configuration this node cannot
   * yet take from a MASTER it does not know as a voter
   */
  | { readonly type: 'report'; readonly from: string; readonly config: VoterConfigId | null }
  /** the transport saw every connection to this peer close (a process exit is seen in 10-50 ms) */
  | { readonly type: 'peerDisconnected'; readonly id: string }
  /** the membership layer's member list changed (joins, leaves, operator removals) */
  | { readonly type: 'members'; readonly ids: readonly string[] }
  | { readonly type: 'check'; readonly name: string; readonly passing: boolean }
  /** an operator puts this node in maintenance (or takes it out): it hands MASTER over at once */
  | { readonly type: 'maintenance'; readonly enabled: boolean }
  /** graceful stop: release the VIP and tell the others at once */
  | { readonly type: 'shutdown' }
  /**
   * a new cluster config version changed this node's checks or election timings (never `quorum`,
   * which needs a restart): they apply from now on; a running promise keeps its length
   */
  | { readonly type: 'options'; readonly opts: ElectionOptions }

export type ReleaseReason =
  | 'leaseExpired'
  | 'higherTerm'
  | 'preempted'
  | 'fault'
  | 'shutdown'
  | 'removed'
  | 'maintenance'

/**
 * Actions are executed in order. `releaseVip` must be complete (address removed) before any later
 * action is performed: the `release` broadcast that follows lets other nodes take over at once.
 */
export type ElectionAction =
  | { readonly type: 'persist'; readonly state: PersistedElection }
  | { readonly type: 'send'; readonly to: string; readonly msg: ElectionMessage }
  /**
   * to every member, or only to the members in `only` (the voters and the MASTER: what keeps the
   * election's message rate bounded by the voter count, not the mesh size)
   */
  | { readonly type: 'broadcast'; readonly msg: ElectionMessage; readonly only?: readonly string[] }
  /** `leaseUntil` (my clock): the proxy must stop serving on the VIP at that time unless renewed */
  | { readonly type: 'acquireVip'; readonly leaseUntil: number }
  | { readonly type: 'releaseVip'; readonly reason: ReleaseReason }
  /** (re)arms the single timer: deliver `{ type: 'timer' }` once the clock reaches `at` */
  | { readonly type: 'setTimer'; readonly name: 'wake'; readonly at: number }

export interface StepResult {
  readonly state: ElectionState
  readonly actions: readonly ElectionAction[]
}

/** A step's private, mutable copy of the state. */
export type Draft = { -readonly [K in keyof ElectionState]: ElectionState[K] } & {
  /**
   * the peer table this step has already copied (a step copies it at most once, not once per
   * message); belongs to the step, never to the state it returns
   */
  ownedPeers: Map<string, PeerView> | null
}

/** The actions a step has produced so far, in order. */
export type Out = ElectionAction[]
