import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import type { Connection, Stream } from '@libp2p/interface'
import fc from 'fast-check'
import { decode } from 'it-length-prefixed'
import { DirectChannel, type StreamHost, withLengthPrefix } from './direct-channel.js'

async function decodeAll(chunks: Uint8Array[]): Promise<Uint8Array[]> {
  const out: Uint8Array[] = []
  for await (const f of decode(chunks)) out.push(f.subarray())
  return out
}

describe('withLengthPrefix', () => {
  it('is one buffer that the stream decoder reads back as the same frame', async () => {
    for (const size of [0, 1, 127, 128, 300, 16_383, 16_384, 70_000]) {
      const frame = new Uint8Array(size).map((_, i) => i % 251)
      const [back, ...rest] = await decodeAll([withLengthPrefix(frame)])
      assert.equal(rest.length, 0)
      assert.deepEqual(back, frame, `size ${size}`)
    }
  })

  it('any sequence of frames, split anywhere on the wire, decodes to the same sequence', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.uint8Array({ maxLength: 600 }), { maxLength: 8 }),
        fc.integer({ min: 1, max: 97 }),
        async (frames, cut) => {
          const wire = Buffer.concat(frames.map(withLengthPrefix))
          const pieces: Uint8Array[] = []
          for (let i = 0; i < wire.length; i += cut) pieces.push(wire.subarray(i, i + cut))
          const back = await decodeAll(pieces)
          assert.deepEqual(
            back.map((b) => Buffer.from(b).toString('hex')),
            frames.map((f) => Buffer.from(f).toString('hex')),
          )
        },
      ),
      { numRuns: 500 },
    )
  })
})

describe('DirectChannel', () => {
  it('hands the stream one chunk per frame (yamux sends each chunk as a frame of its own)', async () => {
    const chunks: Uint8Array[] = []
    let sinkDone: () => void = () => undefined
    const drained = new Promise<void>((r) => {
      sinkDone = r
    })
    const stream = {
      sink: async (source: AsyncIterable<Uint8Array>) => {
        for await (const c of source) {
          chunks.push(c)
          if (chunks.length >= 3) sinkDone()
        }
      },
      abort: () => undefined,
    } as unknown as Stream
    const conn = {
      status: 'open',
      remotePeer: { toString: () => 'peer-a' },
      newStream: async () => stream,
    } as unknown as Connection
    const host: StreamHost = {
      handle: async () => undefined,
      unhandle: async () => undefined,
      getConnections: () => [conn],
    }
    const channel = new DirectChannel(
      { protocol: '/test/1', maxFrameBytes: 1 << 16, maxQueuedFrames: 8 },
      { frame: () => undefined, streamError: () => undefined },
    )
    await channel.start(host)
    const frames = [new Uint8Array([1, 2, 3]), new Uint8Array(200).fill(7), new Uint8Array(0)]
    for (const f of frames) assert.equal(channel.send('peer-a', f), true)
    let timer: NodeJS.Timeout | undefined
    await Promise.race([
      drained,
      new Promise((_, no) => {
        timer = setTimeout(() => no(new Error('fewer chunks than frames')), 2_000)
      }),
    ])
    clearTimeout(timer)
    await channel.stop()
    assert.equal(chunks.length, frames.length)
    assert.deepEqual(await decodeAll(chunks), frames)
  })
})
