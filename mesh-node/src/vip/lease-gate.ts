/**
 * "May this node serve a new connection on the VIP now?", answered from the lease alone on the
 * monotonic clock. After a pause (SIGSTOP, a stalled event loop) Node may run pending accepts
 * before the timer that would release the VIP: the gate is what keeps those connections out, as
 * the election's safety argument assumes (see test/sim/cluster-sim.ts).
 */
export interface LeaseGate {
  /** the election's lease: until when (monotonic) this node may serve on the VIP; null: no lease */
  lease(until: number | null): void
  /** the VIP addresses (a dual-stack pair: two); a connection to any other address is not gated */
  setAddresses(ips: readonly string[]): void
  /** true unless `localAddress` is a VIP and the lease is not running now */
  mayServe(localAddress: string | undefined): boolean
  /** connections refused since start */
  readonly refused: number
}

/** `::ffff:198.18.0.100` (a dual-stack socket) is 198.18.0.100; `fd00:0::1` is `fd00::1`. */
function normalize(ip: string): string {
  const v4 = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(ip)
  if (v4 !== null) return v4[1]!
  if (!ip.includes(':')) return ip
  try {
    return new URL(`http://[${ip}]/`).hostname.slice(1, -1)
  } catch {
    return ip.toLowerCase()
  }
}

export function createLeaseGate(opts: {
  readonly mono: () => number
  readonly addresses?: readonly string[]
}): LeaseGate {
  let until: number | null = null
  let vips = new Set((opts.addresses ?? []).map(normalize))
  let refused = 0
  return {
    lease(u) {
      until = u
    },
    setAddresses(ips) {
      vips = new Set(ips.map(normalize))
    },
    mayServe(localAddress) {
      if (localAddress === undefined || !vips.has(normalize(localAddress))) return true
      if (until !== null && until > opts.mono()) return true
      refused++
      return false
    },
    get refused() {
      return refused
    },
  }
}
