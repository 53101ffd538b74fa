/** What a refused client is told: nothing (a RST) or, on PostgreSQL listeners, an ErrorResponse. */
import type { PolicyRefusal } from '@pgmesh/protocol'

/** SQLSTATE per refusal: access refusals as invalid_authorization_specification, limits as too_many_connections. */
const SQLSTATE: Record<PolicyRefusal, string> = {
  denied: '28000',
  notAllowed: '28000',
  proxyUntrusted: '28000',
  proxyMissing: '28000',
  proxyInvalid: '08P01',
  overConnections: '53300',
  overRate: '53300',
}

/** A PostgreSQL ErrorResponse (severity FATAL) a client library shows as the connection error. */
export function pgErrorResponse(reason: PolicyRefusal, message: string): Buffer {
  const field = (type: string, value: string) =>
    Buffer.concat([Buffer.from(type, 'latin1'), Buffer.from(value, 'utf8'), Buffer.from([0])])
  const body = Buffer.concat([
    field('S', 'FATAL'),
    field('V', 'FATAL'),
    field('C', SQLSTATE[reason]),
    field('M', message),
    Buffer.from([0]),
  ])
  const head = Buffer.alloc(5)
  head[0] = 0x45 // 'E'
  head.writeUInt32BE(4 + body.length, 1)
  return Buffer.concat([head, body])
}
