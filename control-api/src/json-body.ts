import { issuesWithHints, type Schema } from '@pgmesh/protocol'
import type { Context, MiddlewareHandler } from 'hono'
import { bodyLimit } from 'hono/body-limit'
import { apiError } from './errors.js'

/** What a route validated: read it with `c.get('body')`. */
export interface JsonBodyEnv<T> {
  Variables: { body: T }
}

export interface JsonBodyOptions {
  /** a body over this many bytes is refused unread (413) */
  readonly maxBytes: number
  /** the expected shape in words, for the 400 message, e.g. `{ enabled: boolean }` */
  readonly expected: string
}

/**
 * The one place a request body is read: bounded in size before it is read, parsed as JSON, and
 * checked against the route's zod schema, so a handler sees only a valid body (`c.get('body')`)
 * and every route refuses bad input with the same clear errors.
 */
export function jsonBody<T>(schema: Schema<T>, options: JsonBodyOptions): MiddlewareHandler<JsonBodyEnv<T>> {
  const tooLarge = (c: Context) =>
    c.json(apiError('API_BAD_REQUEST', `the body is over ${options.maxBytes} bytes`), 413)
  const limit = bodyLimit({ maxSize: options.maxBytes, onError: tooLarge })
  return async (c, next) => {
    let outcome: Response | undefined
    const limited = await limit(c, async () => {
      let doc: unknown
      try {
        doc = await c.req.json()
      } catch {
        outcome = c.json(apiError('API_BAD_REQUEST', 'the body is not JSON'), 400)
        return
      }
      const parsed = schema.safeParse(doc)
      if (!parsed.success) {
        outcome = c.json(
          apiError(
            'API_BAD_REQUEST',
            `invalid body: ${options.expected}`,
            issuesWithHints(schema, parsed.error),
          ),
          400,
        )
        return
      }
      c.set('body', parsed.data)
      await next()
    })
    return outcome ?? limited ?? undefined
  }
}
