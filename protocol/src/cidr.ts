import { z } from 'zod'
import { isIPv4, isIPv6 } from './address.js'

/** An address as a number of `bits` bits (32 for IPv4, 128 for IPv6). */
export interface IpValue {
  readonly bits: 32 | 128
  readonly value: bigint
}

function parseV4(s: string): bigint | null {
  if (!isIPv4(s)) return null
  return s.split('.').reduce((acc, part) => (acc << 8n) | BigInt(Number(part)), 0n)
}

function parseV6(s: string): bigint | null {
  if (!isIPv6(s)) return null
  let text = s
  // a trailing dotted quad (::ffff:192.0.2.1) is the last 32 bits
  let tail: bigint | null = null
  const lastColon = text.lastIndexOf(':')
  if (text.slice(lastColon + 1).includes('.')) {
    tail = parseV4(text.slice(lastColon + 1))
    if (tail === null) return null
    text = `${text.slice(0, lastColon + 1)}0:0`
  }
  const halves = text.split('::')
  if (halves.length > 2) return null
  const groups = (h: string) => (h === '' ? [] : h.split(':'))
  const head = groups(halves[0]!)
  const rest = halves.length === 2 ? groups(halves[1]!) : []
  const missing = 8 - head.length - rest.length
  if (halves.length === 2 ? missing < 1 : missing !== 0) return null
  const all = [...head, ...Array<string>(halves.length === 2 ? missing : 0).fill('0'), ...rest]
  let v = 0n
  for (const g of all) {
    if (!/^[0-9A-Fa-f]{1,4}$/.test(g)) return null
    v = (v << 16n) | BigInt(Number.parseInt(g, 16))
  }
  if (tail !== null) v = (v & ~0xffffffffn) | tail
  return v
}

/** An IP literal as a number, or null when `s` is not one (a hostname, say). */
export function parseIp(s: string): IpValue | null {
  const bare = s.startsWith('[') && s.endsWith(']') ? s.slice(1, -1) : s
  const v4 = parseV4(bare)
  if (v4 !== null) return { bits: 32, value: v4 }
  const v6 = parseV6(bare)
  return v6 === null ? null : { bits: 128, value: v6 }
}

export interface Cidr {
  readonly text: string
  readonly bits: 32 | 128
  readonly network: bigint
  readonly prefix: number
}

export function parseCidr(s: string): Cidr | null {
  const m = /^([^/]+)\/(\d{1,3})$/.exec(s)
  if (m === null) return null
  const ip = parseIp(m[1]!)
  const prefix = Number(m[2])
  if (ip === null || prefix > ip.bits) return null
  const mask = prefixMask(ip.bits, prefix)
  return { text: s, bits: ip.bits, network: ip.value & mask, prefix }
}

function prefixMask(bits: 32 | 128, prefix: number): bigint {
  const all = (1n << BigInt(bits)) - 1n
  return prefix === 0 ? 0n : (all >> BigInt(bits - prefix)) << BigInt(bits - prefix)
}

export function cidrContains(c: Cidr, ip: IpValue): boolean {
  return c.bits === ip.bits && (ip.value & prefixMask(c.bits, c.prefix)) === c.network
}

/** `10.0.0.0/8`, `fd00::/8`: a network in CIDR notation. */
export const CidrSchema = z.string().refine((s) => parseCidr(s) !== null, {
  message: 'must be a network in CIDR notation, like 10.0.0.0/8 or fd00::/8',
})

export function isIpLiteral(host: string): boolean {
  return isIPv4(host) || parseIp(host) !== null
}
