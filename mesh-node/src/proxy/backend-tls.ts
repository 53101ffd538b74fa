import type { Socket } from 'node:net'
import { type TLSSocket, connect as tlsConnect } from 'node:tls'
import { SSL_REQUEST } from './pg-wire.js'

/** How the proxy speaks TLS to a backend after terminating the client's. */
export interface BackendTls {
  /** PEM CA bundle the backend's certificate must chain to */
  readonly ca: Buffer
  /** the name the certificate must carry; default the backend's host */
  readonly serverName?: string
  /** PostgreSQL: ask with SSLRequest first (false: TLS from the first byte, `servers` listeners) */
  readonly postgres: boolean
}

/**
 * verify-full over a connected `raw` socket: SSLRequest (PostgreSQL), then TLS with the chain
 * checked against the CA and the name against the backend's. Calls `ready` with the TLS socket, or
 * `failed` with why (the server said N, the certificate did not verify, the socket closed).
 */
export function startBackendTls(
  raw: Socket,
  host: string,
  tls: BackendTls,
  ready: (s: TLSSocket) => void,
  failed: (why: string) => void,
): void {
  let done = false
  const fail = (why: string) => {
    if (done) return
    done = true
    raw.destroy()
    failed(why)
  }
  const wrap = () => {
    const servername = tls.serverName ?? host
    let s: TLSSocket
    try {
      s = tlsConnect({
        socket: raw,
        ca: tls.ca,
        // node checks the name against `servername` (checkServerIdentity); an IP needs an IP SAN
        servername: /^[\d.]+$|:/.test(servername) ? undefined : servername,
        host: servername,
        ALPNProtocols: tls.postgres ? ['postgresql'] : undefined,
        minVersion: 'TLSv1.2',
      })
    } catch (e) {
      fail(`TLS to the backend: ${(e as Error).message}`)
      return
    }
    s.on('error', (e) => fail(`TLS to the backend: ${e.message}`))
    s.once('secureConnect', () => {
      if (done) return
      done = true
      ready(s)
    })
  }
  raw.once('close', () => fail('closed before TLS was set up'))
  raw.on('error', () => undefined)
  if (!tls.postgres) {
    wrap()
    return
  }
  raw.write(SSL_REQUEST)
  raw.once('data', (d: Buffer) => {
    if (d[0] !== 0x53)
      return fail(
        d[0] === 0x4e
          ? 'the backend does not accept TLS (answered N)'
          : 'the backend answered SSLRequest with something else',
      )
    if (d.length > 1) return fail('the backend sent data after S')
    raw.pause()
    wrap()
  })
}
