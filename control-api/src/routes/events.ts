import { EventsQuerySchema, toIssues } from '@pgmesh/protocol'
import { Hono } from 'hono'
import type { EventsCapability } from '../cluster-source.js'
import { apiError } from '../errors.js'
import type { Guards } from './guards.js'

/** `GET /v1/events?since=N`: the cluster events the source recorded after sequence number N. */
export function eventsRoutes(source: EventsCapability, guards: Guards): Hono {
  const app = new Hono()
  app.get('/', guards.read, async (c) => {
    const q = EventsQuerySchema.safeParse(c.req.query())
    if (!q.success) {
      return c.json(apiError('API_BAD_REQUEST', 'invalid query: ?since=N', toIssues(q.error)), 400)
    }
    return c.json(await source.events(q.data.since))
  })
  return app
}
