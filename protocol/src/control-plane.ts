import { z } from 'zod'

/** One node the control plane reads from: its API base URL and, where it protects reads, a token. */
export const ControlPlaneNodeSchema = z
  .object({
    /** the node's control API, e.g. `http://10.0.0.11:7947` */
    url: z
      .string()
      .url()
      .refine((u) => /^https?:\/\//.test(u), 'an http:// or https:// URL'),
    /** bearer token for reads, when the node has `protectReads` (writes use the caller's token) */
    token: z.string().min(1).optional(),
    /** or the name of an environment variable (a workerd binding) holding that token */
    tokenEnv: z
      .string()
      .regex(/^[A-Za-z_][A-Za-z0-9_]*$/)
      .optional(),
  })
  .strict()
export type ControlPlaneNode = z.infer<typeof ControlPlaneNodeSchema>

/** The control plane's own config (a JSON file; for workerd it is baked into the generated config). */
export const ControlPlaneConfigSchema = z
  .object({
    /** shown as `self` in the aggregated status and as the events' source */
    name: z.string().min(1).max(64).default('control-plane'),
    nodes: z.array(ControlPlaneNodeSchema).min(1).max(64),
    /** how long one node may take to answer one fan-out before it is marked unreachable */
    nodeTimeoutMs: z.number().int().min(50).max(60_000).default(1500),
    /** bearer tokens callers need for reads on the control plane; none = reads are open */
    readTokens: z.array(z.string().min(16)).max(64).default([]),
    /** events kept for the timeline */
    eventCapacity: z.number().int().min(1).max(10_000).default(500),
  })
  .strict()
export type ControlPlaneConfig = z.infer<typeof ControlPlaneConfigSchema>
export type ControlPlaneConfigInput = z.input<typeof ControlPlaneConfigSchema>
