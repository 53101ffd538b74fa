import { z } from 'zod'
import { ERROR_CODES } from './errors.js'

export const MEMBER_STATES = ['alive', 'suspect', 'dead', 'left'] as const
export const MemberStateSchema = z.enum(MEMBER_STATES)
export type MemberState = z.infer<typeof MemberStateSchema>

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

export const ClusterStatusSchema = z.object({
  cluster: z.string(),
  version: z.string(),
  self: z.string(),
  generatedAt: z.string(),
  members: z.array(MemberViewSchema),
  counts: z.record(MemberStateSchema, z.number().int()),
  gossip: GossipStatsSchema,
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
