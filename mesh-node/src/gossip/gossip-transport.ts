import { createHash } from 'node:crypto'
import { gossipsub } from '@chainsafe/libp2p-gossipsub'
import { noise } from '@chainsafe/libp2p-noise'
import { yamux } from '@chainsafe/libp2p-yamux'
import { identify } from '@libp2p/identify'
import { type Message, type PrivateKey, TopicValidatorResult } from '@libp2p/interface'
import { preSharedKey } from '@libp2p/pnet'
import { tcp } from '@libp2p/tcp'
import { type Multiaddr, multiaddr } from '@multiformats/multiaddr'
import type { HostPort } from '@pgmesh/protocol'
import { createLibp2p, type Libp2p } from 'libp2p'
import { DirectChannel } from './direct-channel.js'
import { lazyWindowUpdates } from './lazy-window-updates.js'
import { hostPortToMultiaddr } from './seed-addresses.js'
import type { MeshTransport } from './transport.js'

export interface GossipTransportOptions {
  readonly privateKey: PrivateKey
  readonly listen: HostPort
  readonly advertise?: HostPort
  /** libp2p private-network key; undefined only in insecure dev mode */
  readonly psk?: Uint8Array
  readonly topic: string
  readonly maxMessageBytes: number
  readonly meshHeartbeatMs: number
  readonly meshDegree: number
  readonly maxPeers: number
  /** libp2p protocol id of the direct frame channel (election traffic) */
  readonly directProtocol: string
  readonly maxDirectFrameBytes: number
}

/** What the transport tells its owner; the owner decides what a message means. */
export interface GossipTransportEvents {
  /**
   * Validates one message before gossipsub delivers or forwards it. Return true to accept; on
   * false the message is neither delivered nor forwarded, and the sender's score drops.
   * `from` is the signing originator (not the relaying neighbour).
   */
  validate(data: Uint8Array, from: string): boolean
  /** an accepted message */
  message(data: Uint8Array, from: string): void
  peerConnected(peerId: string): void
  peerDisconnected(peerId: string): void
  /** a peer subscribed to our topic: a good moment to send it our state */
  peerSubscribed(peerId: string): void
  /** a frame on the direct channel, from a connected (authenticated) peer */
  directFrame(peerId: string, data: Uint8Array): void
  directError(peerId: string, reason: string): void
  /** the connection's muxer could not be tuned (window updates are sent as yamux sends them) */
  muxerUntuned?(): void
}

/**
 * The libp2p node: TCP + noise + yamux + identify, gossipsub on one topic, an optional
 * private-network key. It knows nothing of pgmesh messages.
 */
export class GossipTransport implements MeshTransport {
  #node: Libp2p<{ pubsub: ReturnType<ReturnType<typeof gossipsub>> }> | null = null
  readonly #dialing = new Set<string>()
  /** peers with at least one open connection, kept from connect/disconnect events (getPeers() allocates) */
  readonly #connected = new Map<string, number>()
  readonly #direct: DirectChannel

