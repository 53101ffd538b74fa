import { z } from 'zod'
import type { Issue } from './errors.js'
import { ms, NodeIdSchema } from './ids.js'

const Uint = z.number().int().min(0).max(Number.MAX_SAFE_INTEGER)

/**
 * The most a peer's term (or a voter configuration's version) may lie ahead of a node's own for the
 * node to adopt it. Real clusters move one term per election, so no node falls this far behind;
 * and no single frame, hostile or buggy, can take a counter near 2^53, where the next election
 * would overflow it and every peer would refuse the result.
 */
export const MAX_TERM_JUMP = 1_000_000_000
/** a reading of the sender's monotonic clock in ms; only ever compared with the same node's clock */
const MonotonicMs = z.number().min(0).max(Number.MAX_SAFE_INTEGER)

/**
 * Keepalived's rule for a tracked check's weight: negative = subtracted from the priority while the
 * check fails, positive = added while it passes, 0 = the node is FAULT (not eligible) while it fails.
 */
export const CheckWeightSchema = z.number().int().min(-254).max(254)

const checkTimings = {
  name: z
    .string()
    .regex(/^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$/, 'must be 1-63 characters: letters, digits, _ . -'),
  /** time between two runs of the check */
  intervalMs: ms(1_000, 10, 3_600_000),
  /** a run that takes longer counts as failed */
  timeoutMs: ms(1_000, 10, 600_000),
  /** consecutive passes before a failed check counts as passing again */
  rise: z.number().int().min(1).max(100).default(1),
  /** consecutive failures before a passing check counts as failed */
  fall: z.number().int().min(1).max(100).default(1),
  weight: CheckWeightSchema.default(0),
}

export const TrackedCheckSchema = z
  .discriminatedUnion('kind', [
    z
      .object({
        ...checkTimings,
        kind: z.literal('exec'),
        /** argv; passes when it exits 0 (no shell) */
        command: z.array(z.string().min(1)).min(1).max(64),
      })
      .strict(),
    z
      .object({
        ...checkTimings,
        kind: z.literal('http'),
        url: z.url({ protocol: /^https?$/ }),
        /** passes when the response status is one of these */
        expectStatus: z.array(z.number().int().min(100).max(599)).min(1).default([200]),
      })
      .strict(),
    z
      .object({
        ...checkTimings,
        kind: z.literal('tcp'),
        host: z.string().min(1).max(253),
        port: z.number().int().min(1).max(65_535),
      })
      .strict(),
    z
      .object({
        ...checkTimings,
        kind: z.literal('file'),
        path: z.string().min(1),
        /** `exists`: fails while the file exists (a maintenance flag); `missing`: fails while it is absent */
        failWhen: z.enum(['exists', 'missing']).default('exists'),
      })
      .strict(),
  ])
  .superRefine((c, ctx) => {
    if (c.timeoutMs > c.intervalMs) {
      ctx.addIssue({
        code: 'custom',
        path: ['timeoutMs'],
        message: `must not exceed intervalMs (${c.intervalMs}), or runs of the check overlap`,
      })
    }
  })
export type TrackedCheck = z.infer<typeof TrackedCheckSchema>

/**
 * MASTER election settings, the same on every node.
 *
 * Failover after a MASTER process dies (its TCP connections close) is about
 * `leaseMs − heartbeatIntervalMs/2` plus two round trips; after a partition or a dead NIC
 * (no TCP close) about `electionTimeoutMinMs..MaxMs` after the last heartbeat. A smaller lease
 * moves the VIP faster but loses it on an event-loop stall longer than `leaseMs − heartbeatIntervalMs`.
 */
