import assert from 'node:assert/strict'
import { once } from 'node:events'
import { connect, createServer, type Socket } from 'node:net'
import { describe, it } from 'node:test'
import { probeDirectReads } from './direct-reads.js'

async function acceptedPair(): Promise<{ client: Socket; peer: Socket; close: () => void }> {
  const server = createServer({ pauseOnConnect: true, allowHalfOpen: true })
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  const addr = server.address()
  assert.ok(addr !== null && typeof addr === 'object')
  const accepted = once(server, 'connection')
  const client = connect({ host: '127.0.0.1', port: addr.port })
  const [peer] = (await accepted) as [Socket]
  return {
    client,
    peer,
    close: () => {
      client.destroy()
      peer.destroy()
      server.close()
    },
  }
}

describe('direct reads on accepted sockets', { timeout: 10_000 }, () => {
  it('passes its self-test on the Node the project runs on', async () => {
    const p = await probeDirectReads()
    assert.equal(p.ok, true, p.ok ? '' : p.why)
  })

  it('delivers a 1 MiB stream through the callback, in order, with pause and resume', async () => {
    const p = await probeDirectReads()
    assert.ok(p.ok)
    const { client, peer, close } = await acceptedPair()
    try {
      const parts: Buffer[] = []
      let dataEvents = 0
      peer.on('data', () => dataEvents++)
      const buf = Buffer.alloc(16 * 1024)
      let reads = 0
      assert.equal(
        p.reads.attach(peer, buf, (n, b) => {
          parts.push(Buffer.from(b.subarray(0, n)))
          // every fourth read pauses, and the socket picks up again later
          if (++reads % 4 === 0) {
            peer.pause()
            setTimeout(() => peer.resume(), 1)
          }
          return undefined
        }),
        true,
      )
      const ended = once(peer, 'end')
      peer.resume()
      const sent = Buffer.alloc(1024 * 1024)
      for (let i = 0; i < sent.length; i++) sent[i] = (i * 7) & 0xff
      client.end(sent)
      await ended
      assert.deepEqual(Buffer.concat(parts), sent)
      assert.equal(dataEvents, 0)
      assert.equal(peer.bytesRead, sent.length)
    } finally {
      close()
    }
  })

  it('leaves a socket holding unshifted bytes to its data events', async () => {
    const p = await probeDirectReads()
    assert.ok(p.ok)
    const { peer, close } = await acceptedPair()
    try {
      peer.unshift(Buffer.from('held'))
      assert.equal(
        p.reads.attach(peer, Buffer.alloc(64), () => undefined),
        false,
      )
      const [d] = (await Promise.all([once(peer, 'data'), peer.resume()]))[0] as [Buffer]
      assert.equal(d.toString(), 'held')
    } finally {
      close()
    }
  })

  it('refuses a socket attached twice', async () => {
    const p = await probeDirectReads()
    assert.ok(p.ok)
    const { peer, close } = await acceptedPair()
    try {
      assert.equal(
        p.reads.attach(peer, Buffer.alloc(64), () => undefined),
        true,
      )
      assert.equal(
        p.reads.attach(peer, Buffer.alloc(64), () => undefined),
        false,
      )
    } finally {
      close()
    }
  })

  it('reports a probe that cannot finish as a reason, within its signal', async () => {
    const p = await probeDirectReads(AbortSignal.abort())
    assert.equal(p.ok, false)
    assert.ok(!p.ok && p.why.length > 0)
  })
})
