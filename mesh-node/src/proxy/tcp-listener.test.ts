import assert from 'node:assert/strict'
import { randomBytes, randomInt } from 'node:crypto'
import { once } from 'node:events'
import { connect, createServer, type Server, type Socket } from 'node:net'
import { after, describe, it } from 'node:test'
import { setTimeout as sleep } from 'node:timers/promises'
import { pino } from 'pino'
import { type BackendTarget, type ListenerSpec, TcpListener } from './tcp-listener.js'

const log = pino({ level: 'silent' })
const servers: Server[] = []
const listeners: TcpListener[] = []

after(async () => {
  for (const l of listeners) await l.drain(0)
  for (const s of servers) {
    await new Promise((r) => s.close(r))
  }
})

/** A backend that greets with its name, then echoes; `end` from the client ends its side too. */
async function backend(name: string, onSocket?: (s: Socket) => void): Promise<BackendTarget> {
  const server = createServer({ allowHalfOpen: true }, (s) => {
    s.on('error', () => undefined)
    if (onSocket !== undefined) return onSocket(s)
    s.write(`${name}\n`)
    s.pipe(s)
  })
  servers.push(server)
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
  const a = server.address() as { port: number }
  return { id: name, host: '127.0.0.1', port: a.port, weight: 1, maxconn: 100 }
}

function spec(over: Partial<ListenerSpec> = {}): ListenerSpec {
  return {
    name: 'test',
    host: '127.0.0.1',
    port: 0,
    balance: 'roundrobin',
    maxconn: 100,
    queueSize: 10,
    queueTimeoutMs: 2_000,
    connectTimeoutMs: 1_000,
    idleTimeoutMs: 10_000,
    keepAliveMs: 0,
    ...over,
  }
}

async function listen(s: ListenerSpec, candidates: () => readonly BackendTarget[]) {
  const l = new TcpListener(s, { candidates }, log)
  listeners.push(l)
  const bound = await l.start()
  return { l, port: bound.port }
}

/** Connects, optionally sends, and collects everything until the proxy closes the connection. */
function session(
  port: number,
  send?: string,
  timeoutMs = 3_000,
): Promise<{ data: string; closedAt: number }> {
  return new Promise((done, fail) => {
    const c = connect({ host: '127.0.0.1', port })
    let data = ''
    const t = setTimeout(() => {
      c.destroy()
      fail(new Error(`no close within ${timeoutMs} ms (got ${JSON.stringify(data)})`))
    }, timeoutMs)
    c.setEncoding('utf8')
    c.on('data', (d) => {
      data += d
    })
    c.on('error', () => undefined)
    c.on('close', () => {
      clearTimeout(t)
      done({ data, closedAt: Date.now() })
    })
    c.on('connect', () => {
      if (send !== undefined) c.end(send)
    })
  })
}

