import { createServer, type IncomingMessage, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { getRequestListener } from '@hono/node-server'
import type { ApiAuth } from '@pgmesh/control-api'
import type { ErrorCode, HostPort } from '@pgmesh/protocol'
import type { Hono } from 'hono'
import { type ApiLimits, DEFAULT_API_LIMITS, hostAllowed } from './api-policy.js'

export interface ApiServer {
  readonly address: HostPort
  /** requests answered by the server itself, before any route, by reason */
  refused(): Readonly<Record<ApiRefusal, number>>
  close(): Promise<void>
}

export type ApiRefusal = 'host' | 'unauthorized' | 'writesDisabled' | 'tooLarge'

export interface ApiServerOptions {
  /** the tokens the app checks too: a write is refused here, before its body is read */
  readonly auth?: ApiAuth
  /** host names accepted in the Host header besides IP literals and `localhost` */
  readonly allowedHosts?: readonly string[]
  readonly limits?: ApiLimits
  /** told of every request the server refuses itself (for a rate-limited log); must not throw */
  readonly onRefused?: (reason: ApiRefusal, remote: string) => void
}

/** Methods that carry no body: everything else is a write and is authenticated before reading. */
const READ_METHODS = new Set(['GET', 'HEAD', 'OPTIONS'])

/** A refused request's socket gets this long to take the answer before it is destroyed. */
const CLOSE_GRACE_MS = 1_000

/** Same-length-independent comparison, as the control API's own check does. */
function sameToken(a: string, b: string): boolean {
  let diff = a.length ^ b.length
  for (let i = 0; i < Math.max(a.length, b.length); i++) {
    diff |= (a.charCodeAt(i % (a.length || 1)) || 0) ^ (b.charCodeAt(i % (b.length || 1)) || 0)
  }
  return diff === 0
}

function presentedToken(header: string | undefined): string | null {
  return /^Bearer\s+(\S+)\s*$/i.exec(header ?? '')?.[1] ?? null
}

/**
 * Answers without reading the body and closes the connection: Node would otherwise read (and
 * drop) the rest of a body the client keeps sending.
 */
function refuse(
  req: IncomingMessage,
  res: ServerResponse,
  status: number,
  code: ErrorCode,
  message: string,
  headers: Record<string, string> = {},
): void {
  const body = JSON.stringify({ error: { code, message } })
  res.writeHead(status, {
    'content-type': 'application/json',
    'content-length': Buffer.byteLength(body),
    connection: 'close',
    ...headers,
  })
  res.end(body)
  res.once('finish', () => {
    if (req.complete) return
    req.socket.end()
    setTimeout(() => req.socket.destroy(), CLOSE_GRACE_MS).unref()
  })
}

/**
 * The control API over Node's http server, with the checks that must come before any route runs:
 * the Host header (DNS rebinding), the token of any write (so an unauthenticated body is never
 * read), a declared body size, and connection, header and time limits.
 */
export async function startApiServer(
  app: Hono,
  listen: HostPort,
  options: ApiServerOptions = {},
): Promise<ApiServer> {
  const limits = options.limits ?? DEFAULT_API_LIMITS
  const allowedHosts = options.allowedHosts ?? []
  const counts: Record<ApiRefusal, number> = { host: 0, unauthorized: 0, writesDisabled: 0, tooLarge: 0 }
  const handle = getRequestListener(app.fetch)
  const count = (reason: ApiRefusal, req: IncomingMessage) => {
    counts[reason]++
    try {
      options.onRefused?.(reason, req.socket.remoteAddress ?? 'unknown')
    } catch {
      // a listener's failure must not take the request path with it
    }
  }

  const gate = (req: IncomingMessage, res: ServerResponse): boolean => {
    if (!hostAllowed(req.headers.host, allowedHosts)) {
      count('host', req)
      refuse(
        req,
        res,
        421,
        'API_HOST_NOT_ALLOWED',
        'the Host header names a host this node does not serve (add it to node.api.allowedHosts)',
      )
      return false
    }
    if (!READ_METHODS.has(req.method ?? 'GET')) {
      const tokens = options.auth?.tokens() ?? []
      if (tokens.length === 0) {
        count('writesDisabled', req)
        refuse(
          req,
          res,
          403,
          'API_WRITES_DISABLED',
          'this node has no API tokens (node.api.tokensFile): writes are off',
        )
        return false
      }
      const token = presentedToken(req.headers.authorization)
      if (token === null || !tokens.some((t) => sameToken(t, token))) {
        count('unauthorized', req)
        refuse(
          req,
          res,
          401,
          'API_UNAUTHORIZED',
          'a valid "Authorization: Bearer <token>" header is required',
          { 'www-authenticate': 'Bearer realm="pgmesh"' },
        )
        return false
      }
    }
    const declared = Number(req.headers['content-length'] ?? 0)
    if (declared > limits.maxBodyBytes) {
      count('tooLarge', req)
      refuse(req, res, 413, 'API_BAD_REQUEST', `the body is over ${limits.maxBodyBytes} bytes`)
      return false
    }
    return true
  }

  const server = createServer(
    {
      maxHeaderSize: limits.maxHeaderBytes,
      headersTimeout: limits.headersTimeoutMs,
      requestTimeout: limits.requestTimeoutMs,
      keepAliveTimeout: limits.keepAliveTimeoutMs,
      // Node checks the two timeouts above only this often (default 30 s)
      connectionsCheckingInterval: Math.max(50, Math.min(1_000, Math.floor(limits.headersTimeoutMs / 4))),
    },
    (req, res) => {
      if (gate(req, res)) void handle(req, res)
    },
  )
  // sockets beyond this are closed as they are accepted
  server.maxConnections = limits.maxConnections
  await new Promise<void>((resolveListen, rejectListen) => {
    server.once('error', rejectListen)
    server.listen(listen.port, listen.host, () => {
      server.off('error', rejectListen)
      resolveListen()
    })
  })
  // client errors (random bytes, oversized headers) are left to Node's default handler, which
  // answers 400/431/408 and closes that socket only
  const a = server.address() as AddressInfo
  return {
    address: { host: a.address, port: a.port },
    refused: () => ({ ...counts }),
    close: () =>
      new Promise<void>((done) => {
        server.close(() => done())
        server.closeAllConnections()
      }),
  }
}
