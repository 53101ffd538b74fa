import { z } from 'zod'
import { ConfigApplyErrorSchema } from './cluster-config.js'
import { ERROR_CODES } from './errors.js'
import { DbStateSchema } from './listeners.js'
import { ListenerPolicyStatusSchema } from './policy.js'

/** A schema another package validates with (control-api's body middleware), without importing zod. */
export type Schema<T> = z.ZodType<T>

export const MEMBER_STATES = ['alive', 'suspect', 'dead', 'left'] as const
export const MemberStateSchema = z.enum(MEMBER_STATES)
export type MemberState = z.infer<typeof MemberStateSchema>

/** A member in maintenance: why, and since when (ISO time). */
export const MemberMaintenanceSchema = z.object({ reason: z.string().nullable(), since: z.string() })
export type MemberMaintenance = z.infer<typeof MemberMaintenanceSchema>

export const MemberViewSchema = z.object({
  id: z.string(),
  peerId: z.string(),
  self: z.boolean(),
  state: MemberStateSchema,
  priority: z.number().int(),
  incarnation: z.number().int(),
  /** gossip multiaddrs the member announces */
  addrs: z.array(z.string()),
  /** host:port of the member's control API, or null */
  api: z.string().nullable(),
  /** ISO time of the last heartbeat received (null for self) */
  lastHeardAt: z.string().nullable(),
  /** ms since the last heartbeat when the view was made (null for self) */
  lastHeardAgoMs: z.number().int().nullable(),
  /** ISO time the member entered its current state */
  stateSince: z.string(),
  configVersion: z.number().int(),
  /** set while an operator has the member in maintenance (from its heartbeats; null otherwise) */
  maintenance: MemberMaintenanceSchema.nullable(),
  /** the member's own election view, from its latest heartbeat (null until one carried it) */
  election: z
    .object({
      term: z.number().int(),
      effectivePriority: z.number().int(),
      eligible: z.boolean(),
      holder: z.boolean(),
      leader: z.string().nullable(),
      failingChecks: z.array(z.string()),
    })
    .nullable(),
})
export type MemberView = z.infer<typeof MemberViewSchema>

export const GossipStatsSchema = z.object({
  connectedPeers: z.number().int(),
  /** connected peers whose topic subscription arrived: the ones gossip actually flows with */
  topicPeers: z.number().int(),
  messagesIn: z.number().int(),
  messagesOut: z.number().int(),
  /** dropped incoming messages by error code */
  dropped: z.record(z.string(), z.number().int()),
})
export type GossipStats = z.infer<typeof GossipStatsSchema>

export const CheckViewSchema = z.object({
  name: z.string(),
  kind: z.string(),
  weight: z.number().int(),
  passing: z.boolean(),
  /** false until the check's first result: until then it counts as failing */
  ran: z.boolean(),
  lastError: z.string().nullable(),
  lastRunAt: z.string().nullable(),
})
export type CheckView = z.infer<typeof CheckViewSchema>

export const VRRP_STATES = ['MASTER', 'BACKUP', 'FAULT', 'STOP'] as const

/** This node's view of the MASTER election. */
export const ElectionViewSchema = z.object({
  quorum: z.enum(['majority', 'none']),
  /** Keepalived's name for this node's state */
  state: z.enum(VRRP_STATES),
  role: z.string(),
  term: z.number().int(),
  /** the MASTER this node follows (itself when MASTER), or null */
  master: z.string().nullable(),
  /** members that say they hold the VIP (self included); more than one only with quorum none */
  vipHolders: z.array(z.string()),
  vip: z.object({ address: z.string().nullable(), driver: z.string(), held: z.boolean() }),
  /** ms of lease left while MASTER, else null */
  leaseRemainingMs: z.number().int().nullable(),
  priority: z.number().int(),
  effectivePriority: z.number().int(),
  eligible: z.boolean(),
  failingChecks: z.array(z.string()),
  checks: z.array(CheckViewSchema),
  /** the agreed voters (and the previous set during a change), or null before this node has them */
  voters: z.object({ voters: z.array(z.string()), prev: z.array(z.string()).nullable() }).nullable(),
  masterChanges: z.number().int(),
})
export type ElectionView = z.infer<typeof ElectionViewSchema>

export const MasterResponseSchema = z.object({
  master: z.boolean(),
  node: z.string(),
  /** the MASTER as this node sees it */
  current: z.string().nullable(),
  term: z.number().int(),
})
export type MasterResponse = z.infer<typeof MasterResponseSchema>

const Count = z.number().int()

