import type { Heartbeat } from '@pgmesh/protocol'
import type { HeartbeatContributor, HeartbeatFields } from '../core/contracts.js'
import type { MembershipState } from './membership.js'

/** The most members one digest lists (the heartbeat schema's bound). */
const MAX_ENTRIES = 64
/** addresses per member in a digest */
const MAX_ADDRS = 4

/**
 * Push-pull for joiners (memberlist's state exchange, in gossip's terms): after a new connection,
 * the next heartbeat lists the members this node hears from and where they listen. A joiner that
 * reached any one member thus dials the whole mesh at once, and a seed that dies right after
 * answering strands nobody.
 */
export class MemberDigest implements HeartbeatContributor {
  #wanted = false

  constructor(
    private readonly self: string,
    private readonly membership: () => MembershipState,
  ) {}

  /** A peer connected: it gets the digest with the next heartbeat. */
  peerConnected(): void {
    this.#wanted = true
  }

  heartbeatFields(): HeartbeatFields {
    if (!this.#wanted) return {}
    this.#wanted = false
    const peers: NonNullable<Heartbeat['peers']> = []
    for (const rec of this.membership().members.values()) {
      if (rec.state !== 'alive' || rec.id === this.self || rec.addrs.length === 0) continue
      peers.push({ node: rec.id, peerId: rec.peerId, addrs: rec.addrs.slice(0, MAX_ADDRS) })
      if (peers.length === MAX_ENTRIES) break
    }
    return peers.length === 0 ? {} : { peers }
  }
}

/**
 * The digest entries worth dialling: members this node does not know yet (a known member is
 * redialled at the addresses its own heartbeats give), never itself.
 */
export function unknownPeers(
  digest: NonNullable<Heartbeat['peers']>,
  self: string,
  membership: MembershipState,
): NonNullable<Heartbeat['peers']> {
  return digest.filter((p) => p.node !== self && !membership.members.has(p.node))
}
