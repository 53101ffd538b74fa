import { MaintenancePutBodySchema } from '@pgmesh/protocol'
import { Hono } from 'hono'
import type { MaintenanceCapability } from '../cluster-source.js'
import { apiError, refused } from '../errors.js'
import { jsonBody } from '../json-body.js'
import type { Guards } from './guards.js'

/** `{ "enabled": true, "reason": "..." }` fits in far less; anything bigger is refused unread. */
const MAINTENANCE_BODY_MAX_BYTES = 4_096

/** `GET`/`PUT /v1/maintenance`: each route exists when the source has its method. */
export function maintenanceRoutes(
  source: Partial<MaintenanceCapability>,
  guards: Guards,
  selfId: () => Promise<string>,
): Hono {
  const app = new Hono()
  const { maintenance, setMaintenance } = source
  if (maintenance !== undefined) {
    app.get('/', guards.read, async (c) => c.json(await maintenance.call(source)))
  }
  if (setMaintenance !== undefined) {
    app.put(
      '/',
      guards.write,
      jsonBody(MaintenancePutBodySchema, {
        maxBytes: MAINTENANCE_BODY_MAX_BYTES,
        expected: '{ enabled: boolean, reason?: string }',
      }),
      async (c) => {
        const ctx = guards.context(c)
        // a node acts on itself only: `?node=` naming another must not put this one out of service
        if (!guards.forwards && ctx.node !== undefined && ctx.node !== (await selfId())) {
          const message = `this is ${await selfId()}, not ${ctx.node}: send it to ${ctx.node} or to the control plane`
          return c.json(apiError('MEMBER_NOT_FOUND', message), 404)
        }
        const r = await setMaintenance.call(source, c.get('body'), ctx)
        return r.ok ? c.json(r.value) : refused(c, r.error)
      },
    )
  }
  return app
}