/** A listener on this node with its counters (since start) and each backend's. */
export const ListenerStatusSchema = z.object({
  name: z.string(),
  bind: z.string(),
  role: z.string(),
  balance: z.string(),
  active: Count,
  total: Count,
  queued: Count,
  refused: Count,
  queueTimeouts: Count,
  connectErrors: Count,
  cut: Count,
  backends: z.array(
    z.object({
      id: z.string(),
      active: Count,
      total: Count,
      connectErrors: Count,
      bytesIn: Count,
      bytesOut: Count,
      cut: Count,
    }),
  ),
  /** allow/deny, limits, stickiness, PROXY protocol: present when the listener has any */
  policy: ListenerPolicyStatusSchema.optional(),
  /**
   * how the Node relay reads plain clients: `direct` into one shared buffer (net's `onread`), or
   * `stream` through 'data' events where this Node's internals did not pass the self-test
   */
  clientReads: z.enum(['direct', 'stream']).optional(),
  /** backends new connections skip for now (a failed connect, a refused session), and why */
  holdOffs: z.array(z.object({ backend: z.string(), reason: z.string(), remainingMs: Count })).optional(),
  /** PostgreSQL edge counters: TLS sessions, refusals, bad input, cancels */
  edge: z
    .object({
      tlsSessions: Count,
      tlsFailures: Count,
      handshakeTimeouts: Count,
      plainRefused: Count,
      badStartup: Count,
      cancelsForwarded: Count,
      cancelsDropped: Count,
      backendTlsFailures: Count,
    })
    .optional(),
  /** listeners with `tls`: the mode and the certificate clients get now (never the key) */
  tls: z
    .object({
      mode: z.string(),
      backend: z.string(),
      certificate: z
        .object({
          subject: z.string(),
          notAfter: z.string(),
          fingerprint256: z.string(),
          expiresInMs: Count,
          /** inside the listener's `tls.expiryWarningMs` (or expired) */
          expiryWarning: z.boolean(),
        })
        .nullable(),
    })
    .optional(),
})
export type ListenerStatus = z.infer<typeof ListenerStatusSchema>

/** `GET /v1/backends`: every database node as each pgmesh node sees it, and what the cluster agreed. */
export const BackendsViewSchema = z.object({
  node: z.string(),
  agreed: z.object({
    primary: z.string().nullable(),
    primaryTimeline: z.number().int().nullable(),
    replicas: z.array(z.object({ db: z.string(), lagBytes: z.number().nullable() })),
    /** reachable, role unknown (tcp-only checks): used by `any` listeners */
    up: z.array(z.string()),
    notes: z.array(z.string()),
  }),
  databases: z.array(
    z.object({
      name: z.string(),
      address: z.string(),
      /** this node's confirmed state (after rise/fall) and the raw results of its latest probe */
      local: z.object({
        state: DbStateSchema,
        timeline: z.number().int().nullable(),
        lagBytes: z.number().nullable(),
        ageMs: z.number().int().nullable(),
        /** how long this node's latest round of probes took, ms (the status page charts it) */
        probeMs: z.number().int().min(0).nullable().optional(),
        postgres: z
          .object({
            reachable: z.boolean(),
            writable: z.boolean(),
            timeline: z.number().int().nullable(),
            lagBytes: z.number().nullable(),
            /**
             * WAL position as a byte offset: the primary's current write position, a replica's
             * replay position (the replica lag against the primary is computed from these)
             */
            walLsn: z.number().nullable().optional(),
            error: z.string().nullable(),
          })
          .nullable(),
        tcp: z.object({ reachable: z.boolean(), error: z.string().nullable() }).nullable(),
        patroni: z
          .object({
            reachable: z.boolean(),
            role: z.string(),
            state: z.string().nullable(),
            timeline: z.number().int().nullable(),
            lagBytes: z.number().nullable(),
            error: z.string().nullable(),
          })
          .nullable(),
      }),
      observers: z.array(
        z.object({
          node: z.string(),
          state: DbStateSchema,
          timeline: z.number().int().nullable(),
          ageMs: z.number().int(),
        }),
      ),
    }),
  ),
})
export type BackendsView = z.infer<typeof BackendsViewSchema>

/** A member an operator removed, as this node remembers it (`membership.leftRetentionMs`). */
export const RemovedMemberSchema = z.object({
  id: z.string(),
  /** every incarnation up to this one is removed; a restarted member (higher) rejoins */
  incarnation: z.number().int(),
  /** ISO time of the removal (as far as this node can tell) */
  removedAt: z.string(),
})
export type RemovedMember = z.infer<typeof RemovedMemberSchema>

