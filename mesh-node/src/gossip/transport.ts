import type { HostPort } from '@pgmesh/protocol'
import type { GossipTransportEvents, GossipTransportOptions } from './gossip-transport.js'

/**
 * What a node needs of its network: one gossip topic, a direct frame channel to connected peers,
 * and dialling. GossipTransport (libp2p) is the real one; testing/memory-transport.ts is its
 * in-memory twin, so whole nodes run in one process.
 */
export interface MeshTransport {
  readonly started: boolean
  /** this node's peer id; throws before start */
  readonly peerId: string
  start(): Promise<void>
  stop(): Promise<void>
  /** addresses (with /p2p/) peers can dial us at */
  addresses(): string[]
  connectedPeers(): string[]
  /** connected peers whose subscription to our topic we have seen */
  topicPeers(): number
  isConnected(peerId: string): boolean
  /** publishes to the topic; resolves with the number of peers it was sent to */
  publish(data: Uint8Array): Promise<number>
  /** a frame to one connected peer; false when dropped */
  sendDirect(peerId: string, data: Uint8Array): boolean
  /** dials a seed by plain host:port; resolves with the peer id that answered */
  dialSeed(seed: HostPort, signal: AbortSignal): Promise<string>
  /** dials a peer learnt from gossip (at most one attempt in flight per peer) */
  dialDiscovered(peerId: string, addrs: readonly string[], signal: AbortSignal): void
  hangUp(peerId: string): Promise<void>
  /** hangs up peers connected for `graceMs` whose gossip never started; returns them */
  hangUpSilentPeers(graceMs: number): Promise<string[]>
}

/** Builds a node's transport; the composition root passes the libp2p one unless told otherwise. */
export type TransportFactory = (
  options: GossipTransportOptions,
  events: GossipTransportEvents,
) => MeshTransport
