import type { Heartbeat } from '@pgmesh/protocol'
import type { HeartbeatContributor, HeartbeatFields } from '../core/contracts.js'
import type { MembershipState } from './membership.js'

/** The most members one digest lists (the heartbeat schema's bound). */
const MAX_ENTRIES = 64
/** addresses per member in a digest */
const MAX_ADDRS = 4

/**
 * Push-pull for joiners (memberlist's state exchange, in gossip's terms): the next heartbeat lists
 * the members this node hears from and where they listen, after a new connection and whenever a
 * member came alive since the last heartbeat. A joiner that reached any one member thus dials the
 * whole mesh at once, and a seed that dies right after answering strands nobody.
 *
 * The second trigger matters when nodes join a seed at the same moment: each connects before the
 * seed has heard the other, so the digest sent for the connection is empty, and until gossipsub's
 * next mesh heartbeat the seed does not relay one joiner's heartbeats to the other.
 */
export class MemberDigest implements HeartbeatContributor {
  #wanted = false
  /** the alive members (with addresses) at the previous heartbeat */
  #lastAlive = new Set<string>()

  constructor(
    private readonly self: string,
    private readonly membership: () => MembershipState,
  ) {}

  /** A peer connected: it gets the digest with the next heartbeat. */
  peerConnected(): void {
    this.#wanted = true
  }

  heartbeatFields(): HeartbeatFields {
    const alive = new Set<string>()
    const peers: NonNullable<Heartbeat['peers']> = []
    let joined = false
    for (const rec of this.membership().members.values()) {
      if (rec.state !== 'alive' || rec.id === this.self || rec.addrs.length === 0) continue
      alive.add(rec.id)
      if (!this.#lastAlive.has(rec.id)) joined = true
      if (peers.length < MAX_ENTRIES)
        peers.push({ node: rec.id, peerId: rec.peerId, addrs: rec.addrs.slice(0, MAX_ADDRS) })
    }
    this.#lastAlive = alive
    if (!this.#wanted && !joined) return {}
    this.#wanted = false
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
