import { ConfigPutBodySchema, issuesWithHints, MembersQuerySchema, toIssues } from '@pgmesh/protocol'
import { type Context, Hono } from 'hono'
import { bodyLimit } from 'hono/body-limit'
import { type ApiAuth, requireToken } from './auth.js'
import type { ClusterSource } from './cluster-source.js'
import { apiError } from './errors.js'
import { registerOperatorRoutes } from './operator-routes.js'
import { renderStatusPage } from './status-page.js'

export interface ControlApiOptions {
  readonly source: ClusterSource
  /** bearer tokens for write endpoints (and reads, with protectReads); none = writes are off */
  readonly auth?: ApiAuth
  /** called with unexpected handler errors; the client gets a generic 500 */
  readonly onError?: (err: unknown) => void
}

/** A cluster config travels as one gossip message; a body far beyond that is refused unread. */
const CONFIG_BODY_MAX_BYTES = 1_048_576

const tooLarge = (c: Context) =>
  c.json(apiError('API_BAD_REQUEST', `the body is over ${CONFIG_BODY_MAX_BYTES} bytes`), 413)

/**
 * The control API as a plain Hono app: Web-standard Request/Response only, so it runs under
 * @hono/node-server, an edge runtime, or `app.request()` in tests.
 */
export function createControlApi(options: ControlApiOptions): Hono {
  const { source } = options
  const app = new Hono()
  // /health, /ready and /master stay open: load balancers and orchestrators poll them
  const read = requireToken(options.auth, 'read')
  const write = requireToken(options.auth, 'write')

  app.get('/', read, (c) => c.html(renderStatusPage(source.status(), source.backends())))

  app.get('/health', (c) => c.json(source.health()))

  app.get('/ready', (c) => {
    const r = source.ready()
    return c.json(r, r.ready ? 200 : 503)
  })

  app.get('/v1/status', read, (c) => c.json(source.status()))

  app.get('/v1/backends', read, (c) => c.json(source.backends()))

  // for a cloud load balancer's health check: only the MASTER answers 200
  app.get('/master', (c) => {
    const m = source.master()
    return c.json(m, m.master ? 200 : 503)
  })

  // Prometheus text format; the registry lives in the node, so a source without one answers 404
  app.get('/metrics', read, async (c) => {
    if (source.metrics === undefined) {
      return c.json(apiError('API_NOT_FOUND', 'this node does not serve metrics'), 404)
    }
    const m = await source.metrics()
    return c.body(m.body, 200, { 'Content-Type': m.contentType })
  })

  app.get('/v1/config', read, (c) => {
    if (source.config === undefined)
      return c.json(apiError('API_NOT_FOUND', 'this node has no cluster config'), 404)
    return c.json(source.config())
  })

  app.put(
    '/v1/config',
    bodyLimit({ maxSize: CONFIG_BODY_MAX_BYTES, onError: tooLarge }),
    write,
    async (c) => {
      if (source.putConfig === undefined) {
        return c.json(apiError('API_NOT_FOUND', 'this node has no cluster config'), 404)
      }
      let doc: unknown
      try {
        doc = await c.req.json()
      } catch {
        return c.json(apiError('API_BAD_REQUEST', 'the body is not JSON'), 400)
      }
      const body = ConfigPutBodySchema.safeParse(doc)
      if (!body.success) {
        return c.json(
          apiError(
            'API_BAD_REQUEST',
            'invalid body: { cluster, baseVersion? }',
            issuesWithHints(ConfigPutBodySchema, body.error),
          ),
          400,
        )
      }
      const r = await source.putConfig(body.data)
      if (r.ok) return c.json(r.value)
      const status = r.error.code === 'CONFIG_CONFLICT' ? 409 : 400
      return c.json(apiError(r.error.code, r.error.message, r.error.issues), status)
    },
  )

  app.get('/v1/members', read, (c) => {
    const q = MembersQuerySchema.safeParse(c.req.query())
    if (!q.success) {
      return c.json(apiError('API_BAD_REQUEST', 'invalid query parameters', toIssues(q.error)), 400)
    }
    const { state } = q.data
    const members = source.members().filter((m) => state === undefined || m.state === state)
    return c.json({ members })
  })

  registerOperatorRoutes(app, source, options.auth)

  app.notFound((c) => c.json(apiError('API_NOT_FOUND', `no route for ${c.req.method} ${c.req.path}`), 404))

  app.onError((e, c) => {
    options.onError?.(e)
    return c.json(apiError('API_INTERNAL', 'internal error; see the node log'), 500)
  })

  return app
}