describe('TCP listener', () => {
  it('spreads connections round robin and splices both ways with half-close', async () => {
    const a = await backend('a')
    const b = await backend('b')
    const { l, port } = await listen(spec(), () => [a, b])
    // this Node passes the direct-reads self-test: clients are read without 'data' events
    assert.equal(l.clientReads, 'direct')
    const got = [] as string[]
    for (let i = 0; i < 4; i++) got.push((await session(port, 'ping\n')).data)
    assert.deepEqual(got.map((g) => g.split('\n')[0]).sort(), ['a', 'a', 'b', 'b'])
    // the client's FIN reached the backend, whose echo and FIN came back: nothing lost
    for (const g of got) assert.match(g, /^[ab]\nping\n$/)
  })

  it('queues while no backend is routable and serves the queue once one is', async () => {
    const a = await backend('late')
    let routable: BackendTarget[] = []
    const { l, port } = await listen(spec(), () => routable)
    const pending = session(port, 'x')
    await sleep(100)
    assert.equal(l.counters.queued, 1)
    routable = [a]
    l.kick()
    assert.match((await pending).data, /^late\n/)
    assert.equal(l.counters.queued, 0)
  })

  it('closes a queued client after the queue timeout, and refuses beyond the queue size', async () => {
    const { l, port } = await listen(spec({ queueSize: 1, queueTimeoutMs: 200 }), () => [])
    const started = Date.now()
    const first = session(port)
    await sleep(50)
    const second = await session(port)
    assert.equal(second.data, '')
    assert.equal(l.counters.refused, 1)
    const r = await first
    assert.ok(r.closedAt - started >= 190, 'closed before the queue timeout')
    assert.equal(l.counters.queueTimeouts, 1)
  })

  it('cuts the sessions to a backend on demand, leaving the others', async () => {
    const a = await backend('cut-a')
    const b = await backend('cut-b')
    const { l, port } = await listen(spec({ balance: 'roundrobin' }), () => [a, b])
    const s1 = session(port, undefined, 5_000)
    const s2 = session(port, undefined, 5_000)
    await sleep(150)
    assert.deepEqual([...l.activeBackends()].sort(), ['cut-a', 'cut-b'])
    assert.equal(l.cutBackend('cut-a', 'no longer primary'), 1)
    const closed = await Promise.race([s1, s2])
    assert.match(closed.data, /^cut-a\n/)
    for (let i = 0; i < 50 && l.activeBackends().has('cut-a'); i++) await sleep(10)
    assert.deepEqual([...l.activeBackends()], ['cut-b'])
    l.cutBackend('cut-b', 'test over')
    await Promise.all([s1, s2])
  })

  it('redispatches a failed connect to another backend', async () => {
    const dead: BackendTarget = { id: 'dead', host: '127.0.0.1', port: 1, weight: 1, maxconn: 10 }
    const a = await backend('alive')
    const { l, port } = await listen(spec({ balance: 'first' }), () =>
      [dead, a].filter((b) => b.id !== 'dead' || l.counters.connectErrors === 0),
    )
    assert.match((await session(port, 'x')).data, /^alive\n/)
    assert.equal(l.backendCounters().get('dead')?.connectErrors, 1)
  })

  it('a client that stops reading does not make the proxy buffer without bound', async () => {
    let written = 0
    const flood = await backend('flood', (s) => {
      const chunk = Buffer.alloc(64 * 1024, 1)
      const pump = () => {
        while (written < 200 * 1024 * 1024 && s.write(chunk)) written += chunk.length
        if (written < 200 * 1024 * 1024) s.once('drain', pump)
      }
      pump()
    })
    const { l, port } = await listen(spec(), () => [flood])
    const c = connect({ host: '127.0.0.1', port })
    c.pause() // never reads
    await sleep(500)
    assert.ok(written < 16 * 1024 * 1024, `backend wrote ${written} bytes into a client that reads nothing`)
    c.destroy()
    // once the session ends its byte counts are in: what the proxy read from the backend
    const through = await (async () => {
      for (let i = 0; i < 100; i++) {
        const b = l.backendCounters().get('flood')
        if (b !== undefined && b.active === 0) return b.bytesOut
        await sleep(10)
      }
      return Number.POSITIVE_INFINITY
    })()
    assert.ok(through < 16 * 1024 * 1024, `proxy read ${through} bytes`)
  })

  it('a backend that stops reading does not make the proxy buffer a client without bound', async () => {
    let sink: Socket | null = null
    const stalled = await backend('stalled', (s) => {
      sink = s
      s.pause() // never reads
    })
    const { l, port } = await listen(spec(), () => [stalled])
    const c = connect({ host: '127.0.0.1', port })
    let sent = 0
    const chunk = Buffer.alloc(64 * 1024, 2)
    await once(c, 'connect')
    const deadline = Date.now() + 500
    while (Date.now() < deadline && sent < 200 * 1024 * 1024) {
      if (c.write(chunk)) sent += chunk.length
      else await Promise.race([once(c, 'drain'), sleep(50)])
    }
    // what the client got off its hands is what the proxy read (plus the sockets' buffers)
    assert.ok(
      sent < 16 * 1024 * 1024,
      `the client wrote ${sent} bytes through to a backend that reads nothing`,
    )
    assert.equal(l.counters.active, 1)
    c.destroy()
    ;(sink as Socket | null)?.destroy()
  })

  it('keeps many concurrent streams intact (backend reads share one buffer)', async () => {
    const echo = await backend('echo', (s) => s.pipe(s))
    const { port } = await listen(spec(), () => [echo])
    const streams = Array.from({ length: 20 }, () => randomBytes(256 * 1024 + randomInt(64 * 1024)))
    const echoed = await Promise.all(
      streams.map(
        (data) =>
          new Promise<Buffer>((done, fail) => {
            const c = connect({ host: '127.0.0.1', port })
            const got: Buffer[] = []
            c.on('data', (d: Buffer) => got.push(d))
            c.on('error', fail)
            c.on('close', () => done(Buffer.concat(got)))
            // in pieces of random size, so reads of different sessions interleave
            c.on('connect', async () => {
              for (let i = 0; i < data.length; ) {
                const n = 1 + randomInt(32 * 1024)
                c.write(data.subarray(i, i + n))
                i += n
                if (randomInt(4) === 0) await sleep(1)
              }
              c.end()
            })
          }),
      ),
    )
    for (const [i, data] of streams.entries()) assert.ok(echoed[i]!.equals(data), `stream ${i} corrupted`)
  })

  it('closes a session idle for idleTimeoutMs (up to a quarter more), not a busy one', async () => {
    const echo = await backend('idle-echo')
    const { port } = await listen(spec({ idleTimeoutMs: 200 }), () => [echo])
    const started = Date.now()
    const quiet = await session(port, undefined, 2_000)
    const quietFor = quiet.closedAt - started
    assert.ok(quietFor >= 190 && quietFor < 400, `quiet session closed after ${quietFor} ms`)

    const busy = connect({ host: '127.0.0.1', port })
    busy.on('error', () => undefined)
    let closed = false
    busy.on('close', () => {
      closed = true
    })
    for (let i = 0; i < 12; i++) {
      await sleep(50)
      busy.write('x')
    }
    assert.equal(closed, false, 'a session with traffic every 50 ms was closed')
    busy.destroy()
  })
})