/** `PUT /v1/maintenance` on the node to take out of (or put back into) service. */
export const MaintenancePutBodySchema = z
  .object({
    enabled: z.boolean(),
    /** shown in every node's status while the node is in maintenance */
    reason: z.string().trim().min(1).max(200).optional(),
  })
  .strict()
export type MaintenancePutBody = z.infer<typeof MaintenancePutBodySchema>

/** `GET`/`PUT /v1/maintenance`: this node's maintenance state. */
export const MaintenanceViewSchema = z.object({
  node: z.string(),
  enabled: z.boolean(),
  reason: z.string().nullable(),
  /** ISO time maintenance began, or null */
  since: z.string().nullable(),
  /** sessions still open on this node's listeners (draining while in maintenance) */
  activeSessions: z.number().int(),
})
export type MaintenanceView = z.infer<typeof MaintenanceViewSchema>

/** `POST /v1/members/{id}/remove`: what was removed, and the voters this node sees now. */
export const MemberRemoveResponseSchema = z.object({
  removed: z.string(),
  incarnation: z.number().int(),
  /** this node's agreed voters right after the removal; the MASTER drops the member next */
  voters: z.array(z.string()).nullable(),
})
export type MemberRemoveResponse = z.infer<typeof MemberRemoveResponseSchema>

// ---- the control plane's aggregate ----------------------------------------------------------

/** How the reachable nodes answered one question (who is MASTER, who holds the VIP). */
export const AgreementSchema = z.object({
  /** the answer a majority of the configured nodes gave, or null when there is no majority */
  agreed: z.string().nullable(),
  /** every distinct answer with the nodes that gave it (`null`: "none") */
  answers: z.array(z.object({ value: z.string().nullable(), nodes: z.array(z.string()) })),
})
export type Agreement = z.infer<typeof AgreementSchema>

export const NodeReachSchema = z.object({
  url: z.string(),
  /** the node id from its own status, or null when it did not answer */
  id: z.string().nullable(),
  reachable: z.boolean(),
  error: z.object({ code: z.enum(ERROR_CODES), message: z.string() }).nullable(),
  /** time to its answer, ms */
  latencyMs: z.number().int().nullable(),
  state: z.enum(VRRP_STATES).nullable(),
  master: z.string().nullable(),
  vipHolders: z.array(z.string()),
  term: z.number().int().nullable(),
  configVersion: z.number().int().nullable(),
  primary: z.string().nullable(),
})
export type NodeReach = z.infer<typeof NodeReachSchema>

/** In the control plane's `/v1/status`: how each node answered and what they agreed on. */
export const AggregateViewSchema = z.object({
  source: z.string(),
  /** the node whose view the members, config and databases come from */
  base: z.string().nullable(),
  nodes: z.array(NodeReachSchema),
  reachable: z.number().int(),
  total: z.number().int(),
  master: AgreementSchema,
  vipHolder: AgreementSchema,
  /** one sentence per disagreement between reachable nodes (MASTER, VIP, config version, primary) */
  disagreements: z.array(z.string()),
})
export type AggregateView = z.infer<typeof AggregateViewSchema>

export const ClusterStatusSchema = z.object({
  cluster: z.string(),
  version: z.string(),
  self: z.string(),
  generatedAt: z.string(),
  members: z.array(MemberViewSchema),
  counts: z.record(MemberStateSchema, z.number().int()),
  gossip: GossipStatsSchema,
  election: ElectionViewSchema,
  listeners: z.array(ListenerStatusSchema),
  /** members an operator removed (they no longer count toward quorum) */
  removed: z.array(RemovedMemberSchema),
  /** the kernel data path of `dataPath: kernel` listeners (absent when there are none) */
  fastPath: z
    .object({
      available: z.boolean(),
      table: z.string(),
      updates: Count,
      cuts: Count,
      listeners: z.array(
        z.object({
          name: z.string(),
          path: z.enum(['kernel', 'node']),
          targets: z.array(z.string()),
          newConnections: Count,
          sessions: z.record(z.string(), Count),
        }),
      ),
    })
    .optional(),
  /** the cluster config version this node runs (members' versions are in `members[].configVersion`) */
  config: z
    .object({
      version: z.number().int(),
      hash: z.string(),
      origin: z.string(),
      pendingRestart: z.array(z.string()),
      conflicts: z.number().int(),
      /** the version this node actually runs: below `version` while an apply failed */
      applied: z.number().int().optional(),
      applyError: ConfigApplyErrorSchema.optional(),
    })
    .optional(),
  /** only from the control plane: how each node answered, and what a majority of them agreed on */
  aggregate: AggregateViewSchema.optional(),
})
export type ClusterStatus = z.infer<typeof ClusterStatusSchema>

