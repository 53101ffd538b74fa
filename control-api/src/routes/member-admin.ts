import { NodeIdSchema, toIssues } from '@pgmesh/protocol'
import { Hono } from 'hono'
import type { MemberAdminCapability } from '../cluster-source.js'
import { apiError, refused } from '../errors.js'
import type { Guards } from './guards.js'

/** `POST /v1/members/{id}/remove`: a dead member stops counting toward quorum. */
export function memberAdminRoutes(source: MemberAdminCapability, guards: Guards): Hono {
  const app = new Hono()
  app.post('/:id/remove', guards.write, async (c) => {
    const id = NodeIdSchema.safeParse(c.req.param('id'))
    if (!id.success) {
      return c.json(apiError('API_BAD_REQUEST', 'not a node id', toIssues(id.error)), 400)
    }
    const r = await source.removeMember(id.data, guards.context(c))
    return r.ok ? c.json(r.value) : refused(c, r.error)
  })
  return app
}
