import type { Context, MiddlewareHandler } from 'hono'
import type { RequestContext } from '../cluster-source.js'

/** The token checks a sub-app puts in front of its routes, and what a source learns of a request. */
export interface Guards {
  readonly read: MiddlewareHandler
  readonly write: MiddlewareHandler
  context(c: Context): RequestContext
  /** whether the source acts for other nodes (the control plane) or is the node itself */
  readonly forwards: boolean
}

export function requestContext(c: Context): RequestContext {
  const authorization = c.req.header('authorization')
  const node = c.req.query('node')
  return {
    ...(authorization === undefined ? {} : { authorization }),
    ...(node === undefined ? {} : { node }),
  }
}