  constructor(
    private readonly opts: GossipTransportOptions,
    private readonly events: GossipTransportEvents,
  ) {
    this.#direct = new DirectChannel(
      { protocol: opts.directProtocol, maxFrameBytes: opts.maxDirectFrameBytes, maxQueuedFrames: 64 },
      { frame: (p, d) => events.directFrame(p, d), streamError: (p, r) => events.directError(p, r) },
    )
  }

  get peerId(): string {
    return this.#required().peerId.toString()
  }

  async start(): Promise<void> {
    const o = this.opts
    const listen = hostPortToMultiaddr(o.listen).toString()
    const node = await createLibp2p({
      privateKey: o.privateKey,
      addresses: {
        listen: [listen],
        announce: o.advertise === undefined ? [] : [hostPortToMultiaddr(o.advertise).toString()],
      },
      transports: [tcp()],
      connectionEncrypters: [noise()],
      streamMuxers: [lazyWindowUpdates(yamux(), { onUnwrapped: () => this.events.muxerUntuned?.() })],
      ...(o.psk === undefined ? {} : { connectionProtector: preSharedKey({ psk: o.psk }) }),
      connectionGater: {
        // libp2p 2.x does not check that the peer answering a /p2p/<id> address is that peer
        denyOutboundEncryptedConnection: (peer, maConn) => {
          const want = maConn.remoteAddr.getPeerId()
          return want != null && want !== peer.toString()
        },
        // loopback is a legitimate place for peers (tests, single-host labs)
        denyDialMultiaddr: () => false,
      },
      connectionManager: {
        maxConnections: Math.max(o.maxPeers * 2, 16),
        // many members may share one address (NAT, a lab on one host) and all start at once
        inboundConnectionThreshold: Math.max(o.maxPeers * 2, 16),
        maxIncomingPendingConnections: Math.max(o.maxPeers, 16),
        // all three must be set: libp2p 2.10 computes NaN delays otherwise
        reconnectRetries: 20,
        reconnectRetryInterval: 500,
        reconnectBackoffFactor: 1.5,
      },
      // liveness comes from gossip heartbeats; pings only reap dead connections so seeds get redialled
      connectionMonitor: { pingInterval: 5000, pingTimeout: { minTimeout: 5000, maxTimeout: 5000 } },
      services: {
        identify: identify(),
        pubsub: gossipsub({
          allowPublishToZeroTopicPeers: true,
          emitSelf: false,
          // A node publishes straight to every peer on the topic, and the mesh only forwards as a
          // fallback for peers it is not connected to. Each forwarded copy costs about as much CPU
          // as a delivery, so a small mesh degree keeps the cost of a heartbeat close to N-1 sends.
          floodPublish: true,
          D: o.meshDegree,
          Dlo: Math.max(1, o.meshDegree - 1),
          Dhi: o.meshDegree * 2,
          // gossipsub's rules: Dout < Dlo and Dout ≤ D/2
          Dout: Math.min(Math.floor(o.meshDegree / 2), Math.max(1, o.meshDegree - 1) - 1),
          Dlazy: o.meshDegree,
          heartbeatInterval: o.meshHeartbeatMs,
          // gossipsub's Sybil defence scores down peers beyond 10 on one IP address, quadratically:
          // from about 15 it graylists them all and the mesh goes silent. A pgmesh mesh is closed
          // by the cluster secret, and members legitimately share an address (NAT, one lab host).
          scoreParams: { IPColocationFactorWeight: 0 },
          maxInboundDataLength: o.maxMessageBytes + 4096,
          // IDONTWANT (gossipsub 1.2) asks mesh peers not to forward a large message once it has
          // arrived. Publishers flood every peer directly, so the forwarded copy is already on its
          // way when the IDONTWANT goes: it only adds a frame per message and mesh peer.
          idontwantMinDataSize: o.maxMessageBytes + 4096 + 1,
          // Without a fast id, gossipsub verifies the signature of every duplicate copy before it
          // finds out it has seen the message: with a full mesh that is most of a node's CPU.
          // Only validated messages enter the fast-id cache, so a forged copy cannot poison it.
          fastMsgIdFn: fastMessageId,
        }),
      },
    })
    this.#node = node
    const pubsub = node.services.pubsub
    pubsub.topicValidators.set(o.topic, (_peer, msg: Message) => {
      if (msg.type !== 'signed') return TopicValidatorResult.Reject
      return this.events.validate(msg.data, msg.from.toString())
        ? TopicValidatorResult.Accept
        : TopicValidatorResult.Reject
    })
    pubsub.addEventListener('message', (e) => {
      const msg = e.detail
      if (msg.topic === o.topic && msg.type === 'signed') this.events.message(msg.data, msg.from.toString())
    })
    pubsub.addEventListener('subscription-change', (e) => {
      if (e.detail.subscriptions.some((s) => s.topic === o.topic && s.subscribe)) {
        this.events.peerSubscribed(e.detail.peerId.toString())
      }
    })
    node.addEventListener('peer:connect', (e) => {
      const peer = e.detail.toString()
      this.#connected.set(peer, performance.now())
      this.events.peerConnected(peer)
    })
    node.addEventListener('peer:disconnect', (e) => {
      const peer = e.detail.toString()
      this.#connected.delete(peer)
      this.#direct.closePeer(peer)
      this.events.peerDisconnected(peer)
    })
    pubsub.subscribe(o.topic)
    await this.#direct.start(node)
  }

  async stop(): Promise<void> {
    const node = this.#node
    this.#node = null
    this.#connected.clear()
    await this.#direct.stop()
    if (node !== null) await node.stop()
  }

  /** Sends a frame to a connected peer over the direct channel; false when dropped. */
  sendDirect(peerId: string, data: Uint8Array): boolean {
    return this.#direct.send(peerId, data)
  }

  get started(): boolean {
    return this.#node !== null
  }

  /** Multiaddrs (with /p2p/) peers can dial us at. */
  addresses(): string[] {
    return this.#required()
      .getMultiaddrs()
      .map((a) => a.toString())
  }

  connectedPeers(): string[] {
    return [...this.#connected.keys()]
  }

  /** Connected peers whose subscription to our topic we have seen: the ones gossip flows with. */
  topicPeers(): number {
    return this.#node === null ? 0 : this.#node.services.pubsub.getSubscribers(this.opts.topic).length
  }

  /**
   * gossipsub opens its outbound stream once per connection and never retries: when that fails
   * (a busy peer, a slow handshake) the connection stays up but no gossip crosses it. A peer
   * connected for `graceMs` whose subscription never reached us is hung up, so the join loop or
   * discovery dials it again with fresh streams. Returns the peers hung up.
   */
  async hangUpSilentPeers(graceMs: number): Promise<string[]> {
    const node = this.#node
    if (node === null) return []
    const now = performance.now()
    const subscribed = new Set(node.services.pubsub.getSubscribers(this.opts.topic).map((p) => p.toString()))
    const silent = [...this.#connected].filter(([p, since]) => !subscribed.has(p) && now - since >= graceMs)
    await Promise.all(
      silent.map(async ([p]) => {
        const conn = node.getConnections().find((c) => c.remotePeer.toString() === p)
        this.#connected.set(p, now)
        if (conn !== undefined) await node.hangUp(conn.remotePeer).catch(() => undefined)
      }),
    )
    return silent.map(([p]) => p)
  }

  /** Closes every connection to a peer (one that stopped answering); a later dial starts afresh. */
  async hangUp(peerId: string): Promise<void> {
    const node = this.#node
    const conn = node?.getConnections().find((c) => c.remotePeer.toString() === peerId)
    if (node === null || conn === undefined) return
    await node.hangUp(conn.remotePeer).catch(() => undefined)
  }

  isConnected(peerId: string): boolean {
    return this.#connected.has(peerId)
  }

  /** Publishes to the topic; returns how many peers it was sent to. */
  async publish(data: Uint8Array): Promise<number> {
    const r = await this.#required().services.pubsub.publish(this.opts.topic, data)
    return r.recipients.length
  }

  /** Dials a seed by plain host:port; resolves with the peer id that answered. */
  async dialSeed(seed: HostPort, signal: AbortSignal): Promise<string> {
    const conn = await this.#required().dial(hostPortToMultiaddr(seed), { signal })
    return conn.remotePeer.toString()
  }

  /**
   * Dials a peer learnt from gossip, at most one attempt in flight per peer, and only while
   * below `maxPeers` connections.
   */
  dialDiscovered(peerId: string, addrs: readonly string[], signal: AbortSignal): void {
    const node = this.#node
    if (node === null || this.#dialing.has(peerId) || this.isConnected(peerId)) return
    if (this.#connected.size >= this.opts.maxPeers) return
    const targets: Multiaddr[] = []
    for (const a of addrs) {
      try {
        const ma = multiaddr(a)
        if (ma.getPeerId() === peerId) targets.push(ma)
      } catch {
        // an unparsable address in a valid message: skip it
      }
    }
    if (targets.length === 0) return
    this.#dialing.add(peerId)
    node
      .dial(targets, { signal })
      .catch(() => undefined)
      .finally(() => this.#dialing.delete(peerId))
  }

  #required() {
    if (this.#node === null) throw new Error('gossip transport is not started')
    return this.#node
  }
}

/** Content hash of a signed RPC message: signatures are deterministic over from, seqno, topic and data. */
function fastMessageId(m: { signature?: Uint8Array; data?: Uint8Array; seqno?: Uint8Array }): string {
  const h = createHash('sha256')
  if (m.signature !== undefined) h.update(m.signature)
  if (m.seqno !== undefined) h.update(m.seqno)
  if (m.data !== undefined) h.update(m.data)
  return h.digest('base64')
}
