import assert from 'node:assert/strict'
import { connect, createServer, type Server } from 'node:net'
import { after, describe, it } from 'node:test'
import { pino } from 'pino'
import { TcpListener } from '../proxy/tcp-listener.js'
import { createLeaseGate } from './lease-gate.js'

describe('lease gate', () => {
  it('serves on the VIP only while the lease runs on the monotonic clock; other addresses are never gated', () => {
    let now = 1_000
    const gate = createLeaseGate({ mono: () => now, addresses: ['198.18.0.100', 'fd00::100'] })
    assert.equal(gate.mayServe('198.18.0.100'), false, 'no lease yet')
    gate.lease(1_250)
    assert.equal(gate.mayServe('198.18.0.100'), true)
    assert.equal(gate.mayServe('::ffff:198.18.0.100'), true)
    now = 1_250
    // a pause: the clock moved past the lease before any timer could release the VIP
    assert.equal(gate.mayServe('198.18.0.100'), false, 'the lease ends at its time, not when a timer runs')
    assert.equal(gate.mayServe('fd00:0:0::100'), false, 'the same IPv6 address written another way')
    assert.equal(gate.mayServe('198.18.0.1'), true, 'not a VIP')
    assert.equal(gate.mayServe(undefined), true)
    gate.lease(5_000)
    assert.equal(gate.mayServe('fd00::100'), true)
    gate.lease(null)
    assert.equal(gate.mayServe('fd00::100'), false)
    assert.equal(gate.refused, 4)
    gate.setAddresses([])
    assert.equal(gate.mayServe('fd00::100'), true)
  })
})

describe('TcpListener with a lease gate', () => {
  const servers: Server[] = []
  const listeners: TcpListener[] = []
  after(async () => {
    for (const l of listeners) await l.drain(0)
    for (const s of servers) await new Promise((r) => s.close(r))
  })

  /** what the client got: the backend's greeting, or the error the reset gave */
  const dial = (port: number) =>
    new Promise<string>((resolve) => {
      const s = connect({ host: '127.0.0.1', port })
      let data = ''
      s.setEncoding('utf8')
      s.on('data', (d) => {
        data += d
        if (data.includes('\n')) {
          s.destroy()
          resolve(data.trim())
        }
      })
      s.on('error', (e: NodeJS.ErrnoException) => resolve(e.code ?? 'error'))
      s.on('close', () => resolve(data.trim() || 'closed'))
      s.setTimeout(3_000, () => {
        s.destroy()
        resolve('timeout')
      })
    })

  it('resets a connection to the VIP at accept when the lease has run out, and proxies it while it runs', async () => {
    const backend = createServer((s) => {
      s.on('error', () => undefined)
      s.end('db\n')
    })
    servers.push(backend)
    await new Promise<void>((r) => backend.listen(0, '127.0.0.1', r))
    const bport = (backend.address() as { port: number }).port
    let now = 0
    // 127.0.0.1 plays the VIP: the gate looks at the accepted socket's local address
    const gate = createLeaseGate({ mono: () => now, addresses: ['127.0.0.1'] })
    const l = new TcpListener(
      {
        name: 'gated',
        host: '127.0.0.1',
        port: 0,
        balance: 'roundrobin',
        maxconn: 10,
        queueSize: 10,
        queueTimeoutMs: 1_000,
        connectTimeoutMs: 1_000,
        idleTimeoutMs: 5_000,
        keepAliveMs: 0,
      },
      { candidates: () => [{ id: 'db', host: '127.0.0.1', port: bport, weight: 1, maxconn: 10 }] },
      pino({ level: 'silent' }),
      undefined,
      null,
      { leaseGate: gate },
    )
    listeners.push(l)
    const { port } = await l.start()
    assert.equal(await dial(port), 'ECONNRESET', 'no lease: reset at accept')
    gate.lease(100)
    assert.equal(await dial(port), 'db')
    now = 100
    assert.equal(await dial(port), 'ECONNRESET', 'lease over: reset at accept')
    assert.equal(gate.refused, 2)
    assert.equal(l.counters.total, 1, 'refused connections never reached the proxy')
  })
})
