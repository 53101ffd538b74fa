import { z } from 'zod'
import { err, ok, pgmeshError, type Result } from './errors.js'

export interface HostPort {
  readonly host: string
  readonly port: number
}

const HOSTNAME =
  /^(?=.{1,253}$)[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$/
const IPV4 = /^(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(\.(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3}$/
const IPV6 = /^[0-9A-Fa-f:.]{2,45}$/

export function isIPv4(host: string): boolean {
  return IPV4.test(host)
}

export function isIPv6(host: string): boolean {
  return host.includes(':') && IPV6.test(host)
}

/**
 * Parses `host:port`, `[v6]:port`. Port 0 is allowed only when `allowZero` (bind to any free port).
 */
export function parseHostPort(input: string, allowZero = false): Result<HostPort> {
  const bad = (why: string) =>
    err(pgmeshError('ADDRESS_INVALID', `'${input}' is not a host:port address: ${why}`))
  const m = /^\[([^\]]+)\]:(\d{1,5})$/.exec(input) ?? /^([^:[\]]+):(\d{1,5})$/.exec(input)
  if (m === null) return bad('expected HOST:PORT or [IPv6]:PORT')
  const host = m[1]!
  const port = Number(m[2])
  if (!(port <= 65535 && (port >= 1 || (allowZero && port === 0)))) return bad(`port must be 1-65535`)
  const bracketed = input.startsWith('[')
  if (bracketed ? !isIPv6(host) : !(IPV4.test(host) || HOSTNAME.test(host)))
    return bad(`invalid host '${host}'`)
  return ok({ host, port })
}

export function formatHostPort(a: HostPort): string {
  return isIPv6(a.host) ? `[${a.host}]:${a.port}` : `${a.host}:${a.port}`
}

function hostPortSchema(allowZero: boolean) {
  return z.string().transform((s, ctx): HostPort => {
    const r = parseHostPort(s, allowZero)
    if (!r.ok) {
      ctx.addIssue({ code: 'custom', message: r.error.message })
      return z.NEVER
    }
    return r.value
  })
}

/** A listen address: port 0 means "any free port". */
export const ListenAddressSchema = hostPortSchema(true)
/** An address to dial or advertise. */
export const DialAddressSchema = hostPortSchema(false)
