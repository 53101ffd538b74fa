import assert from 'node:assert/strict'
import { connect, createServer, type Server, type Socket } from 'node:net'
import { after, describe, it } from 'node:test'
import { setTimeout as sleep } from 'node:timers/promises'
import { type ListenerConfig, ListenerConfigSchema } from '@pgmesh/protocol'
import { pino } from 'pino'
import { ProxyService } from './proxy-service.js'
import { localIp } from './tcp-listener.js'

const log = pino({ level: 'silent' })
const servers: Server[] = []
const services: ProxyService[] = []

after(async () => {
  for (const p of services) await p.drain()
  for (const s of servers) await new Promise((r) => s.close(r))
})

/** An echo backend. */
async function echo(): Promise<number> {
  const server = createServer((s) => {
    s.on('error', () => undefined)
    s.pipe(s)
  })
  servers.push(server)
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
  return (server.address() as { port: number }).port
}

async function freePort(): Promise<number> {
  const s = createServer()
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r))
  const port = (s.address() as { port: number }).port
  await new Promise((r) => s.close(r))
  return port
}

async function listener(name: string, backendPort: number, drainTimeoutMs: number): Promise<ListenerConfig> {
  return ListenerConfigSchema.parse({
    name,
    bind: `127.0.0.1:${await freePort()}`,
    role: 'servers',
    servers: [{ address: `127.0.0.1:${backendPort}` }],
    drainTimeoutMs,
  })
}

/** Connects; resolves with the socket, or with the error code when the connection fails. */
function dial(port: number): Promise<Socket | string> {
  return new Promise((done) => {
    const s = connect({ host: '127.0.0.1', port })
    s.once('connect', () => done(s))
    s.once('error', (e: NodeJS.ErrnoException) => done(e.code ?? e.message))
  })
}

async function roundTrip(s: Socket, text: string): Promise<string> {
  const got = new Promise<string>((done) => s.once('data', (d) => done(d.toString())))
  s.write(text)
  return await got
}

describe('proxy service: maintenance pause and resume', () => {
  it('refuses new connections at once, keeps sessions, and listens again on resume', async () => {
    const cfg = await listener('l1', await echo(), 10_000)
    const proxy = new ProxyService(log)
    services.push(proxy)
    await proxy.apply([cfg])
    const session = await dial(cfg.bind.port)
    assert.ok(typeof session !== 'string', `connect failed: ${String(session)}`)
    assert.equal(await roundTrip(session, 'a'), 'a')

    const paused = proxy.pause()
    const t0 = Date.now()
    assert.equal(await dial(cfg.bind.port), 'ECONNREFUSED')
    assert.ok(Date.now() - t0 < 500, 'refused fast')
    assert.equal(proxy.paused, true)
    assert.equal(await roundTrip(session, 'b'), 'b', 'an established session keeps working')
    assert.equal(proxy.activeSessions(), 1)

    assert.deepEqual(await proxy.resume(), [])
    await paused
    const again = await dial(cfg.bind.port)
    assert.ok(typeof again !== 'string', `connect after resume failed: ${String(again)}`)
    assert.equal(await roundTrip(again, 'c'), 'c')
    assert.equal(await roundTrip(session, 'd'), 'd', 'resume does not cut the old session')
    assert.equal(proxy.status()[0]?.cut, 0)
    session.destroy()
    again.destroy()
  })

  it('closes the sessions still open after drainTimeoutMs', async () => {
    const cfg = await listener('l2', await echo(), 200)
    const proxy = new ProxyService(log)
    services.push(proxy)
    await proxy.apply([cfg])
    const session = await dial(cfg.bind.port)
    assert.ok(typeof session !== 'string')
    await roundTrip(session, 'x')
    const closed = new Promise<void>((done) => session.once('close', () => done()))
    const t0 = Date.now()
    await proxy.pause()
    await closed
    const took = Date.now() - t0
    assert.ok(took >= 150 && took < 2_000, `pause took ${took} ms`)
    assert.equal(proxy.status()[0]?.cut, 1)
    await proxy.resume()
  })

  it('a listener applied while paused stays closed until resume', async () => {
    const backend = await echo()
    const proxy = new ProxyService(log)
    services.push(proxy)
    await proxy.pause()
    const cfg = await listener('l3', backend, 1_000)
    const r = await proxy.apply([cfg])
    assert.deepEqual(r.started, ['l3'])
    assert.equal(await dial(cfg.bind.port), 'ECONNREFUSED')
    await proxy.resume()
    const s = await dial(cfg.bind.port)
    assert.ok(typeof s !== 'string')
    assert.equal(await roundTrip(s, 'y'), 'y')
    s.destroy()
    await sleep(10)
  })
})

describe('proxy service: sessions by local address', () => {
  it('counts the clients that connected to an address until they close, draining listeners included', async () => {
    const cfg = await listener('l4', await echo(), 1_000)
    const proxy = new ProxyService(log)
    services.push(proxy)
    await proxy.apply([cfg])
    assert.equal(proxy.sessionsTo('127.0.0.1'), 0)
    const a = await dial(cfg.bind.port)
    const b = await dial(cfg.bind.port)
    assert.ok(typeof a !== 'string' && typeof b !== 'string')
    assert.equal(await roundTrip(a, 'a'), 'a')
    assert.equal(await roundTrip(b, 'b'), 'b')
    assert.equal(proxy.sessionsTo('127.0.0.1'), 2)
    assert.equal(proxy.sessionsTo('::ffff:127.0.0.1'), 2, 'an IPv4-mapped address is the same address')
    assert.equal(proxy.sessionsTo('127.0.0.2'), 0)
    a.destroy()
    for (let i = 0; i < 100 && proxy.sessionsTo('127.0.0.1') !== 1; i++) await sleep(10)
    assert.equal(proxy.sessionsTo('127.0.0.1'), 1)
    // a listener a reload removed still counts while it drains
    await proxy.apply([])
    assert.equal(proxy.sessionsTo('127.0.0.1'), 1)
    b.destroy()
    for (let i = 0; i < 100 && proxy.sessionsTo('127.0.0.1') !== 0; i++) await sleep(10)
    assert.equal(proxy.sessionsTo('127.0.0.1'), 0)
  })

  it('compares addresses as sockets report them', () => {
    assert.equal(localIp('::ffff:198.18.0.100'), '198.18.0.100')
    assert.equal(localIp('::FFFF:198.18.0.100'), '198.18.0.100')
    assert.equal(localIp('fd00:0:0::100'), 'fd00::100')
    assert.equal(localIp('FD00::1'), 'fd00::1')
    assert.equal(localIp('198.18.0.1'), '198.18.0.1')
    assert.equal(localIp(undefined), '')
  })
})
