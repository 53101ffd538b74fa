/**
 * The few PostgreSQL wire messages a proxy at the edge reads or writes before the session starts:
 * the client's first packet (SSLRequest, GSSENCRequest, CancelRequest, a startup packet, or a TLS
 * ClientHello for PostgreSQL 17's direct TLS), and the ErrorResponse it answers with when it refuses.
 * Pure: no sockets, no logs (startup packets carry user names).
 */

export const SSL_REQUEST_CODE = 80877103
export const GSSENC_REQUEST_CODE = 80877104
export const CANCEL_REQUEST_CODE = 80877102
export const PROTOCOL_3 = 196608
/** PostgreSQL's own limit on a startup packet (MAX_STARTUP_PACKET_LENGTH) */
export const MAX_STARTUP_LENGTH = 10_000
/** the first byte of a TLS handshake record: a client that starts TLS at once (direct TLS) */
export const TLS_HANDSHAKE_BYTE = 0x16
export const CANCEL_REQUEST_LENGTH = 16

export const SSL_REQUEST = Buffer.from([0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f])

export type FirstPacket =
  | { readonly kind: 'partial' }
  | { readonly kind: 'direct-tls' }
  | { readonly kind: 'ssl-request' }
  | { readonly kind: 'gssenc-request' }
  | { readonly kind: 'cancel'; readonly packet: Buffer }
  | { readonly kind: 'startup'; readonly packet: Buffer }
  | { readonly kind: 'invalid'; readonly reason: string }

/** What the client's first bytes are; `partial` until there are enough of them to tell. */
export function classifyFirstPacket(b: Buffer, allowDirectTls: boolean): FirstPacket {
  if (b.length === 0) return { kind: 'partial' }
  if (b[0] === TLS_HANDSHAKE_BYTE) {
    return allowDirectTls
      ? { kind: 'direct-tls' }
      : { kind: 'invalid', reason: 'TLS without SSLRequest on a listener that does not terminate TLS' }
  }
  if (b.length < 8) return { kind: 'partial' }
  const length = b.readUInt32BE(0)
  const code = b.readUInt32BE(4)
  if (length < 8 || length > MAX_STARTUP_LENGTH)
    return { kind: 'invalid', reason: `startup packet length ${length}` }
  if (code === SSL_REQUEST_CODE || code === GSSENC_REQUEST_CODE) {
    if (length !== 8) return { kind: 'invalid', reason: `encryption request of length ${length}` }
    return { kind: code === SSL_REQUEST_CODE ? 'ssl-request' : 'gssenc-request' }
  }
  if (code === CANCEL_REQUEST_CODE) {
    if (length !== CANCEL_REQUEST_LENGTH)
      return { kind: 'invalid', reason: `cancel request of length ${length}` }
    if (b.length < length) return { kind: 'partial' }
    return { kind: 'cancel', packet: Buffer.from(b.subarray(0, length)) }
  }
  if (code >>> 16 !== 3)
    return { kind: 'invalid', reason: `unsupported protocol ${code >>> 16}.${code & 0xffff}` }
  if (b.length < length) return { kind: 'partial' }
  return { kind: 'startup', packet: Buffer.from(b.subarray(0, length)) }
}

/** The name/value pairs of a protocol 3 startup packet, or null when they are malformed. */
export function startupParameters(packet: Buffer): [string, string][] | null {
  const out: [string, string][] = []
  let i = 8
  for (;;) {
    if (i >= packet.length) return null
    if (packet[i] === 0) return i === packet.length - 1 ? out : null
    const nameEnd = packet.indexOf(0, i)
    if (nameEnd < 0) return null
    const valueEnd = packet.indexOf(0, nameEnd + 1)
    if (valueEnd < 0) return null
    out.push([packet.toString('utf8', i, nameEnd), packet.toString('utf8', nameEnd + 1, valueEnd)])
    i = valueEnd + 1
  }
}

export function startupPacket(params: readonly (readonly [string, string])[], version = PROTOCOL_3): Buffer {
  const body = Buffer.concat(params.flatMap(([k, v]) => [Buffer.from(`${k}\0${v}\0`, 'utf8')]))
  const b = Buffer.alloc(8 + body.length + 1)
  b.writeUInt32BE(b.length, 0)
  b.writeUInt32BE(version, 4)
  body.copy(b, 8)
  return b
}

/** PostgreSQL keeps NAMEDATALEN - 1 bytes of application_name */
const APPLICATION_NAME_MAX = 63

/**
 * The startup packet with ` - host:port` appended to application_name (PgBouncer's
 * application_name_add_host); the client's part is shortened so the address always fits. A
 * malformed packet is returned as it is: the server will refuse it.
 */
export function withClientAddress(packet: Buffer, host: string, port: number): Buffer {
  const params = startupParameters(packet)
  if (params === null) return packet
  const suffix = `${host}:${port}`
  const i = params.findIndex(([k]) => k === 'application_name')
  const app = i >= 0 ? params[i]![1] : ''
  const room = APPLICATION_NAME_MAX - Buffer.byteLength(suffix) - 3
  let head = app
  while (Buffer.byteLength(head) > Math.max(room, 0)) head = head.slice(0, -1)
  const value = head === '' ? suffix : `${head} - ${suffix}`
  if (i >= 0) params[i] = ['application_name', value]
  else params.push(['application_name', value])
  return startupPacket(params, packet.readUInt32BE(4))
}

/** An ErrorResponse as psql shows it: `FATAL:  <message>`, with SQLSTATE `code`. */
export function errorResponse(code: string, message: string, severity = 'FATAL'): Buffer {
  const fields = Buffer.from(`S${severity}\0V${severity}\0C${code}\0M${message}\0\0`, 'utf8')
  const b = Buffer.alloc(5 + fields.length)
  b[0] = 0x45
  b.writeUInt32BE(4 + fields.length, 1)
  fields.copy(b, 5)
  return b
}

/** The refusals the proxy answers in PostgreSQL's words, with their SQLSTATE. */
export const REFUSAL = {
  /** listener and queue full: too_many_connections */
  full: '53300',
  /** no backend within the queue timeout: cannot_connect_now (drivers retry it) */
  noBackend: '57P03',
  /** a plain client at a TLS-only listener: invalid_authorization_specification, as pg_hba's hostssl */
  tlsRequired: '28000',
  /** a startup packet too long or malformed: protocol_violation */
  protocol: '08P01',
} as const
