import type { AddressInfo } from 'node:net'
import { createAdaptorServer } from '@hono/node-server'
import type { HostPort } from '@pgmesh/protocol'
import type { Hono } from 'hono'

export interface ApiServer {
  readonly address: HostPort
  close(): Promise<void>
}

/** Limits that keep a slow or hostile client from holding the API server's memory or sockets. */
const SERVER_LIMITS = {
  maxHeaderSize: 16 * 1024,
  headersTimeout: 5_000,
  requestTimeout: 10_000,
  keepAliveTimeout: 5_000,
} as const

export async function startApiServer(app: Hono, listen: HostPort): Promise<ApiServer> {
  const server = createAdaptorServer({ fetch: app.fetch, serverOptions: SERVER_LIMITS })
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
    close: () =>
      new Promise<void>((done) => {
        server.close(() => done())
        if ('closeAllConnections' in server) server.closeAllConnections()
      }),
  }
}
