/**
 * The PROXY protocol (versions 1 and 2, as HAProxy specifies them), pure: an incremental decoder
 * for what an upstream load balancer sends first, and encoders for what pgmesh sends a backend.
 * Only TCP over IPv4/IPv6 carries an address; LOCAL (v2) and UNKNOWN (v1) headers carry none, and
 * the connection's own addresses stand.
 */
import { formatIp, type IpAddress, parseIp } from '@pgmesh/protocol'

export interface ProxyAddresses {
  readonly source: string
  readonly sourcePort: number
  readonly dest: string
  readonly destPort: number
}

export type ProxyDecode =
  /** the bytes so far are a prefix of a header: read more */
  | { readonly state: 'partial' }
  /** the stream does not start with a PROXY header */
  | { readonly state: 'absent' }
  | { readonly state: 'invalid'; readonly why: string }
  | {
      readonly state: 'header'
      readonly version: 1 | 2
      /** header bytes; what follows is the client's */
      readonly length: number
      /** null: LOCAL / UNKNOWN, no address carried */
      readonly addresses: ProxyAddresses | null
    }

const V1_PREFIX = Buffer.from('PROXY ', 'latin1')
const V1_MAX = 107
export const V2_SIGNATURE = Buffer.from([
  0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a,
])
/** A v2 header with its TLVs may be this long at most (HAProxy's own bound is smaller in practice). */
export const PROXY_V2_MAX = 4096

function prefixOf(b: Buffer, sig: Buffer): boolean {
  const n = Math.min(b.length, sig.length)
  return b.subarray(0, n).equals(sig.subarray(0, n))
}

/**
 * True when a client's first bytes start like a PROXY header (5 bytes at least, so a lone `P`
 * of some other protocol does not count): what an untrusted source must not send.
 */
export function looksLikeProxyHeader(b: Buffer): boolean {
  return b.length >= 5 && (prefixOf(b, V1_PREFIX) || prefixOf(b, V2_SIGNATURE))
}

export function decodeProxyHeader(b: Buffer): ProxyDecode {
  if (b.length === 0) return { state: 'partial' }
  if (prefixOf(b, V2_SIGNATURE)) return b.length < 16 ? { state: 'partial' } : decodeV2(b)
  if (prefixOf(b, V1_PREFIX)) return b.length < V1_PREFIX.length ? { state: 'partial' } : decodeV1(b)
  return { state: 'absent' }
}

const PORT = /^(0|[1-9]\d{0,4})$/

function decodeV1(b: Buffer): ProxyDecode {
  const end = b.indexOf('\r\n', 0, 'latin1')
  if (end < 0)
    return b.length >= V1_MAX
      ? { state: 'invalid', why: 'v1 header longer than 107 bytes' }
      : { state: 'partial' }
  if (end + 2 > V1_MAX) return { state: 'invalid', why: 'v1 header longer than 107 bytes' }
  const parts = b.toString('latin1', 0, end).split(' ')
  const length = end + 2
  if (parts[1] === 'UNKNOWN') return { state: 'header', version: 1, length, addresses: null }
  if (parts.length !== 6 || (parts[1] !== 'TCP4' && parts[1] !== 'TCP6')) {
    return { state: 'invalid', why: 'v1 header is not PROXY TCP4|TCP6 SRC DST SPORT DPORT' }
  }
  const family = parts[1] === 'TCP4' ? 4 : 6
  const src = parseIp(parts[2]!)
  const dst = parseIp(parts[3]!)
  // a TCP6 line may carry IPv4-mapped addresses, which parse as IPv4
  const rawFamily = (s: string) => (s.includes(':') ? 6 : 4)
  if (src === null || dst === null || rawFamily(parts[2]!) !== family || rawFamily(parts[3]!) !== family) {
    return { state: 'invalid', why: `v1 header addresses are not ${parts[1]} addresses` }
  }
  const ports = [parts[4]!, parts[5]!]
  if (!ports.every((p) => PORT.test(p) && Number(p) <= 65535))
    return { state: 'invalid', why: 'v1 header port out of range' }
  return {
    state: 'header',
    version: 1,
    length,
    addresses: {
      source: formatIp(src),
      sourcePort: Number(ports[0]),
      dest: formatIp(dst),
      destPort: Number(ports[1]),
    },
  }
}

