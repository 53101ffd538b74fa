import { type Multiaddr, multiaddr } from '@multiformats/multiaddr'
import type { HostPort } from '@pgmesh/protocol'
import { isIPv4, isIPv6 } from '@pgmesh/protocol'

/** `host:port` → a TCP multiaddr (dns4 for names, resolved by libp2p when dialled). */
export function hostPortToMultiaddr(a: HostPort): Multiaddr {
  const proto = isIPv4(a.host) ? 'ip4' : isIPv6(a.host) ? 'ip6' : 'dns4'
  return multiaddr(`/${proto}/${a.host}/tcp/${a.port}`)
}
