import { z } from 'zod'
import { ERROR_CODES } from './errors.js'
import { DbStateSchema } from './listeners.js'

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
        postgres: z
          .object({
            reachable: z.boolean(),
            writable: z.boolean(),
            timeline: z.number().int().nullable(),
            lagBytes: z.number().nullable(),
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
  /** the cluster config version this node runs (members' versions are in `members[].configVersion`) */
  config: z
    .object({
      version: z.number().int(),
      hash: z.string(),
      origin: z.string(),
      pendingRestart: z.array(z.string()),
      conflicts: z.number().int(),
    })
    .optional(),
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
