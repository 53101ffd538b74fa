import { Hono } from 'hono'
import type { MetricsCapability } from '../cluster-source.js'
import type { Guards } from './guards.js'

/** `GET /metrics`: Prometheus text format from the source's registry. */
export function metricsRoutes(source: MetricsCapability, guards: Guards): Hono {
  const app = new Hono()
  app.get('/', guards.read, async (c) => {
    const m = await source.metrics()
    return c.body(m.body, 200, { 'Content-Type': m.contentType })
  })
  return app
}
