import { MembersQuerySchema, toIssues } from '@pgmesh/protocol'
import { Hono } from 'hono'
import { type ApiAuth, requireBearer, requireToken } from './auth.js'
import type { ClusterSource } from './cluster-source.js'
import { apiError, refused, SourceError } from './errors.js'
import { configRoutes } from './routes/config.js'
import { eventsRoutes } from './routes/events.js'
import { type Guards, requestContext } from './routes/guards.js'
import { maintenanceRoutes } from './routes/maintenance.js'
import { memberAdminRoutes } from './routes/member-admin.js'
import { metricsRoutes } from './routes/metrics.js'
import { renderStatusPage } from './status-page.js'

export interface ControlApiOptions {
  readonly source: ClusterSource
  /** bearer tokens for write endpoints (and reads, with protectReads); none = writes are off */
  readonly auth?: ApiAuth
  /**
   * `check` (a node): write routes check the token against `auth`. `forward` (the control
   * plane): write routes only need a bearer token to be presented; the source forwards it to a
   * node, which checks it and whose refusal the caller gets.
   */
  readonly writes?: 'check' | 'forward'
  /** called with unexpected handler errors; the client gets a generic 500 */
  readonly onError?: (err: unknown) => void
}

/**
 * The control API as a plain Hono app: Web-standard Request/Response only, so it runs under
 * @hono/node-server, an edge runtime, or `app.request()` in tests. The required reads are always
 * there; each optional capability of the source is a sub-app, mounted only when the source has it.
 */
export function createControlApi(options: ControlApiOptions): Hono {
  const { source } = options
  const app = new Hono()
  // /health, /ready and /master stay open: load balancers and orchestrators poll them
  const guards: Guards = {
    read: requireToken(options.auth, 'read'),
    write: options.writes === 'forward' ? requireBearer() : requireToken(options.auth, 'write'),
    context: requestContext,
    forwards: options.writes === 'forward',
  }
  const { read } = guards

  app.get('/', read, async (c) => {
    const [status, backends, events] = await Promise.all([
      source.status(),
      source.backends(),
      source.events?.(),
    ])
    return c.html(renderStatusPage(status, backends, events))
  })

  app.get('/health', async (c) => c.json(await source.health()))

  app.get('/ready', async (c) => {
    const r = await source.ready()
    return c.json(r, r.ready ? 200 : 503)
  })

  app.get('/v1/status', read, async (c) => c.json(await source.status()))

  app.get('/v1/backends', read, async (c) => c.json(await source.backends()))

  // for a cloud load balancer's health check: only the MASTER answers 200
  app.get('/master', async (c) => {
    const m = await source.master()
    return c.json(m, m.master ? 200 : 503)
  })

  app.get('/v1/members', read, async (c) => {
    const q = MembersQuerySchema.safeParse(c.req.query())
    if (!q.success) {
      return c.json(apiError('API_BAD_REQUEST', 'invalid query parameters', toIssues(q.error)), 400)
    }
    const { state } = q.data
    const members = (await source.members()).filter((m) => state === undefined || m.state === state)
    return c.json({ members })
  })

  // capabilities: bound to the source, so a class's methods keep their `this`
  const { metrics, config, putConfig, maintenance, setMaintenance, removeMember, events } = source
  if (metrics !== undefined)
    app.route('/metrics', metricsRoutes({ metrics: () => metrics.call(source) }, guards))
  if (config !== undefined) {
    const cap = {
      config: () => config.call(source),
      ...(putConfig === undefined
        ? {}
        : { putConfig: (...a: Parameters<typeof putConfig>) => putConfig.apply(source, a) }),
    }
    app.route('/v1/config', configRoutes(cap, guards))
  }
  if (maintenance !== undefined || setMaintenance !== undefined) {
    const cap = {
      ...(maintenance === undefined ? {} : { maintenance: () => maintenance.call(source) }),
      ...(setMaintenance === undefined
        ? {}
        : { setMaintenance: (...a: Parameters<typeof setMaintenance>) => setMaintenance.apply(source, a) }),
    }
    app.route(
      '/v1/maintenance',
      maintenanceRoutes(cap, guards, async () => (await source.health()).node),
    )
  }
  if (removeMember !== undefined) {
    const cap = { removeMember: (...a: Parameters<typeof removeMember>) => removeMember.apply(source, a) }
    app.route('/v1/members', memberAdminRoutes(cap, guards))
  }
  if (events !== undefined) {
    app.route('/v1/events', eventsRoutes({ events: (since) => events.call(source, since) }, guards))
  }

  app.notFound((c) => c.json(apiError('API_NOT_FOUND', `no route for ${c.req.method} ${c.req.path}`), 404))

  app.onError((e, c) => {
    if (e instanceof SourceError) return refused(c, e.error)
    options.onError?.(e)
    return c.json(apiError('API_INTERNAL', 'internal error; see the node log'), 500)
  })

  return app
}