export const ElectionConfigSchema = z
  .object({
    /**
     * `majority` (default): a MASTER needs votes and lease acknowledgements from a majority of the
     * members, so a partition never yields two VIP holders. `none`: Keepalived behaviour (the highest
     * priority node that hears no better one holds the VIP): for 2-node setups; split brain under partition.
     */
    quorum: z.enum(['majority', 'none']).default('majority'),
    /** Keepalived `nopreempt`: a healthier higher-priority node does not take MASTER from a working one */
    nopreempt: z.boolean().default(false),
    /** Keepalived `preempt_delay`: how long a higher-priority eligible node must be seen before it takes over. Default 0 */
    preemptDelayMs: ms(0, 0, 3_600_000),
    /** MASTER sends a lease renewal to every voter this often (the other members: every statusIntervalMs). Default 50 */
    heartbeatIntervalMs: ms(50, 5, 10_000),
    /** a member's acknowledgement keeps the MASTER's lease for this long (measured from the renewal's send time). Default 250 */
    leaseMs: ms(250, 30, 60_000),
    /** a BACKUP that hears no MASTER for a random time in [min, max] starts an election. Default 300 */
    electionTimeoutMinMs: ms(300, 30, 120_000),
    /** Default 400 */
    electionTimeoutMaxMs: ms(400, 30, 120_000),
    /** each better-placed eligible node delays a candidate by this much, so the highest priority runs first. Default 20 */
    rankStaggerMs: ms(20, 0, 10_000),
    /**
     * The most two nodes' monotonic clocks may disagree about the length of one `leaseMs` interval
     * (rate drift, not offset: only durations are compared). The MASTER gives its lease up this much
     * early. Default 10 (monotonic clocks drift well under 0.1 %, this allows 4 % at the default lease).
     */
    maxClockDriftMs: ms(10, 0, 10_000),
    /** every node sends its priority and eligibility to the voters and its MASTER this often (a MASTER's renewals carry its own). Default 250 */
    statusIntervalMs: ms(250, 10, 60_000),
    /**
     * the most members that vote (and acknowledge leases); the others follow as non-voters, so the
     * election's cost does not grow with the mesh. The MASTER keeps the set filled from the members
     * it hears from (highest priority first) and replaces a silent voter, one joint change at a
     * time. Default 15 (3 or 5 bound the election's cost in a large mesh)
     */
    maxVoters: z.number().int().min(1).max(15).default(15),
  })
  .strict()
  .superRefine((e, ctx) => {
    const add = (path: string, message: string) => ctx.addIssue({ code: 'custom', path: [path], message })
    if (e.leaseMs < 3 * e.heartbeatIntervalMs) {
      add(
        'leaseMs',
        `must be at least 3 × heartbeatIntervalMs (${3 * e.heartbeatIntervalMs}), or one lost renewal costs the lease`,
      )
    }
    if (e.maxClockDriftMs * 4 > e.leaseMs) {
      add('maxClockDriftMs', `must be at most leaseMs / 4 (${Math.floor(e.leaseMs / 4)})`)
    }
    if (e.electionTimeoutMaxMs < e.electionTimeoutMinMs) {
      add('electionTimeoutMaxMs', `must be at least electionTimeoutMinMs (${e.electionTimeoutMinMs})`)
    }
    if (e.electionTimeoutMinMs < 2 * e.heartbeatIntervalMs) {
      add(
        'electionTimeoutMinMs',
        `must be at least 2 × heartbeatIntervalMs (${2 * e.heartbeatIntervalMs}), or one lost renewal starts an election`,
      )
    }
  })
export type ElectionConfig = z.infer<typeof ElectionConfigSchema>
export type ElectionConfigInput = z.input<typeof ElectionConfigSchema>

/** Effective priority after check weights, clamped like Keepalived's (1..254). */
export const EffectivePrioritySchema = z.number().int().min(1).max(254)

/** Identifies a voter configuration: ordered by (term, version), like Raft's (last log term, index). */
export const VoterConfigIdSchema = z.object({ term: Uint, version: Uint })
export type VoterConfigId = z.infer<typeof VoterConfigIdSchema>

/**
 * The members whose votes count. Changed only by the MASTER, through a joint configuration
 * (`prev` set: quorums need a majority of both `voters` and `prev`), so two majorities always intersect.
 */
export const VoterConfigSchema = z.object({
  term: Uint,
  version: Uint,
  voters: z.array(NodeIdSchema).min(1).max(64),
  prev: z.array(NodeIdSchema).min(1).max(64).nullable(),
})
export type VoterConfig = z.infer<typeof VoterConfigSchema>

/** Election fields every node's heartbeat carries (also sent alone as a `status` message). */
export const ElectionStatusSchema = z.object({
  term: Uint,
  effectivePriority: EffectivePrioritySchema,
  eligible: z.boolean(),
  /** the sender holds the VIP */
  holder: z.boolean(),
  /** the MASTER the sender follows, if any */
  leader: NodeIdSchema.nullable(),
  config: VoterConfigIdSchema.nullable(),
})
export type ElectionStatus = z.infer<typeof ElectionStatusSchema>

export const StatusMessageSchema = ElectionStatusSchema.extend({ kind: z.literal('status') })

/** `preVote`: "would you vote for me in `term`?" — nobody changes state, so a cut-off node cannot inflate terms. */
export const VoteRequestSchema = z.object({
  kind: z.literal('voteRequest'),
  preVote: z.boolean(),
  term: Uint,
  sentAt: MonotonicMs,
  effectivePriority: EffectivePrioritySchema,
  eligible: z.boolean(),
  config: VoterConfigIdSchema,
})

/** A granted real vote is also a lease promise: the voter backs no other node for `leaseMs`. */
export const VoteResponseSchema = z.object({
  kind: z.literal('voteResponse'),
  preVote: z.boolean(),
  term: Uint,
  granted: z.boolean(),
  /** the request's `sentAt`, echoed */
  sentAt: MonotonicMs,
  /**
   * a granted real vote: how long (voter's clock, from receipt) the voter promised to back the
   * candidate. Absent (an older node): the candidate's own `leaseMs`
   */
  promiseMs: z.number().int().min(0).max(3_600_000).optional(),
})

