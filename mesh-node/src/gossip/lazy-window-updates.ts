import type { StreamMuxer, StreamMuxerFactory, StreamMuxerInit } from '@libp2p/interface'

/**
 * yamux's receive window, 256 KiB (the spec's initial stream window; js-libp2p-yamux's default).
 * Credit is returned once half of it has been consumed, as go-yamux and rust-yamux do.
 */
export const YAMUX_INITIAL_WINDOW = 256 * 1024
export const WINDOW_UPDATE_THRESHOLD = YAMUX_INITIAL_WINDOW / 2

const WINDOW_UPDATE = 1
const NO_FLAGS = 0

/** The frame header js-libp2p-yamux hands to its `sendFrame`. */
interface YamuxHeader {
  type: number
  flag: number
  streamID: number
  length: number
}

/** The two internals this module relies on; checked before each muxer is wrapped. */
interface YamuxInternals {
  sendFrame(header: YamuxHeader, data?: unknown): void
  closeStream(id: number): void
}

function hasInternals(m: unknown): m is YamuxInternals {
  const o = m as Partial<YamuxInternals> | null
  return typeof o?.sendFrame === 'function' && typeof o.closeStream === 'function'
}

export interface LazyWindowStats {
  /** muxers whose window updates are batched */
  wrapped: number
  /** muxers left as they were (their shape was not the expected one) */
  unwrapped: number
}

/**
 * js-libp2p-yamux (7.x) answers every data frame it reads with a window update: one 30-byte
 * frame, one socket write and one read (and a noise and pnet round) on each side per message.
 * On an idle MASTER that is half of all socket writes (lease renewals are small and frequent).
 * This wrapper holds back plain window updates (no flags) and sends their sum once it reaches
 * half the initial window, which the yamux spec allows: a sender keeps at least half its credit,
 * so it never stalls waiting for it. Updates that carry flags (SYN, ACK, FIN, RST) go at once
 * with whatever credit was held. It reaches into the muxer (`sendFrame`, `closeStream`), so a
 * muxer without them is left alone and counted in `stats.unwrapped`.
 */
export function lazyWindowUpdates<C>(
  inner: (components: C) => StreamMuxerFactory,
  options: {
    readonly stats?: LazyWindowStats
    /** told of the first muxer left as it was (a yamux version whose internals differ) */
    readonly onUnwrapped?: () => void
  } = {},
): (components: C) => StreamMuxerFactory {
  const stats = options.stats ?? { wrapped: 0, unwrapped: 0 }
  const onUnwrapped = options.onUnwrapped ?? (() => undefined)
  return (components) => {
    const factory = inner(components)
    const create = factory.createStreamMuxer.bind(factory)
    factory.createStreamMuxer = (init?: StreamMuxerInit): StreamMuxer => {
      const muxer = create(init)
      if (!hasInternals(muxer)) {
        if (stats.unwrapped++ === 0) onUnwrapped()
        return muxer
      }
      stats.wrapped++
      batchWindowUpdates(muxer)
      return muxer
    }
    return factory
  }
}

/** Replaces the muxer's `sendFrame` and `closeStream` with batching versions (exported for tests). */
export function batchWindowUpdates(muxer: YamuxInternals, threshold = WINDOW_UPDATE_THRESHOLD): void {
  const held = new Map<number, number>()
  const send = muxer.sendFrame.bind(muxer)
  const close = muxer.closeStream.bind(muxer)
  muxer.sendFrame = (header, data) => {
    if (header.type !== WINDOW_UPDATE) {
      send(header, data)
      return
    }
    const credit = (held.get(header.streamID) ?? 0) + header.length
    if (header.flag === NO_FLAGS && credit < threshold) {
      held.set(header.streamID, credit)
      return
    }
    held.delete(header.streamID)
    send({ ...header, length: credit }, data)
  }
  muxer.closeStream = (id) => {
    held.delete(id)
    close(id)
  }
}
