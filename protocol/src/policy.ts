import { z } from 'zod'
import { parseCidr, parseIp } from './ip.js'

const Name = z.string().regex(/^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$/)
const Uint = z.number().int().min(0).max(Number.MAX_SAFE_INTEGER)

/** An IPv4 or IPv6 prefix (`10.0.0.0/8`, `2001:db8::/32`) or a single address. */
export const CidrSchema = z
  .string()
  .max(60)
  .superRefine((s, ctx) => {
    const c = parseCidr(s)
    if ('error' in c) ctx.addIssue({ code: 'custom', message: c.error })
  })

/** An IP address in text form, as a delta carries a client's. */
export const IpTextSchema = z
  .string()
  .max(45)
  .refine((s) => parseIp(s) !== null, 'not an IPv4 or IPv6 address')

/** Most entries (rate and sticky together) one node's delta carries per heartbeat. */
export const POLICY_DELTA_MAX_ENTRIES = 256
/**
 * The most JSON bytes a node's delta takes in its heartbeat (the default gossip message limit is
 * 64 KiB); past it the sender drops its least urgent entries.
 */
export const POLICY_DELTA_MAX_BYTES = 16_384
/** Most entries of each kind per listener in one delta. */
export const POLICY_DELTA_MAX_PER_LISTENER = 128

/**
 * What one node tells the others about its listeners' traffic policy, in its heartbeat: the new
 * connections it admitted from sources close to their rate since its previous delta (the
 * receivers take them out of their own buckets, so a source's rate is the cluster's), and the
 * sticky entries it made or used (the receivers adopt the most recently used backend).
 */
export const PolicyDeltaSchema = z
  .object({
    /** per-incarnation sequence: a receiver applies each delta once */
    seq: Uint,
    listeners: z
      .array(
        z.object({
          name: Name,
          rate: z
            .array(z.object({ source: IpTextSchema, used: z.number().int().min(1).max(1_000_000) }))
            .max(POLICY_DELTA_MAX_PER_LISTENER),
          stick: z
            .array(
              z.object({
                source: IpTextSchema,
                backend: z.string().min(1).max(300),
                /** ms since the sender last sent this source to this backend */
                ageMs: z
                  .number()
                  .int()
                  .min(0)
                  .max(7 * 86_400_000),
              }),
            )
            .max(POLICY_DELTA_MAX_PER_LISTENER),
        }),
      )
      .max(64),
  })
  .superRefine((d, ctx) => {
    let n = 0
    for (const l of d.listeners) n += l.rate.length + l.stick.length
    if (n > POLICY_DELTA_MAX_ENTRIES) {
      ctx.addIssue({ code: 'custom', message: `more than ${POLICY_DELTA_MAX_ENTRIES} entries` })
    }
  })
export type PolicyDelta = z.infer<typeof PolicyDeltaSchema>
export type ListenerPolicyDelta = PolicyDelta['listeners'][number]

/** Why a listener refused a client before any byte went to a backend. */
export const POLICY_REFUSALS = [
  'denied',
  'notAllowed',
  'overConnections',
  'overRate',
  'proxyUntrusted',
  'proxyMissing',
  'proxyInvalid',
] as const
export type PolicyRefusal = (typeof POLICY_REFUSALS)[number]

const Count = z.number().int()

/** A listener's traffic policy in its status: refusals, busiest rules, limited sources, sticky entries. */
export const ListenerPolicyStatusSchema = z.object({
  refused: z.record(z.enum(POLICY_REFUSALS), Count),
  /** allow/deny entries that matched a client, most hits first (at most 50) */
  rules: z.array(z.object({ list: z.enum(['allow', 'deny']), cidr: z.string(), hits: Count })),
  /** entries in the allow and deny lists */
  ruleCount: Count,
  /** the sources refused most by the limits (at most 10; counts are estimates past that many sources) */
  limited: z.array(z.object({ source: z.string(), refused: Count })),
  /** sources with a rate bucket now, and with open connections */
  trackedSources: Count,
  connectedSources: Count,
  stick: z
    .object({
      entries: Count,
      maxEntries: Count,
      /** the most recently used entries (at most 50) */
      recent: z.array(z.object({ source: z.string(), backend: z.string(), expiresInMs: Count })),
    })
    .nullable(),
})
export type ListenerPolicyStatus = z.infer<typeof ListenerPolicyStatusSchema>
