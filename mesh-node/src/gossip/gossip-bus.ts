import { decodeGossip, encodeGossip, type GossipMessage } from '@pgmesh/protocol'
import type { Clock } from '../core/contracts.js'
import { type Logger, RateLimitedLog } from '../log.js'
import type { MeshTransport } from './transport.js'

/** How often a noisy peer's bad messages are logged (each drop is still counted). */
const DROP_LOG_INTERVAL_MS = 10_000

type EnvelopeKey = 'v' | 'cluster' | 'node' | 'peerId' | 'incarnation' | 'sentAt'
type Body<M> = M extends GossipMessage ? Omit<M, EnvelopeKey> : never
/** A gossip message as a part writes it: the bus adds the envelope. */
export type GossipBody = Body<GossipMessage>
export type GossipKind = GossipMessage['kind']
type Handler<K extends GossipKind> = (msg: Extract<GossipMessage, { kind: K }>, from: string) => void

export interface GossipBusOptions {
  readonly cluster: string
  readonly node: string
  readonly incarnation: number
  readonly maxMessageBytes: number
  readonly clock: Clock
  readonly logger: Logger
  /**
   * Identity check before a message is accepted (and so before gossipsub forwards it): a drop
   * code when `node` may not speak from `peerId`, else null.
   */
  readonly admit?: (node: string, peerId: string) => string | null
}

export interface GossipCounters {
  readonly messagesIn: number
  readonly messagesOut: number
  readonly dropped: Readonly<Record<string, number>>
}

/**
 * The node's one gossip envelope: every message out gets it here, every message in is decoded,
 * checked (size, schema, cluster, signer = claimed peer, identity) and dispatched by kind here.
 * A bad message is a counted drop with a rate-limited log, never an exception.
 */
export class GossipBus {
  readonly #o: GossipBusOptions
  readonly #log: Logger
  readonly #dropLog = new RateLimitedLog(DROP_LOG_INTERVAL_MS)
  readonly #decoded = new WeakMap<Uint8Array, GossipMessage>()
  readonly #dropped: Record<string, number> = {}
  readonly #handlers = new Map<GossipKind, Handler<GossipKind>>()
  #transport: MeshTransport | null = null
  #in = 0
  #out = 0

  constructor(o: GossipBusOptions) {
    this.#o = o
    this.#log = o.logger.child({ component: 'gossip' })
  }

  /** The transport this bus publishes on; given once it exists (the transport's events call back here). */
  attach(transport: MeshTransport): void {
    this.#transport = transport
  }

  on<K extends GossipKind>(kind: K, handler: Handler<K>): void {
    this.#handlers.set(kind, handler as unknown as Handler<GossipKind>)
  }

  counters(): GossipCounters {
    return { messagesIn: this.#in, messagesOut: this.#out, dropped: { ...this.#dropped } }
  }

  /** Sends one message with this node's envelope; failures are logged, never thrown. */
  async publish(body: GossipBody): Promise<void> {
    const t = this.#transport
    if (t === null || !t.started) return
    const msg = {
      v: 1,
      cluster: this.#o.cluster,
      node: this.#o.node,
      peerId: t.peerId,
      incarnation: this.#o.incarnation,
      sentAt: Math.round(this.#o.clock.wall()),
      ...body,
    } as GossipMessage
    const bytes = encodeGossip(msg, this.#o.maxMessageBytes)
    if (!bytes.ok) {
      this.#log.error({ code: bytes.error.code, kind: msg.kind }, bytes.error.message)
      return
    }
    try {
      await t.publish(bytes.value)
      this.#out++
    } catch (e) {
      this.#log.debug({ err: e instanceof Error ? e.message : String(e) }, 'publish failed')
    }
  }

  /** The transport's validator: true accepts (delivers and forwards), false drops. */
  validate(data: Uint8Array, from: string): boolean {
    const r = decodeGossip(data, this.#o.maxMessageBytes)
    let code: string
    let detail: string
    if (!r.ok) {
      code = r.error.code
      detail = r.error.message
    } else if (r.value.cluster !== this.#o.cluster) {
      code = 'GOSSIP_WRONG_CLUSTER'
      detail = `message for cluster '${r.value.cluster}'`
    } else if (r.value.peerId !== from) {
      code = 'GOSSIP_PEER_MISMATCH'
      detail = `message claims peer ${r.value.peerId} but was signed by ${from}`
    } else {
      const refused = this.#o.admit?.(r.value.node, from) ?? null
      if (refused === null) {
        this.#decoded.set(data, r.value)
        return true
      }
      code = refused
      detail = `node id '${r.value.node}' belongs to another peer`
    }
    this.drop(code, from, `dropped gossip: ${detail}`, 'warn')
    return false
  }

  /** An accepted message: dispatched to its kind's handler; a handler that throws is a counted drop. */
  deliver(data: Uint8Array, from: string): void {
    let msg = this.#decoded.get(data)
    if (msg === undefined) {
      if (!this.validate(data, from)) return
      msg = this.#decoded.get(data)
      if (msg === undefined) return
    }
    this.#decoded.delete(data)
    this.#in++
    // our own earlier life (a restart keeps the peer id), echoed back by the mesh: not a conflict
    if (this.#transport?.started === true && msg.peerId === this.#transport.peerId) return
    const handler = this.#handlers.get(msg.kind)
    if (handler === undefined) return
    try {
      handler(msg, from)
    } catch (e) {
      this.drop(
        'GOSSIP_HANDLER_FAILED',
        from,
        `handling a ${msg.kind} failed: ${(e as Error).message}`,
        'warn',
      )
    }
  }

  /** Counts a dropped message by code and logs it, rate-limited per peer and code. */
  drop(code: string, from: string, message: string, level: 'warn' | 'debug'): void {
    this.#dropped[code] = (this.#dropped[code] ?? 0) + 1
    const suppressed = this.#dropLog.shouldLog(`${from}/${code}`, this.#o.clock.mono())
    if (suppressed !== null) this.#log[level]({ peer: from, code, suppressed }, message)
  }
}
