/**
 * IP addresses and CIDR prefixes as numbers, for the listener policy (allow/deny lists, trusted
 * PROXY sources) and its validation. IPv4-mapped IPv6 addresses (`::ffff:1.2.3.4`, what a
 * dual-stack socket reports for an IPv4 client) count as the IPv4 address they carry.
 */

export interface IpAddress {
  readonly family: 4 | 6
  /** big-endian 32-bit words: one for IPv4, four for IPv6 */
  readonly words: readonly number[]
}

export interface Cidr extends IpAddress {
  /** prefix length: 0-32 (IPv4) or 0-128 (IPv6); the address bits past it are zero */
  readonly bits: number
}

const HEXTET = /^[0-9a-fA-F]{1,4}$/

/** Dotted quad, no leading zeros (so the text is canonical); by char codes: it runs at every accept. */
function parseV4(s: string): number | null {
  if (s.length < 7 || s.length > 15) return null
  let n = 0
  let octet = 0
  let digits = 0
  let dots = 0
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i)
    if (c === 46) {
      if (digits === 0 || dots === 3) return null
      n = n * 256 + octet
      octet = 0
      digits = 0
      dots++
    } else if (c >= 48 && c <= 57) {
      if (digits > 0 && octet === 0) return null
      octet = octet * 10 + (c - 48)
      if (octet > 255) return null
      digits++
    } else return null
  }
  if (digits === 0 || dots !== 3) return null
  return n * 256 + octet
}

function parseV6(s: string): number[] | null {
  if (s.length < 2 || s.length > 45) return null
  const halves = s.split('::')
  if (halves.length > 2) return null
  const groups = (h: string): number[] | null => {
    if (h === '') return []
    const out: number[] = []
    const parts = h.split(':')
    for (let i = 0; i < parts.length; i++) {
      const p = parts[i]!
      if (i === parts.length - 1 && p.includes('.')) {
        const v4 = parseV4(p)
        if (v4 === null) return null
        out.push(v4 >>> 16, v4 & 0xffff)
      } else if (HEXTET.test(p)) out.push(Number.parseInt(p, 16))
      else return null
    }
    return out
  }
  const head = groups(halves[0]!)
  const tail = halves.length === 2 ? groups(halves[1]!) : []
  if (head === null || tail === null) return null
  let all: number[]
  if (halves.length === 2) {
    const fill = 8 - head.length - tail.length
    if (fill < 1) return null
    all = [...head, ...new Array<number>(fill).fill(0), ...tail]
  } else all = head
  if (all.length !== 8) return null
  return [0, 1, 2, 3].map((i) => ((all[2 * i]! << 16) | all[2 * i + 1]!) >>> 0)
}

/** Parses an IPv4 or IPv6 address (no zone id); null when it is neither. */
export function parseIp(s: string): IpAddress | null {
  if (!s.includes(':')) {
    const v4 = parseV4(s)
    return v4 === null ? null : { family: 4, words: [v4] }
  }
  const w = parseV6(s)
  if (w === null) return null
  if (w[0] === 0 && w[1] === 0 && w[2] === 0xffff) return { family: 4, words: [w[3]!] }
  return { family: 6, words: w }
}

/** Parses `addr/bits` or a bare address (a host prefix); the host bits must be zero. */
export function parseCidr(s: string): Cidr | { error: string } {
  const slash = s.indexOf('/')
  const addrText = slash < 0 ? s : s.slice(0, slash)
  const ip = parseIp(addrText)
  if (ip === null) return { error: `'${addrText}' is not an IPv4 or IPv6 address` }
  const max = ip.family === 4 ? 32 : 128
  // an IPv4-mapped prefix ::ffff:a.b.c.d/n counts as a.b.c.d/(n-96)
  const mapped = ip.family === 4 && addrText.includes(':')
  let bits = max
  if (slash >= 0) {
    const b = s.slice(slash + 1)
    if (!/^\d{1,3}$/.test(b)) return { error: `'${b}' is not a prefix length` }
    bits = Number(b) - (mapped ? 96 : 0)
    if (bits < 0 || bits > max) return { error: `prefix length must be 0-${mapped ? 128 : max}` }
  }
  for (let i = 0; i < ip.words.length; i++) {
    const keep = Math.max(0, Math.min(32, bits - 32 * i))
    const mask = keep === 0 ? 0 : (0xffffffff << (32 - keep)) >>> 0
    if ((ip.words[i]! & ~mask) >>> 0 !== 0) {
      return { error: `'${s}' has bits set past the /${bits} prefix` }
    }
  }
  return { ...ip, bits }
}

/** Canonical text: dotted IPv4, RFC 5952 IPv6 (lower case, longest zero run as `::`). */
export function formatIp(ip: IpAddress): string {
  if (ip.family === 4) {
    const n = ip.words[0]!
    return `${n >>> 24}.${(n >>> 16) & 255}.${(n >>> 8) & 255}.${n & 255}`
  }
  const g: number[] = []
  for (const w of ip.words) g.push(w >>> 16, w & 0xffff)
  let best = -1
  let bestLen = 1
  for (let i = 0; i < 8; ) {
    if (g[i] !== 0) {
      i++
      continue
    }
    let j = i
    while (j < 8 && g[j] === 0) j++
    if (j - i > bestLen) {
      best = i
      bestLen = j - i
    }
    i = j
  }
  const hex = (a: number[]) => a.map((x) => x.toString(16)).join(':')
  if (best < 0) return hex(g)
  return `${hex(g.slice(0, best))}::${hex(g.slice(best + bestLen))}`
}

/** The canonical text of an address a socket reports, or null when it is not an IP address. */
export function canonicalIp(s: string): string | null {
  const ip = parseIp(s)
  return ip === null ? null : formatIp(ip)
}
