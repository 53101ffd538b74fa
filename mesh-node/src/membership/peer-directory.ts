import { join } from 'node:path'
import { z } from 'zod'
import { readStateFile, writeStateFile } from '../json-file.js'

/** The most peers a directory remembers; older unconfirmed entries make room. */
const MAX_ENTRIES = 1024

const PinsSchema = z.object({
  v: z.literal(1),
  peers: z
    .array(
      z.object({
        node: z.string().min(1).max(63),
        peerId: z.string().min(1).max(128),
        addrs: z.array(z.string().max(256)).max(16),
      }),
    )
    .max(MAX_ENTRIES),
})
export type PeerPins = z.infer<typeof PinsSchema>

/** Where pins live across restarts. */
export interface PeerPinStore {
  read(): Promise<PeerPins | null>
  write(pins: PeerPins): Promise<void>
}

/** `peers.json` in the data dir; a damaged file is logged by the caller and starts empty. */
export function filePeerPinStore(dataDir: string): PeerPinStore {
  const file = join(dataDir, 'peers.json')
  return {
    async read() {
      const r = await readStateFile(
        file,
        PinsSchema,
        'PEERS_STATE_INVALID',
        'delete it to forget the pinned peers',
      )
      return r.ok ? r.value : null
    },
    write: (pins) => writeStateFile(file, pins),
  }
}

export interface KnownPeer {
  readonly node: string
  readonly peerId: string
  readonly addrs: readonly string[]
}

/**
 * Node id ↔ peer id, learnt from signed heartbeats. A node id is pinned to the first peer id that
 * speaks for it (and the pin survives restarts when a store is given): a second peer claiming the
 * id is refused, so nobody holding the cluster secret can take over another member's identity.
 * A pin moves only after its process left gracefully, or when an operator removes the member
 * (`members remove`: a crashed node reinstalled with a new key).
 */
export class PeerDirectory {
  readonly #peerByNode = new Map<string, KnownPeer>()
  readonly #nodeByPeer = new Map<string, string>()
  #dirty = false

  constructor(
    private readonly self: string,
    private readonly store?: PeerPinStore,
    /**
     * whether `node`'s pin may move to a new peer id: true once its pinned process said goodbye (a
     * signed leave), so a node reinstalled after a graceful stop rejoins under its id; a crashed or
     * live member's id stays pinned
     */
    private readonly released: (node: string) => boolean = () => false,
  ) {}

  async load(): Promise<void> {
    if (this.store === undefined) return
    const pins = await this.store.read().catch(() => null)
    if (pins === null) return
    for (const p of pins.peers) if (p.node !== this.self) this.#set(p)
  }

  /** Saves the pins when they changed since the last save; never throws. */
  async save(): Promise<void> {
    if (this.store === undefined || !this.#dirty) return
    this.#dirty = false
    const peers = [...this.#peerByNode.values()].map((p) => ({ ...p, addrs: [...p.addrs] }))
    await this.store.write({ v: 1, peers }).catch(() => {
      this.#dirty = true
    })
  }

  /** null when `peerId` may speak for `node`; else the drop code. */
  admit(node: string, peerId: string): string | null {
    const pinned = this.#peerByNode.get(node)
    if (pinned !== undefined && pinned.peerId !== peerId && !this.released(node)) return 'GOSSIP_ID_CLAIMED'
    const other = this.#nodeByPeer.get(peerId)
    if (other !== undefined && other !== node) return 'GOSSIP_ID_CLAIMED'
    return null
  }

  /**
   * Pins `node` to `peerId` and remembers where it listens. The caller admitted the message when
   * it arrived (`admit`, before the membership step that may already have changed the member's
   * state: a node back after a graceful leave is alive again by now, and its new key must stick).
   */
  bind(node: string, peerId: string, addrs: readonly string[]): void {
    if (node === this.self) return
    const known = this.#peerByNode.get(node)
    if (known !== undefined && known.peerId === peerId && sameAddrs(known.addrs, addrs)) return
    if (known !== undefined && known.peerId !== peerId) this.release(node)
    this.#set({ node, peerId, addrs: addrs.slice(0, 16) })
    this.#dirty = true
  }

  /** An operator removed `node`: its pin goes, a reinstalled node may take the id. */
  release(node: string): void {
    const p = this.#peerByNode.get(node)
    if (p === undefined) return
    this.#peerByNode.delete(node)
    this.#nodeByPeer.delete(p.peerId)
    this.#dirty = true
  }

  nodeOf(peerId: string): string | undefined {
    return this.#nodeByPeer.get(peerId)
  }

  peerOf(node: string): string | undefined {
    return this.#peerByNode.get(node)?.peerId
  }

  /** every pinned peer: where to send a broadcast, and where to rejoin after losing every connection */
  known(): KnownPeer[] {
    return [...this.#peerByNode.values()]
  }

  #set(p: KnownPeer): void {
    if (!this.#peerByNode.has(p.node) && this.#peerByNode.size >= MAX_ENTRIES) {
      const oldest = this.#peerByNode.keys().next().value
      if (oldest !== undefined) this.release(oldest)
    }
    this.#peerByNode.set(p.node, p)
    this.#nodeByPeer.set(p.peerId, p.node)
  }
}

function sameAddrs(a: readonly string[], b: readonly string[]): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i])
}
