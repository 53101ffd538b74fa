import { err, ok, pgmeshError, type Result } from '@pgmesh/protocol'

/** The one Web API the control plane needs from its runtime (workerd, Node, a test double). */
export type FetchLike = (input: string, init: RequestInit) => Promise<Response>

export interface NodeAnswer {
  readonly status: number
  readonly body: unknown
  readonly text: string
  readonly contentType: string
  readonly latencyMs: number
}

export interface CallOptions {
  readonly method?: 'GET' | 'PUT' | 'POST'
  readonly body?: string
  /** the `Authorization` header to send, as is */
  readonly authorization?: string
  readonly timeoutMs: number
  /** JSON (default) or text (Prometheus) */
  readonly expect?: 'json' | 'text'
  /** a longer answer is refused (CP_NODE_BAD_ANSWER) as soon as it grows past this; default 8 MiB */
  readonly maxBytes?: number
}

/** A node's status for 64 members is well under 1 MiB; this bounds what a broken or hostile URL can make us hold. */
export const NODE_ANSWER_MAX_BYTES = 8 * 1024 * 1024

class TooLarge extends Error {}

/** The body as text, read chunk by chunk and given up (the stream cancelled) past `max` bytes. */
async function boundedText(res: Response, max: number): Promise<string> {
  const declared = Number(res.headers.get('content-length') ?? Number.NaN)
  if (declared > max) {
    await res.body?.cancel()
    throw new TooLarge()
  }
  if (res.body === null) return ''
  const reader = res.body.getReader()
  const chunks: Uint8Array[] = []
  let size = 0
  for (;;) {
    const { done, value } = await reader.read()
    if (done) break
    size += value.byteLength
    if (size > max) {
      await reader.cancel()
      throw new TooLarge()
    }
    chunks.push(value)
  }
  const all = new Uint8Array(size)
  let at = 0
  for (const c of chunks) {
    all.set(c, at)
    at += c.byteLength
  }
  return new TextDecoder().decode(all)
}

/**
 * One call to one node, bounded as a whole (connect, headers and body) by `timeoutMs`: a node
 * that hangs is a CP_NODE_TIMEOUT, never a hung request. An HTTP error status is an answer, not
 * a failure: the caller decides (a 401 from a node is passed on as it is).
 */
export async function callNode(
  fetchFn: FetchLike,
  mono: () => number,
  baseUrl: string,
  path: string,
  options: CallOptions,
): Promise<Result<NodeAnswer>> {
  const ctl = new AbortController()
  const started = mono()
  let timedOut = false
  const timer = setTimeout(() => {
    timedOut = true
    ctl.abort()
  }, options.timeoutMs)
  const headers: Record<string, string> = {
    accept: options.expect === 'text' ? 'text/plain' : 'application/json',
  }
  if (options.authorization !== undefined) headers.authorization = options.authorization
  if (options.body !== undefined) headers['content-type'] = 'application/json'
  try {
    const res = await fetchFn(`${baseUrl.replace(/\/+$/, '')}${path}`, {
      method: options.method ?? 'GET',
      headers,
      signal: ctl.signal,
      ...(options.body === undefined ? {} : { body: options.body }),
    })
    const max = options.maxBytes ?? NODE_ANSWER_MAX_BYTES
    let text: string
    try {
      text = await boundedText(res, max)
    } catch (e) {
      if (!(e instanceof TooLarge)) throw e
      return err(pgmeshError('CP_NODE_BAD_ANSWER', `${baseUrl}${path} answered with more than ${max} bytes`))
    }
    const contentType = res.headers.get('content-type') ?? ''
    let body: unknown = null
    if (options.expect !== 'text' || !res.ok) {
      try {
        body = JSON.parse(text)
      } catch {
        if (options.expect !== 'text') {
          return err(
            pgmeshError(
              'CP_NODE_BAD_ANSWER',
              `${baseUrl}${path} answered ${res.status} with a body that is not JSON`,
            ),
          )
        }
      }
    }
    return ok({ status: res.status, body, text, contentType, latencyMs: Math.round(mono() - started) })
  } catch (e) {
    if (timedOut) {
      return err(
        pgmeshError('CP_NODE_TIMEOUT', `${baseUrl} did not answer ${path} within ${options.timeoutMs} ms`),
      )
    }
    const why = e instanceof Error ? e.message : String(e)
    return err(pgmeshError('CP_NODE_UNREACHABLE', `${baseUrl}${path}: ${why}`))
  } finally {
    clearTimeout(timer)
  }
}
