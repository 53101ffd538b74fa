import type { Connection, IncomingStreamData, Stream } from '@libp2p/interface'
import { decode, encode } from 'it-length-prefixed'
import { type Pushable, pushable } from 'it-pushable'

/** The slice of a libp2p node a direct channel needs. */
export interface StreamHost {
  handle(
    protocol: string,
    handler: (data: IncomingStreamData) => void,
    options?: { maxInboundStreams?: number; maxOutboundStreams?: number },
  ): Promise<void>
  unhandle(protocol: string): Promise<void>
  getConnections(): Connection[]
}

export interface DirectChannelOptions {
  readonly protocol: string
  /** largest frame accepted; a larger length prefix resets the stream */
  readonly maxFrameBytes: number
  /** frames queued for one peer while its stream opens or drains; more are dropped (the sender retries by protocol) */
  readonly maxQueuedFrames: number
}

export interface DirectChannelEvents {
  frame(peerId: string, data: Uint8Array): void
  /** a stream failed or a frame was too large; counted by the owner */
  streamError(peerId: string, reason: string): void
}

interface Outbound {
  readonly queue: Pushable<Uint8Array>
  queued: number
  stream: Stream | null
}

/**
 * Length-prefixed frames to connected peers over one long-lived libp2p stream per peer and
 * direction. Never dials: it uses the connections the mesh already has, so a peer without one is
 * simply unreachable (the election treats that as message loss). Frames are sent in order; a frame
 * that cannot be queued is dropped, never buffered without bound.
 */
export class DirectChannel {
  readonly #out = new Map<string, Outbound>()
  readonly #inbound = new Set<Stream>()
  #host: StreamHost | null = null

  constructor(
    private readonly opts: DirectChannelOptions,
    private readonly events: DirectChannelEvents,
  ) {}

  async start(host: StreamHost): Promise<void> {
    this.#host = host
    await host.handle(this.opts.protocol, (d) => this.#accept(d), {
      maxInboundStreams: 4,
      maxOutboundStreams: 4,
    })
  }

  async stop(): Promise<void> {
    const host = this.#host
    this.#host = null
    for (const [peer] of this.#out) this.closePeer(peer)
    for (const s of this.#inbound) s.abort(new Error('channel stopped'))
    this.#inbound.clear()
    if (host !== null) await host.unhandle(this.opts.protocol).catch(() => undefined)
  }

  /** Queues a frame for `peerId`; false when it was dropped (no connection, or the queue is full). */
  send(peerId: string, data: Uint8Array): boolean {
    const host = this.#host
    if (host === null) return false
    let out = this.#out.get(peerId)
    if (out === undefined) {
      const conn = host
        .getConnections()
        .find((c) => c.status === 'open' && c.remotePeer.toString() === peerId)
      if (conn === undefined) return false
      out = { queue: pushable<Uint8Array>({ objectMode: true }), queued: 0, stream: null }
      this.#out.set(peerId, out)
      void this.#open(peerId, conn, out)
    }
    if (out.queued >= this.opts.maxQueuedFrames) return false
    out.queued++
    out.queue.push(data)
    return true
  }

  /** Forgets a peer's outbound stream (its connection closed); the next send opens a new one. */
  closePeer(peerId: string): void {
    const out = this.#out.get(peerId)
    if (out === undefined) return
    this.#out.delete(peerId)
    out.queue.end()
    out.stream?.abort(new Error('peer closed'))
  }

  async #open(peerId: string, conn: Connection, out: Outbound): Promise<void> {
    try {
      const stream = await conn.newStream(this.opts.protocol)
      if (this.#out.get(peerId) !== out) {
        stream.abort(new Error('superseded'))
        return
      }
      out.stream = stream
      const counted = (async function* () {
        for await (const frame of out.queue) {
          out.queued--
          yield withLengthPrefix(frame)
        }
      })()
      await stream.sink(counted)
    } catch (e) {
      this.events.streamError(peerId, e instanceof Error ? e.message : String(e))
    } finally {
      if (this.#out.get(peerId) === out) this.#out.delete(peerId)
      out.queue.end()
    }
  }

  #accept({ stream, connection }: IncomingStreamData): void {
    const peerId = connection.remotePeer.toString()
    this.#inbound.add(stream)
    void (async () => {
      try {
        for await (const frame of decode(stream.source, { maxDataLength: this.opts.maxFrameBytes })) {
          this.events.frame(peerId, frame.subarray())
        }
      } catch (e) {
        this.events.streamError(peerId, e instanceof Error ? e.message : String(e))
        stream.abort(e instanceof Error ? e : new Error(String(e)))
      } finally {
        this.#inbound.delete(stream)
      }
    })()
  }
}

/**
 * The frame with its varint length in front, in one buffer: it-length-prefixed's `encode` yields
 * the prefix and the data as two chunks, which yamux sends as two frames, noise encrypts twice
 * and the receiver acknowledges with two window updates — four socket writes per election frame
 * where two do (measured with strace on an idle MASTER: 210 writes/s before, see BENCHMARKS.md).
 */
export function withLengthPrefix(frame: Uint8Array): Uint8Array {
  return encode.single(frame).subarray()
}