/** MASTER's lease renewal (its heartbeat). */
export const LeaseRenewSchema = z.object({
  kind: z.literal('lease'),
  term: Uint,
  sentAt: MonotonicMs,
  effectivePriority: EffectivePrioritySchema,
  eligible: z.boolean(),
  config: VoterConfigSchema,
})

export const LeaseAckSchema = z.object({
  kind: z.literal('leaseAck'),
  term: Uint,
  /** the renewal's `sentAt`, echoed: the MASTER's lease runs from its own send time */
  sentAt: MonotonicMs,
  ok: z.boolean(),
  /**
   * `ok`: how long (voter's clock, from receipt) the voter promised to back the MASTER; the lease
   * is counted from it, so nodes may run different `leaseMs` while an edit spreads. Absent (an
   * older node): the MASTER's own `leaseMs`
   */
  promiseMs: z.number().int().min(0).max(3_600_000).optional(),
  effectivePriority: EffectivePrioritySchema,
  eligible: z.boolean(),
  config: VoterConfigIdSchema.nullable(),
})

/** The MASTER has already removed the VIP; `successor` may start its election at once. */
export const ReleaseSchema = z.object({
  kind: z.literal('release'),
  term: Uint,
  successor: NodeIdSchema.nullable(),
})

/**
 * Election frames strip unknown fields (like gossip): a newer node may add one (`promiseMs` was
 * added so) and older nodes still read its frames during a rolling upgrade.
 */
export const ElectionMessageSchema = z.discriminatedUnion('kind', [
  StatusMessageSchema,
  VoteRequestSchema,
  VoteResponseSchema,
  LeaseRenewSchema,
  LeaseAckSchema,
  ReleaseSchema,
])
export type ElectionMessage = z.infer<typeof ElectionMessageSchema>
export type StatusMessage = z.infer<typeof StatusMessageSchema>
export type VoteRequest = z.infer<typeof VoteRequestSchema>
export type VoteResponse = z.infer<typeof VoteResponseSchema>
export type LeaseRenew = z.infer<typeof LeaseRenewSchema>
export type LeaseAck = z.infer<typeof LeaseAckSchema>
export type Release = z.infer<typeof ReleaseSchema>

export const MIN_EFFECTIVE_PRIORITY = 1
export const MAX_EFFECTIVE_PRIORITY = 254

export interface PriorityWeightsNode {
  readonly id: string
  readonly priority: number
  readonly checks: readonly { readonly name: string; readonly weight: number }[]
}

const clampPriority = (p: number) => Math.min(MAX_EFFECTIVE_PRIORITY, Math.max(MIN_EFFECTIVE_PRIORITY, p))

/**
 * Keepalived's sizing rule: a node whose weighted checks all fail (negative weights subtracted,
 * positive weights not added) must end at least 1 below the lowest priority any other node has while
 * healthy, or a failed MASTER would stay MASTER. Nodes with only weight-0 checks go FAULT instead.
 */
export function checkPriorityWeights(nodes: readonly PriorityWeightsNode[]): Issue[] {
  const issues: Issue[] = []
  const healthy = nodes.map((n) =>
    clampPriority(n.priority + n.checks.reduce((s, c) => s + Math.max(0, c.weight), 0)),
  )
  const failed = nodes.map((n) =>
    clampPriority(n.priority + n.checks.reduce((s, c) => s + Math.min(0, c.weight), 0)),
  )
  const byPriority = new Map<number, string>()
  nodes.forEach((n, i) => {
    const other = byPriority.get(n.priority)
    if (other !== undefined) {
      issues.push({
        path: `nodes.${i}.priority`,
        message: `node "${n.id}" has priority ${n.priority}, the same as node "${other}"; priorities must be distinct`,
      })
    } else byPriority.set(n.priority, n.id)
  })
  nodes.forEach((n, i) => {
    if (!n.checks.some((c) => c.weight !== 0)) return
    let lowest: { id: string; priority: number } | null = null
    nodes.forEach((m, j) => {
      const h = healthy[j]
      if (j === i || h === undefined) return
      if (lowest === null || h < lowest.priority) lowest = { id: m.id, priority: h }
    })
    const f = failed[i]
    if (lowest === null || f === undefined) return
    const { id: lowId, priority: lowPriority } = lowest
    if (f <= lowPriority - 1) return
    const negatives = n.checks.filter((c) => c.weight < 0)
    const lost = n.checks.reduce((s, c) => s + Math.min(0, c.weight), 0)
    const parts = negatives.map((c) => `${c.name} ${c.weight}`).join(', ')
    const needed = lowPriority - 1 - n.priority
    issues.push({
      path: `nodes.${i}.checks`,
      message:
        `node "${n.id}" (priority ${n.priority}) drops only to ${f} when its checks fail` +
        (negatives.length > 0 ? ` (${parts}; total ${lost})` : ' (it has no negative weights)') +
        `, not below node "${lowId}" with healthy priority ${lowPriority}; it must reach ${lowPriority - 1} or less: ` +
        `give it negative weights totalling ${needed} or lower, or lower its priority`,
    })
  })
  return issues
}
