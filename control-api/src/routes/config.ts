import { ConfigPutBodySchema } from '@pgmesh/protocol'
import { Hono } from 'hono'
import type { ConfigCapability } from '../cluster-source.js'
import { refused } from '../errors.js'
import { jsonBody } from '../json-body.js'
import type { Guards } from './guards.js'

/** A cluster config travels as one gossip message; a body far beyond that is refused unread. */
const CONFIG_BODY_MAX_BYTES = 1_048_576

/** `GET /v1/config`, and `PUT /v1/config` when the source can apply a new version. */
export function configRoutes(source: ConfigCapability, guards: Guards): Hono {
  const app = new Hono()
  app.get('/', guards.read, async (c) => c.json(await source.config()))
  const { putConfig } = source
  if (putConfig === undefined) return app
  app.put(
    '/',
    guards.write,
    jsonBody(ConfigPutBodySchema, {
      maxBytes: CONFIG_BODY_MAX_BYTES,
      expected: '{ cluster, baseVersion? }',
    }),
    async (c) => {
      const r = await putConfig.call(source, c.get('body'), guards.context(c))
      return r.ok ? c.json(r.value) : refused(c, r.error)
    },
  )
  return app
}