export const MembersResponseSchema = z.object({ members: z.array(MemberViewSchema) })
export type MembersResponse = z.infer<typeof MembersResponseSchema>

export const HealthResponseSchema = z.object({
  status: z.literal('ok'),
  node: z.string(),
  uptimeMs: z.number().int(),
})
export type HealthResponse = z.infer<typeof HealthResponseSchema>

export const ReadyResponseSchema = z.object({ ready: z.boolean(), reasons: z.array(z.string()) })
export type ReadyResponse = z.infer<typeof ReadyResponseSchema>

export const ApiErrorSchema = z.object({
  error: z.object({
    code: z.enum(ERROR_CODES),
    message: z.string(),
    issues: z.array(z.object({ path: z.string(), message: z.string() })).optional(),
  }),
})
export type ApiError = z.infer<typeof ApiErrorSchema>

/** `GET /v1/members?state=alive` */
export const MembersQuerySchema = z.object({ state: MemberStateSchema.optional() }).strict()
export type MembersQuery = z.infer<typeof MembersQuerySchema>

// ---- cluster events (`GET /v1/events`, the status page's timeline) ----------------------------

/**
 * Why the MASTER changed, as far as the two views on either side of the change tell:
 * `elected` (there was none), `lost` (there is none now), `failure` (the old one is suspect or
 * dead), `stopped` (it left), `maintenance` (an operator took it out), `checks` (its tracked
 * checks made it ineligible), `removed` (an operator removed it), `preempted` (a higher-priority
 * node took over), `unknown` (none of these shows).
 */
export const MASTER_CHANGE_CAUSES = [
  'elected',
  'lost',
  'failure',
  'stopped',
  'maintenance',
  'checks',
  'removed',
  'preempted',
  'unknown',
] as const
export const MasterChangeCauseSchema = z.enum(MASTER_CHANGE_CAUSES)
export type MasterChangeCause = z.infer<typeof MasterChangeCauseSchema>

export const MEMBER_CHANGES = ['joined', 'alive', 'suspect', 'dead', 'left', 'removed', 'gone'] as const

const EventBase = {
  /** position in the recording log: strictly increasing, for `?since=` */
  seq: z.number().int().min(1),
  /** ISO time of the view the change was first seen in */
  at: z.string(),
}

export const ClusterEventSchema = z.discriminatedUnion('kind', [
  z.object({
    ...EventBase,
    kind: z.literal('master'),
    from: z.string().nullable(),
    to: z.string().nullable(),
    term: z.number().int(),
    cause: MasterChangeCauseSchema,
    /** a short human explanation of the cause */
    detail: z.string(),
  }),
  z.object({
    ...EventBase,
    kind: z.literal('primary'),
    from: z.string().nullable(),
    to: z.string().nullable(),
    timeline: z.number().int().nullable(),
  }),
  z.object({
    ...EventBase,
    kind: z.literal('config'),
    version: z.number().int(),
    hash: z.string(),
    origin: z.string(),
  }),
  z.object({
    ...EventBase,
    kind: z.literal('member'),
    member: z.string(),
    change: z.enum(MEMBER_CHANGES),
    /** the member's state before (null when it just appeared) */
    from: MemberStateSchema.nullable(),
  }),
  z.object({
    ...EventBase,
    kind: z.literal('maintenance'),
    member: z.string(),
    enabled: z.boolean(),
    reason: z.string().nullable(),
  }),
])
export type ClusterEvent = z.infer<typeof ClusterEventSchema>
export type ClusterEventKind = ClusterEvent['kind']
/** An event before the log numbers it: what the diff of two views produces. */
export type ClusterEventBody = ClusterEvent extends infer E
  ? E extends ClusterEvent
    ? Omit<E, 'seq'>
    : never
  : never

/** `GET /v1/events?since=N` */
export const EventsQuerySchema = z.object({ since: z.coerce.number().int().min(0).optional() }).strict()
export type EventsQuery = z.infer<typeof EventsQuerySchema>

/** `GET /v1/events`: the recorded events after `since`, oldest first. */
export const EventsViewSchema = z.object({
  /** who recorded them: a node id, or the control plane's name */
  source: z.string(),
  events: z.array(ClusterEventSchema),
  /** the highest sequence number recorded so far (0 before the first): the next `since` */
  lastSeq: z.number().int().min(0),
  /** true when events after `since` were already dropped from the bounded log */
  truncated: z.boolean(),
})
export type EventsView = z.infer<typeof EventsViewSchema>
