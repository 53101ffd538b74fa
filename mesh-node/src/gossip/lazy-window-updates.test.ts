import assert from 'node:assert/strict'
import { afterEach, describe, it } from 'node:test'
import { yamux } from '@chainsafe/libp2p-yamux'
import type { ComponentLogger, Logger, Stream, StreamMuxer } from '@libp2p/interface'
import { batchWindowUpdates, type LazyWindowStats, lazyWindowUpdates } from './lazy-window-updates.js'

const silent: Logger = Object.assign(() => undefined, {
  enabled: false,
  trace: () => undefined,
  error: () => undefined,
  newScope: () => silent,
})
const logger: ComponentLogger = { forComponent: () => silent }

const WINDOW_UPDATE = 1
/** muxers a test made, aborted after it */
const open: StreamMuxer[] = []

interface Pair {
  client: StreamMuxer
  server: StreamMuxer
  /** window-update frames each side put on the wire (after batching, when batched) */
  sent: { client: number; server: number }
  incoming: Promise<Stream>
}

/** Two real yamux muxers joined back to back; `lazy` batches their window updates. */
function pair(lazy: boolean): Pair {
  const sent = { client: 0, server: 0 }
  let gotStream: (s: Stream) => void = () => undefined
  const incoming = new Promise<Stream>((resolve) => {
    gotStream = resolve
  })
  const make = (side: 'client' | 'server'): StreamMuxer => {
    const factory = yamux({ enableKeepAlive: false })({ logger })
    const m = factory.createStreamMuxer({
      direction: side === 'client' ? 'outbound' : 'inbound',
      ...(side === 'server' ? { onIncomingStream: (s: Stream) => gotStream(s) } : {}),
    })
    const internals = m as unknown as {
      sendFrame(h: { type: number }, d?: unknown): void
      closeStream(id: number): void
    }
    const wire = internals.sendFrame.bind(m)
    internals.sendFrame = (h, d) => {
      if (h.type === WINDOW_UPDATE) sent[side]++
      wire(h, d)
    }
    if (lazy) batchWindowUpdates(internals)
    open.push(m)
    return m
  }
  const client = make('client')
  const server = make('server')
  void client.sink(server.source)
  void server.sink(client.source)
  return { client, server, sent, incoming }
}

/** Sends `chunks` over a new stream and reads them all on the other side. */
async function transfer(p: Pair, chunks: Uint8Array[]): Promise<number> {
  const out = await p.client.newStream()
  const inbound = await p.incoming
  const reading = (async () => {
    let bytes = 0
    for await (const c of inbound.source) bytes += c.byteLength
    return bytes
  })()
  await out.sink(
    (async function* () {
      yield* chunks
    })(),
  )
  return reading
}

describe('lazy yamux window updates', () => {
  afterEach(() => {
    for (const m of open.splice(0)) m.abort(new Error('test done'))
  })

  it('small messages: one window update per message without it, a handful with it', async () => {
    const msgs = Array.from({ length: 200 }, (_, i) => new Uint8Array(150).fill(i % 256))
    const eager = pair(false)
    assert.equal(await transfer(eager, msgs), 200 * 150)
    const lazy = pair(true)
    assert.equal(await transfer(lazy, msgs), 200 * 150)
    // the server answers data with window updates; the stream's opening ACK is the one it keeps
    assert.ok(eager.sent.server >= 150, `eager server sent ${eager.sent.server} window updates`)
    // what is left: the stream's opening ACK and the window's growth (256 KiB to 16 MiB: six doublings)
    assert.ok(lazy.sent.server <= 8, `lazy server sent ${lazy.sent.server} window updates`)
  })

  it('a transfer many windows long still flows: credit returns once half a window is read', async () => {
    const chunk = new Uint8Array(16 * 1024).fill(7)
    const chunks = Array.from({ length: 256 }, () => chunk) // 4 MiB, 16 windows of 256 KiB
    const p = pair(true)
    let stall: NodeJS.Timeout | undefined
    const bytes = await Promise.race([
      transfer(p, chunks),
      new Promise<never>((_, reject) => {
        stall = setTimeout(() => reject(new Error('transfer stalled')), 20_000)
      }),
    ]).finally(() => clearTimeout(stall))
    assert.equal(bytes, 256 * chunk.byteLength)
    // each update returns at least WINDOW_UPDATE_THRESHOLD (consumed bytes plus the window's growth);
    // without batching it would be one per chunk read (256)
    assert.ok(p.sent.server >= 1 && p.sent.server <= 64, `${p.sent.server} window updates`)
  })

  it('flagged updates go at once carrying the held credit, and a closed stream forgets it', () => {
    const wire: { type: number; flag: number; streamID: number; length: number }[] = []
    let closed = 0
    const m = {
      sendFrame: (h: { type: number; flag: number; streamID: number; length: number }) => void wire.push(h),
      closeStream: (_id: number) => void closed++,
    }
    batchWindowUpdates(m, 1000)
    m.sendFrame({ type: WINDOW_UPDATE, flag: 0, streamID: 1, length: 400 })
    m.sendFrame({ type: WINDOW_UPDATE, flag: 0, streamID: 3, length: 300 })
    assert.equal(wire.length, 0)
    m.sendFrame({ type: 0, flag: 0, streamID: 1, length: 5 }) // data passes untouched
    m.sendFrame({ type: WINDOW_UPDATE, flag: 4, streamID: 1, length: 10 }) // FIN: at once, with the 400 held
    m.sendFrame({ type: WINDOW_UPDATE, flag: 0, streamID: 1, length: 999 })
    m.sendFrame({ type: WINDOW_UPDATE, flag: 0, streamID: 1, length: 1 }) // reaches the threshold
    m.closeStream(3)
    m.sendFrame({ type: WINDOW_UPDATE, flag: 0, streamID: 3, length: 800 }) // 300 was forgotten
    assert.deepEqual(
      wire.map((h) => [h.type, h.flag, h.streamID, h.length]),
      [
        [0, 0, 1, 5],
        [WINDOW_UPDATE, 4, 1, 410],
        [WINDOW_UPDATE, 0, 1, 1000],
      ],
    )
    assert.equal(closed, 1)
  })

  it('a muxer without the expected internals is left as it was, and counted', () => {
    const stats: LazyWindowStats = { wrapped: 0, unwrapped: 0 }
    const plain = { protocol: '/x', createStreamMuxer: () => ({}) as StreamMuxer }
    let told = 0
    const wrapped = lazyWindowUpdates(() => plain, { stats, onUnwrapped: () => told++ })(undefined)
    wrapped.createStreamMuxer()
    wrapped.createStreamMuxer()
    assert.deepEqual(stats, { wrapped: 0, unwrapped: 2 })
    assert.equal(told, 1, 'told once, not per connection')
    const muxer = lazyWindowUpdates(yamux({ enableKeepAlive: false }), { stats })({
      logger,
    }).createStreamMuxer()
    open.push(muxer)
    assert.deepEqual(stats, { wrapped: 1, unwrapped: 2 })
  })
})
