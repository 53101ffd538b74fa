import { type ErrorCode, MaintenancePutBodySchema, NodeIdSchema, toIssues } from '@pgmesh/protocol'
import type { Context, Hono } from 'hono'
import { bodyLimit } from 'hono/body-limit'
import { type ApiAuth, requireToken } from './auth.js'
import type { ClusterSource } from './cluster-source.js'
import { apiError } from './errors.js'

/** `{ "enabled": true, "reason": "..." }` fits in far less; anything bigger is refused unread. */
const MAINTENANCE_BODY_MAX_BYTES = 4_096

const STATUS: Partial<Record<ErrorCode, 400 | 404 | 409>> = {
  MEMBER_NOT_FOUND: 404,
  MEMBER_NOT_DEAD: 409,
  MEMBER_IS_SELF: 409,
}

const notServed = (c: Context, what: string) =>
  c.json(apiError('API_NOT_FOUND', `this node does not serve ${what}`), 404)

/** Operator actions: maintenance of this node, removal of a dead member. Writes need a token. */
export function registerOperatorRoutes(app: Hono, source: ClusterSource, auth: ApiAuth | undefined): void {
  const read = requireToken(auth, 'read')
  const write = requireToken(auth, 'write')

  app.get('/v1/maintenance', read, (c) =>
    source.maintenance === undefined ? notServed(c, 'maintenance') : c.json(source.maintenance()),
  )

  app.put(
    '/v1/maintenance',
    // the token first: an unauthenticated body is never read
    write,
    bodyLimit({
      maxSize: MAINTENANCE_BODY_MAX_BYTES,
      onError: (c) =>
        c.json(apiError('API_BAD_REQUEST', `the body is over ${MAINTENANCE_BODY_MAX_BYTES} bytes`), 413),
    }),
    async (c) => {
      if (source.setMaintenance === undefined) return notServed(c, 'maintenance')
      let doc: unknown
      try {
        doc = await c.req.json()
      } catch {
        return c.json(apiError('API_BAD_REQUEST', 'the body is not JSON'), 400)
      }
      const body = MaintenancePutBodySchema.safeParse(doc)
      if (!body.success) {
        return c.json(
          apiError(
            'API_BAD_REQUEST',
            'invalid body: { enabled: boolean, reason?: string }',
            toIssues(body.error),
          ),
          400,
        )
      }
      const r = await source.setMaintenance(body.data)
      if (r.ok) return c.json(r.value)
      return c.json(apiError(r.error.code, r.error.message), STATUS[r.error.code] ?? 500)
    },
  )

  app.post('/v1/members/:id/remove', write, async (c) => {
    if (source.removeMember === undefined) return notServed(c, 'member removal')
    const id = NodeIdSchema.safeParse(c.req.param('id'))
    if (!id.success) {
      return c.json(apiError('API_BAD_REQUEST', 'not a node id', toIssues(id.error)), 400)
    }
    const r = await source.removeMember(id.data)
    if (r.ok) return c.json(r.value)
    return c.json(apiError(r.error.code, r.error.message), STATUS[r.error.code] ?? 500)
  })
}
