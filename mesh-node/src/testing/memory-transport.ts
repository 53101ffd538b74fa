import { formatHostPort, type HostPort } from '@pgmesh/protocol'
import type { GossipTransportEvents, GossipTransportOptions } from '../gossip/gossip-transport.js'
import type { MeshTransport, TransportFactory } from '../gossip/transport.js'

/**
 * An in-memory network for whole nodes in one process (memberlist's mock network): transports
 * register under their listen address, connections are symmetric, a published message reaches
 * every node connected to the publisher through any chain of connections (gossipsub's forwarding),
 * each receiver validating it first. Delivery is asynchronous (a macrotask), never re-entrant.
 * `partition()` cuts links without a disconnect event, as a real partition sends no RST.
 */
export class MemoryNetwork {
  readonly #byAddress = new Map<string, MemoryTransport>()
  readonly #byPeer = new Map<string, MemoryTransport>()
  /** pairs "a|b" (sorted) that drop everything */
  readonly #cut = new Set<string>()
  /** pairs of listen addresses (sorted) whose discovered dials fail, the link itself staying up */
  readonly #refusedDials = new Set<string>()
  #nextPeer = 1

  /** A factory for MeshNodeOptions.transport. */
  readonly factory: TransportFactory = (options, events) => new MemoryTransport(this, options, events)

  allocatePeerId(): string {
    return `mem-peer-${this.#nextPeer++}`
  }

  register(t: MemoryTransport, address: string): void {
    if (this.#byAddress.has(address)) throw new Error(`address in use: ${address}`)
    this.#byAddress.set(address, t)
    this.#byPeer.set(t.peerId, t)
  }

  unregister(t: MemoryTransport, address: string): void {
    if (this.#byAddress.get(address) === t) this.#byAddress.delete(address)
    if (this.#byPeer.get(t.peerId) === t) this.#byPeer.delete(t.peerId)
  }

  at(address: string): MemoryTransport | undefined {
    return this.#byAddress.get(address)
  }

  peer(peerId: string): MemoryTransport | undefined {
    return this.#byPeer.get(peerId)
  }

  /** Drops all traffic between a and b (by peer id) until `heal`. */
  partition(a: string, b: string): void {
    this.#cut.add(pairKey(a, b))
  }

  heal(): void {
    this.#cut.clear()
  }

  /** Discovered dials between the nodes listening at `a` and `b` fail until `allowDials` (a busy host). */
  refuseDials(a: string, b: string): void {
    this.#refusedDials.add(pairKey(a, b))
  }

  allowDials(): void {
    this.#refusedDials.clear()
  }

  dialRefused(a: string, b: string): boolean {
    return this.#refusedDials.has(pairKey(a, b))
  }

  linked(a: string, b: string): boolean {
    return !this.#cut.has(pairKey(a, b))
  }

  /** Every started transport reachable from `from` over connections and uncut links. */
  reachable(from: MemoryTransport): MemoryTransport[] {
    const seen = new Set<MemoryTransport>([from])
    const todo = [from]
    while (todo.length > 0) {
      const t = todo.pop()!
      for (const p of t.connectedPeers()) {
        const next = this.#byPeer.get(p)
        if (next === undefined || seen.has(next) || !this.linked(t.peerId, p)) continue
        seen.add(next)
        todo.push(next)
      }
    }
    seen.delete(from)
    return [...seen]
  }
}

const pairKey = (a: string, b: string) => (a < b ? `${a}|${b}` : `${b}|${a}`)
const later = (fn: () => void) => setImmediate(fn)

export class MemoryTransport implements MeshTransport {
  readonly #network: MemoryNetwork
  readonly #options: GossipTransportOptions
  readonly #events: GossipTransportEvents
  readonly #address: string
  readonly #peers = new Set<string>()
  #peerId: string | null = null

  constructor(network: MemoryNetwork, options: GossipTransportOptions, events: GossipTransportEvents) {
    this.#network = network
    this.#options = options
    this.#events = events
    this.#address = formatHostPort(options.listen)
  }

  get started(): boolean {
    return this.#peerId !== null
  }

  get peerId(): string {
    if (this.#peerId === null) throw new Error('memory transport is not started')
    return this.#peerId
  }

  async start(): Promise<void> {
    this.#peerId = this.#network.allocatePeerId()
    this.#network.register(this, this.#address)
  }

  async stop(): Promise<void> {
    if (this.#peerId === null) return
    for (const p of [...this.#peers]) this.#disconnect(p)
    this.#network.unregister(this, this.#address)
    this.#peerId = null
  }

  addresses(): string[] {
    return this.#peerId === null ? [] : [`/memory/${this.#address}/p2p/${this.#peerId}`]
  }

  connectedPeers(): string[] {
    return [...this.#peers]
  }

  topicPeers(): number {
    return this.#peers.size
  }

  isConnected(peerId: string): boolean {
    return this.#peers.has(peerId)
  }

  async publish(data: Uint8Array): Promise<number> {
    const from = this.peerId
    const targets = this.#network.reachable(this)
    const max = this.#options.maxMessageBytes
    later(() => {
      for (const t of targets) if (t.started && data.length <= max) t.#receive(data, from)
    })
    return targets.length
  }

  sendDirect(peerId: string, data: Uint8Array): boolean {
    const to = this.#network.peer(peerId)
    if (to === undefined || !this.#peers.has(peerId) || data.length > this.#options.maxDirectFrameBytes)
      return false
    const from = this.peerId
    if (!this.#network.linked(from, peerId)) return true // lost on the wire
    later(() => {
      if (to.started && to.#peers.has(from)) to.#events.directFrame(from, data)
    })
    return true
  }

  async dialSeed(seed: HostPort, signal: AbortSignal): Promise<string> {
    signal.throwIfAborted()
    const t = this.#network.at(formatHostPort(seed))
    if (t === undefined || !t.started) throw new Error(`connection refused: ${formatHostPort(seed)}`)
    if (!this.#network.linked(this.peerId, t.peerId)) throw new Error('dial timed out')
    this.#connect(t)
    return t.peerId
  }

  dialDiscovered(peerId: string, _addrs: readonly string[], _signal: AbortSignal): void {
    const t = this.#network.peer(peerId)
    if (t === undefined || t === this || this.#peers.has(peerId)) return
    if (!this.#network.linked(this.peerId, peerId) || this.#peers.size >= this.#options.maxPeers) return
    if (this.#network.dialRefused(this.#address, t.#address)) return
    this.#connect(t)
  }

  async hangUp(peerId: string): Promise<void> {
    this.#disconnect(peerId)
  }

  async hangUpSilentPeers(_graceMs: number): Promise<string[]> {
    return []
  }

  #receive(data: Uint8Array, from: string): void {
    if (this.#events.validate(data, from)) this.#events.message(data, from)
  }

  #connect(t: MemoryTransport): void {
    if (t === this || this.#peers.has(t.peerId)) return
    this.#peers.add(t.peerId)
    t.#peers.add(this.peerId)
    const me = this.peerId
    later(() => {
      this.#events.peerConnected(t.peerId)
      t.#events.peerConnected(me)
      this.#events.peerSubscribed(t.peerId)
      t.#events.peerSubscribed(me)
    })
  }

  #disconnect(peerId: string): void {
    if (!this.#peers.delete(peerId)) return
    const other = this.#network.peer(peerId)
    const me = this.peerId
    if (other !== undefined) other.#peers.delete(me)
    this.#events.peerDisconnected(peerId)
    if (other !== undefined) later(() => other.#events.peerDisconnected(me))
  }
}
