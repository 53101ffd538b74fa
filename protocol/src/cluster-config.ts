import { z } from 'zod'
import { NodeIdSchema } from './ids.js'

/**
 * The cluster config travels as the operator wrote it (`cluster` = the input object); every node
 * parses it with its own schema. Versions only go up: an edit is the current version + 1. Two
 * edits of the same version made at once: the lower hash wins, the other is reported as lost.
 */
/**
 * The most a peer's config version may lie ahead of a node's own for the node to adopt it. Each
 * edit adds one, so no node falls this far behind; and no single message can take the version near
 * 2^53, where the next edit would overflow and every peer would refuse it.
 */
export const MAX_CONFIG_VERSION_JUMP = 1_000_000

export const ConfigHashSchema = z.string().regex(/^[0-9a-f]{64}$/, 'a sha256 in hex')

export const ConfigStampSchema = z.object({
  /**
   * 1 = the founding file; each accepted edit adds 1. 0 = a joining node's own file, run only
   * until the mesh's version arrives, never sent
   */
  version: z.number().int().min(0).max(Number.MAX_SAFE_INTEGER),
  /** sha256 of the canonical JSON of `cluster` */
  hash: ConfigHashSchema,
  /** the node the version was made on */
  origin: NodeIdSchema,
  /** how: the founding file, an API edit, or a file reload (SIGHUP) */
  source: z.enum(['file', 'api', 'reload']),
  /** wall clock of the edit, ISO 8601 */
  at: z.string().max(40),
})
export type ConfigStamp = z.infer<typeof ConfigStampSchema>

export const VersionedConfigSchema = ConfigStampSchema.extend({
  cluster: z.record(z.string(), z.unknown()),
})
export type VersionedConfig = z.infer<typeof VersionedConfigSchema>

/** Which of two versions every node ends up running: higher version, then lower hash. */
export function newerConfig<T extends Pick<ConfigStamp, 'version' | 'hash'>>(a: T, b: T): T {
  if (a.version !== b.version) return a.version > b.version ? a : b
  return a.hash <= b.hash ? a : b
}

/** `PUT /v1/config` */
export const ConfigPutBodySchema = z
  .object({
    cluster: z.record(z.string(), z.unknown()),
    /** the version the edit was made on; another current version → 409 (nothing is merged) */
    baseVersion: z.number().int().min(0).optional(),
  })
  .strict()
export type ConfigPutBody = z.infer<typeof ConfigPutBodySchema>

export const ConfigPutResponseSchema = z.object({ version: z.number().int(), hash: ConfigHashSchema })
export type ConfigPutResponse = z.infer<typeof ConfigPutResponseSchema>

/** An edit that lost to a concurrent one of the same version (or arrived on top of an older one). */
export const ConfigConflictSchema = z.object({
  lost: ConfigStampSchema,
  to: ConfigStampSchema,
  seenAt: z.string(),
})

export const ConfigApplyErrorSchema = z.object({
  version: z.number().int(),
  /** the part of the node that refused it, e.g. `routing` or `proxy` */
  part: z.string(),
  message: z.string(),
  at: z.string(),
})
export type ConfigApplyError = z.infer<typeof ConfigApplyErrorSchema>

/** `GET /v1/config` */
export const ConfigViewSchema = VersionedConfigSchema.extend({
  /**
   * settings that differ from what this node started with and apply only at its next start:
   * `gossip`, `election.quorum`, `vip.driver` (everything else applies live)
   */
  pendingRestart: z.array(z.string()),
  /** edits reported as lost on this node, newest first (at most 10) */
  conflicts: z.array(ConfigConflictSchema),
  /**
   * the newest version this node could not apply (it keeps running the previous one): which part
   * refused it and why; absent when the running version applied
   */
  applyError: ConfigApplyErrorSchema.optional(),
})
export type ConfigView = z.infer<typeof ConfigViewSchema>
