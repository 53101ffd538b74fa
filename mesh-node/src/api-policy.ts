import { err, formatHostPort, type NodeConfig, ok, parseIp, pgmeshError, type Result } from '@pgmesh/protocol'

/** What the API server enforces before a request reaches the control API's routes. */
export interface ApiLimits {
  readonly maxConnections: number
  readonly maxHeaderBytes: number
  readonly maxBodyBytes: number
  readonly headersTimeoutMs: number
  readonly requestTimeoutMs: number
  readonly keepAliveTimeoutMs: number
}

export const DEFAULT_API_LIMITS: ApiLimits = {
  maxConnections: 256,
  maxHeaderBytes: 16_384,
  maxBodyBytes: 1_048_576,
  headersTimeoutMs: 5_000,
  requestTimeoutMs: 10_000,
  keepAliveTimeoutMs: 5_000,
}

export interface ApiPolicy {
  /** reads need a token (explicit `protectReads`, else: the API listens beyond loopback) */
  readonly protectReads: boolean
  /** host names accepted in the Host header besides IP literals and `localhost` */
  readonly allowedHosts: readonly string[]
  readonly limits: ApiLimits
}

/** 127.0.0.0/8, ::1 and `localhost`: only processes on this host can connect. */
export function isLoopbackHost(host: string): boolean {
  if (host.toLowerCase() === 'localhost') return true
  const ip = parseIp(host)
  if (ip === null) return false
  if (ip.family === 4) return ip.words[0]! >>> 24 === 127
  return ip.words.every((w, i) => w === (i === 3 ? 1 : 0))
}

/**
 * The API's policy from `node.api`. Off loopback, reads need a token unless `protectReads: false`
 * says otherwise, so such a node must have a token file (API_READS_UNPROTECTED names both ways out).
 */
export function resolveApiPolicy(api: NodeConfig['api']): Result<ApiPolicy> {
  const loopback = isLoopbackHost(api.listen.host)
  const protectReads = api.protectReads ?? !loopback
  if (protectReads && api.tokensFile === undefined) {
    const where = formatHostPort(api.listen)
    return err(
      pgmeshError(
        'API_READS_UNPROTECTED',
        api.protectReads === true
          ? 'node.api.protectReads is true but there is no node.api.tokensFile: no read could ever succeed'
          : `the API listens on ${where}, beyond loopback, so reads need a token: set node.api.tokensFile, or node.api.protectReads: false to let anyone who reaches ${where} read the cluster view and config`,
      ),
    )
  }
  return ok({
    protectReads,
    allowedHosts: api.allowedHosts,
    limits: {
      maxConnections: api.maxConnections,
      maxHeaderBytes: api.maxHeaderBytes,
      maxBodyBytes: api.maxBodyBytes,
      headersTimeoutMs: api.headersTimeoutMs,
      requestTimeoutMs: api.requestTimeoutMs,
      keepAliveTimeoutMs: api.keepAliveTimeoutMs,
    },
  })
}

/**
 * Whether a Host header names this server in a way a browser cannot be tricked into (DNS
 * rebinding sends the attacker's host name): an IP literal, `localhost`, or a listed name.
 * A request without a Host header (HTTP/1.0) is not a browser's.
 */
export function hostAllowed(header: string | undefined, allowedHosts: readonly string[]): boolean {
  if (header === undefined) return true
  const m = /^(\[[0-9A-Fa-f:.]+\]|[^:[\]]+)(?::\d{1,5})?$/.exec(header.trim())
  if (m === null) return false
  const host = m[1]!.toLowerCase()
  if (host === 'localhost' || parseIp(host.replace(/^\[(.*)\]$/, '$1')) !== null) return true
  const name = host.endsWith('.') ? host.slice(0, -1) : host
  return allowedHosts.some((h) => h.toLowerCase() === name)
}
