import {
  type ControlPlaneConfig,
  ControlPlaneConfigSchema,
  err,
  ok,
  pgmeshError,
  type Result,
  toIssues,
} from '@pgmesh/protocol'
import type { Hono } from 'hono'
import { createControlApi } from '../app.js'
import type { FetchLike } from './node-client.js'
import { RemoteCluster, type RemoteNode } from './remote-cluster.js'

export interface ControlPlaneDeps {
  /** where `tokenEnv` names are looked up: process.env on Node, the worker's env on workerd */
  readonly env: Readonly<Record<string, unknown>>
  readonly version: string
  readonly fetch?: FetchLike
  readonly onError?: (err: unknown) => void
}

export interface ControlPlane {
  readonly app: Hono
  readonly cluster: RemoteCluster
  readonly config: ControlPlaneConfig
}

/**
 * The control plane: the control API over a RemoteCluster. Reads need one of `readTokens` when
 * any are set; writes need a bearer token, which the node the action is forwarded to checks.
 */
export function createControlPlane(input: unknown, deps: ControlPlaneDeps): Result<ControlPlane> {
  const parsed = ControlPlaneConfigSchema.safeParse(input)
  if (!parsed.success) {
    return err(pgmeshError('CP_CONFIG_INVALID', 'invalid control plane config', toIssues(parsed.error)))
  }
  const config = parsed.data
  const nodes: RemoteNode[] = []
  for (const [i, n] of config.nodes.entries()) {
    let token = n.token
    if (n.tokenEnv !== undefined) {
      const v = deps.env[n.tokenEnv]
      if (typeof v !== 'string' || v.trim() === '') {
        return err(
          pgmeshError('CP_CONFIG_INVALID', `nodes.${i}.tokenEnv: ${n.tokenEnv} is not set`, [
            { path: `nodes.${i}.tokenEnv`, message: `${n.tokenEnv} is not set` },
          ]),
        )
      }
      token = v.trim()
    }
    nodes.push(token === undefined ? { url: n.url } : { url: n.url, token })
  }
  const cluster = new RemoteCluster({
    name: config.name,
    nodes,
    nodeTimeoutMs: config.nodeTimeoutMs,
    version: deps.version,
    eventCapacity: config.eventCapacity,
    ...(deps.fetch === undefined ? {} : { fetch: deps.fetch }),
  })
  const readTokens = config.readTokens
  const app = createControlApi({
    source: cluster,
    writes: 'forward',
    ...(readTokens.length === 0 ? {} : { auth: { tokens: () => readTokens, protectReads: true } }),
    ...(deps.onError === undefined ? {} : { onError: deps.onError }),
  })
  return ok({ app, cluster, config })
}