function decodeV2(b: Buffer): ProxyDecode {
  const verCmd = b[12]!
  if (verCmd >> 4 !== 2) return { state: 'invalid', why: `v2 header with version ${verCmd >> 4}` }
  const cmd = verCmd & 0x0f
  if (cmd > 1) return { state: 'invalid', why: `v2 header with command ${cmd}` }
  const fam = b[13]!
  const len = b.readUInt16BE(14)
  const length = 16 + len
  if (length > PROXY_V2_MAX) return { state: 'invalid', why: `v2 header of ${length} bytes` }
  if (b.length < length) return { state: 'partial' }
  if (cmd === 0) return { state: 'header', version: 2, length, addresses: null }
  const body = b.subarray(16, length)
  const word = (o: number) => body.readUInt32BE(o)
  switch (fam) {
    case 0x11: // TCP over IPv4
      if (len < 12) return { state: 'invalid', why: 'v2 TCP4 header too short' }
      return {
        state: 'header',
        version: 2,
        length,
        addresses: {
          source: formatIp({ family: 4, words: [word(0)] }),
          dest: formatIp({ family: 4, words: [word(4)] }),
          sourcePort: body.readUInt16BE(8),
          destPort: body.readUInt16BE(10),
        },
      }
    case 0x21: {
      // TCP over IPv6
      if (len < 36) return { state: 'invalid', why: 'v2 TCP6 header too short' }
      const ip6 = (o: number): string => {
        const words = [word(o), word(o + 4), word(o + 8), word(o + 12)]
        const p = parseIp(formatIp({ family: 6, words }))
        return formatIp(p ?? { family: 6, words })
      }
      return {
        state: 'header',
        version: 2,
        length,
        addresses: {
          source: ip6(0),
          dest: ip6(16),
          sourcePort: body.readUInt16BE(32),
          destPort: body.readUInt16BE(34),
        },
      }
    }
    case 0x00:
      // UNSPEC: the receiver uses the connection's own addresses
      return { state: 'header', version: 2, length, addresses: null }
    default:
      return { state: 'invalid', why: `v2 header for a transport other than TCP (0x${fam.toString(16)})` }
  }
}

/** Both addresses in one family: an IPv4 one is written IPv4-mapped when the other is IPv6. */
function pair(a: ProxyAddresses): { family: 4 | 6; src: IpAddress; dst: IpAddress } | null {
  const src = parseIp(a.source)
  const dst = parseIp(a.dest)
  if (src === null || dst === null) return null
  if (src.family === dst.family) return { family: src.family, src, dst }
  const six = (ip: IpAddress): IpAddress =>
    ip.family === 6 ? ip : { family: 6, words: [0, 0, 0xffff, ip.words[0]!] }
  return { family: 6, src: six(src), dst: six(dst) }
}

function text6(ip: IpAddress): string {
  if (ip.family === 6) return formatIp(ip)
  return `::ffff:${formatIp(ip)}`
}

export function encodeProxyV1(a: ProxyAddresses | null): Buffer {
  const p = a === null ? null : pair(a)
  if (a === null || p === null) return Buffer.from('PROXY UNKNOWN\r\n', 'latin1')
  const s = p.family === 4 ? formatIp(p.src) : text6(p.src)
  const d = p.family === 4 ? formatIp(p.dst) : text6(p.dst)
  return Buffer.from(`PROXY TCP${p.family} ${s} ${d} ${a.sourcePort} ${a.destPort}\r\n`, 'latin1')
}

export function encodeProxyV2(a: ProxyAddresses | null): Buffer {
  const p = a === null ? null : pair(a)
  if (a === null || p === null) {
    const h = Buffer.alloc(16)
    V2_SIGNATURE.copy(h)
    h[12] = 0x20 // LOCAL
    return h
  }
  const addrLen = p.family === 4 ? 12 : 36
  const h = Buffer.alloc(16 + addrLen)
  V2_SIGNATURE.copy(h)
  h[12] = 0x21 // version 2, PROXY
  h[13] = p.family === 4 ? 0x11 : 0x21
  h.writeUInt16BE(addrLen, 14)
  const words = (ip: IpAddress) =>
    p.family === 4 ? ip.words : ip.words.length === 4 ? ip.words : [0, 0, 0xffff, ip.words[0]!]
  let o = 16
  for (const w of [...words(p.src), ...words(p.dst)]) {
    h.writeUInt32BE(w >>> 0, o)
    o += 4
  }
  h.writeUInt16BE(a.sourcePort, o)
  h.writeUInt16BE(a.destPort, o + 2)
  return h
}

export function encodeProxyHeader(version: 'v1' | 'v2', a: ProxyAddresses | null): Buffer {
  return version === 'v1' ? encodeProxyV1(a) : encodeProxyV2(a)
}
