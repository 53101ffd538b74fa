import type { MiddlewareHandler } from 'hono'
import { apiError } from './errors.js'

/** Who may call the API: bearer tokens, re-read by the node when its token file changes. */
export interface ApiAuth {
  /** the accepted tokens now; none = writes through the API are off */
  tokens(): readonly string[]
  /** whether read endpoints need a token too */
  readonly protectReads: boolean
}

/** Compares without an early exit, so response time does not tell how much of a token matched. */
function sameToken(a: string, b: string): boolean {
  let diff = a.length ^ b.length
  for (let i = 0; i < Math.max(a.length, b.length); i++) {
    diff |= (a.charCodeAt(i % (a.length || 1)) || 0) ^ (b.charCodeAt(i % (b.length || 1)) || 0)
  }
  return diff === 0
}

function presented(header: string | undefined): string | null {
  const m = /^Bearer\s+(\S+)\s*$/i.exec(header ?? '')
  return m?.[1] ?? null
}

/**
 * Guards one route. `write`: always needs a token (403 when none are configured, 401 when missing
 * or wrong); `read`: needs one only with `protectReads`. Without an `ApiAuth` at all, reads are
 * open and writes are off.
 */
export function requireToken(auth: ApiAuth | undefined, kind: 'read' | 'write'): MiddlewareHandler {
  return async (c, next) => {
    if (kind === 'read' && auth?.protectReads !== true) return next()
    const tokens = auth?.tokens() ?? []
    if (kind === 'write' && tokens.length === 0) {
      return c.json(
        apiError('API_WRITES_DISABLED', 'this node has no API tokens (node.api.tokensFile): writes are off'),
        403,
      )
    }
    const token = presented(c.req.header('authorization'))
    if (token === null || !tokens.some((t) => sameToken(t, token))) {
      c.header('WWW-Authenticate', 'Bearer realm="pgmesh"')
      return c.json(
        apiError('API_UNAUTHORIZED', 'a valid "Authorization: Bearer <token>" header is required'),
        401,
      )
    }
    return next()
  }
}

/**
 * For a source that forwards writes (the control plane): the caller must present a bearer token,
 * which the node that finally acts checks. Refusing a missing one here saves a round trip.
 */
export function requireBearer(): MiddlewareHandler {
  return async (c, next) => {
    if (presented(c.req.header('authorization')) !== null) return next()
    c.header('WWW-Authenticate', 'Bearer realm="pgmesh"')
    return c.json(
      apiError('API_UNAUTHORIZED', 'a valid "Authorization: Bearer <token>" header is required'),
      401,
    )
  }
}
