import assert from 'node:assert/strict'
import { connect, createServer, type Server, type Socket } from 'node:net'
import { after, describe, it } from 'node:test'
import { setTimeout as sleep } from 'node:timers/promises'
import { ListenerConfigSchema } from '@pgmesh/protocol'
import { pino } from 'pino'
import { type AdmittedClient, ListenerGate } from './listener-gate.js'
import { ListenerPolicy } from './listener-policy.js'
import { encodeProxyV1, encodeProxyV2 } from './proxy-protocol.js'
import { pgErrorResponse } from './refusal.js'

const servers: Server[] = []
const accepted: Socket[] = []
after(async () => {
  for (const s of accepted) s.destroy()
  for (const s of servers) await new Promise((r) => s.close(r))
})

/** A server whose accepted sockets go through a gate; admitted ones report their origin and first bytes. */
async function gated(over: Record<string, unknown>, postgres = false) {
  const policy = new ListenerPolicy(
    ListenerConfigSchema.parse({
      name: 'g',
      bind: '127.0.0.1:0',
      role: 'servers',
      servers: [{ address: '127.0.0.1:1' }],
      ...over,
    }),
  )
  const gate = new ListenerGate(policy, {
    listener: 'g',
    postgres,
    mono: () => performance.now(),
    logger: pino({ level: 'silent' }),
  })
  const admitted: { a: AdmittedClient; first: Promise<string> }[] = []
  const server = createServer({ pauseOnConnect: true, allowHalfOpen: true }, (s) => {
    s.on('error', () => undefined)
    accepted.push(s)
    gate.accept(s, (a) => {
      // what the listener does next: read on, from the first byte after the header
      const first = new Promise<string>((done) => s.once('data', (d) => done(d.toString('latin1'))))
      admitted.push({ a, first })
      s.resume()
    })
  })
  servers.push(server)
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
  return { policy, admitted, port: (server.address() as { port: number }).port }
}

function client(port: number, from: string): Promise<Socket> {
  return new Promise((done, fail) => {
    const s = connect({ host: '127.0.0.1', port, localAddress: from }, () => done(s))
    s.on('error', fail)
  })
}

describe('ListenerGate', () => {
  it('reads a PROXY header sent a byte at a time, and hands on the bytes after it untouched', async () => {
    const { admitted, port } = await gated({ proxyProtocol: { trusted: ['127.0.0.40'] } })
    const c = await client(port, '127.0.0.40')
    const header = encodeProxyV2({
      source: '198.18.1.2',
      sourcePort: 1234,
      dest: '198.18.0.1',
      destPort: 5432,
    })
    for (const b of header) {
      c.write(Buffer.from([b]))
      await sleep(1)
    }
    c.write('payload')
    const deadline = Date.now() + 5_000
    while (admitted.length === 0 && Date.now() < deadline) await sleep(10)
    assert.equal(admitted.length, 1)
    assert.deepEqual(admitted[0]!.a.origin, {
      source: '198.18.1.2',
      sourcePort: 1234,
      dest: '198.18.0.1',
      destPort: 5432,
    })
    assert.equal(await admitted[0]!.first, 'payload')
    c.destroy()
  })

  it('a header and data in one segment: the data is kept', async () => {
    const { admitted, port } = await gated({ proxyProtocol: { trusted: ['127.0.0.40'] } })
    const c = await client(port, '127.0.0.40')
    c.write(
      Buffer.concat([
        encodeProxyV1({ source: '198.18.1.3', sourcePort: 1, dest: '198.18.0.1', destPort: 2 }),
        Buffer.from('abc'),
      ]),
    )
    const deadline = Date.now() + 5_000
    while (admitted.length === 0 && Date.now() < deadline) await sleep(10)
    assert.equal(admitted[0]!.a.origin.source, '198.18.1.3')
    assert.equal(await admitted[0]!.first, 'abc')
    c.destroy()
  })

  it('a trusted source silent past the header timeout is refused; an untrusted one is sniffed', async () => {
    const { admitted, policy, port } = await gated({
      proxyProtocol: { trusted: ['127.0.0.40'], headerTimeoutMs: 100 },
    })
    const silent = await client(port, '127.0.0.40')
    const closed = await new Promise<string>((done) => {
      silent.on('error', (e: NodeJS.ErrnoException) => done(e.code ?? 'error'))
      silent.on('close', () => done('closed'))
    })
    assert.equal(closed, 'ECONNRESET')
    assert.equal(policy.refused.proxyMissing, 1)
    const other = await client(port, '127.0.0.41')
    const deadline = Date.now() + 5_000
    while (admitted.length === 0 && Date.now() < deadline) await sleep(10)
    assert.equal(admitted[0]!.a.sniff, true)
    assert.equal(admitted[0]!.a.origin.source, '127.0.0.41')
    other.destroy()
  })

  it('PostgreSQL listeners: the refused client reads an ErrorResponse, then the connection ends', async () => {
    const { port } = await gated({ limits: { maxConnPerSource: 1 } }, true)
    const first = await client(port, '127.0.0.42')
    const second = await client(port, '127.0.0.42')
    second.write(Buffer.from([0, 0, 0, 8, 4, 210, 22, 47])) // SSLRequest, as libpq sends first
    const got = await new Promise<Buffer>((done) => {
      const parts: Buffer[] = []
      second.on('data', (d) => parts.push(d))
      second.on('close', () => done(Buffer.concat(parts)))
    })
    assert.equal(got[0], 0x45)
    assert.equal(got.readUInt32BE(1), got.length - 1)
    const text = got.toString('utf8')
    assert.match(text, /C53300\0/)
    assert.match(text, /more than 1 connections at once/)
    first.destroy()
  })

  it('the ErrorResponse carries severity, SQLSTATE and message fields', () => {
    const b = pgErrorResponse('denied', 'nope')
    assert.deepEqual(b.subarray(5).toString('latin1').split('\0'), [
      'SFATAL',
      'VFATAL',
      'C28000',
      'Mnope',
      '',
      '',
    ])
  })
})
