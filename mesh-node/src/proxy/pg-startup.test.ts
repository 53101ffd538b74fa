import assert from 'node:assert/strict'
import { connect, createServer, type Server, type Socket } from 'node:net'
import { after, describe, it } from 'node:test'
import { setTimeout as sleep } from 'node:timers/promises'
import { pino } from 'pino'
import { StartupPeek } from './pg-startup.js'
import { type BackendTarget, type ListenerSpec, TcpListener } from './tcp-listener.js'

function startupPacket(user = 'alice'): Buffer {
  const body = Buffer.from(`user\0${user}\0database\0postgres\0\0`, 'latin1')
  const head = Buffer.alloc(8)
  head.writeUInt32BE(8 + body.length, 0)
  head.writeUInt32BE(196608, 4)
  return Buffer.concat([head, body])
}

function request(code: number, length = 8): Buffer {
  const b = Buffer.alloc(length)
  b.writeUInt32BE(length, 0)
  b.writeUInt32BE(code, 4)
  return b
}

const SSL_REQUEST = request(80877103)
const GSSENC_REQUEST = request(80877104)

function errorResponse(sqlState: string, message: string): Buffer {
  const fields = Buffer.from(`SFATAL\0VFATAL\0C${sqlState}\0M${message}\0\0`, 'latin1')
  const head = Buffer.alloc(5)
  head.write('E', 0, 'latin1')
  head.writeUInt32BE(4 + fields.length, 1)
  return Buffer.concat([head, fields])
}

/** AuthenticationOk then ReadyForQuery: what a trusting server answers a startup packet with. */
const AUTH_OK = Buffer.from([0x52, 0, 0, 0, 8, 0, 0, 0, 0, 0x5a, 0, 0, 0, 5, 0x49])

describe('PostgreSQL startup peek', () => {
  it('commits on an authentication request, passing it on whole', () => {
    const p = new StartupPeek()
    assert.equal(p.client(startupPacket()), 'inspect')
    assert.equal(p.awaitingReply(), true)
    const step = p.server(AUTH_OK)
    assert.equal(step.state, 'commit')
    assert.deepEqual(step.toClient, AUTH_OK)
  })

  it('rejects a server that answers 57P03, and replays the startup packet', () => {
    const p = new StartupPeek()
    const s = startupPacket()
    p.client(s.subarray(0, 5))
    assert.equal(p.awaitingReply(), false, 'half a packet asks nothing yet')
    p.client(s.subarray(5))
    const e = errorResponse('57P03', 'the database system is shutting down')
    // the error arrives in pieces: nothing is decided, nothing passed on, until it is whole
    assert.deepEqual(p.server(e.subarray(0, 3)), { state: 'inspect', toClient: null })
    assert.deepEqual(p.server(e.subarray(3, 20)), { state: 'inspect', toClient: null })
    assert.equal(p.server(e.subarray(20)).state, 'reject')
    assert.deepEqual(p.replay(), s)
    // the next server is judged afresh
    assert.equal(p.server(AUTH_OK).state, 'commit')
  })

  it('passes any other error on (a wrong password is the client’s to see)', () => {
    const p = new StartupPeek()
    p.client(startupPacket())
    const e = errorResponse('28P01', 'password authentication failed')
    assert.deepEqual(p.server(e), { state: 'commit', toClient: e })
  })

  it('SSLRequest answered N: the N goes to the client at once, the replay is the startup packet alone', () => {
    const p = new StartupPeek()
    assert.equal(p.client(SSL_REQUEST), 'inspect')
    assert.equal(p.awaitingReply(), true)
    const n = p.server(Buffer.from('N'))
    assert.equal(n.state, 'inspect')
    assert.equal(n.toClient?.toString(), 'N')
    assert.equal(p.awaitingReply(), false)
    p.client(startupPacket())
    assert.equal(p.server(errorResponse('57P03', 'the database system is starting up')).state, 'reject')
    assert.deepEqual(p.replay(), startupPacket())
  })

  it('encryption accepted (S, G) commits: the rest is opaque', () => {
    for (const [req, answer] of [
      [SSL_REQUEST, 'S'],
      [GSSENC_REQUEST, 'G'],
    ] as const) {
      const p = new StartupPeek()
      p.client(req)
      const step = p.server(Buffer.from(`${answer}\x16\x03`, 'latin1'))
      assert.equal(step.state, 'commit')
      assert.equal(step.toClient?.toString('latin1'), `${answer}\x16\x03`)
    }
  })

  it('a cancel request, an oversized packet or garbage are not inspected', () => {
    assert.equal(new StartupPeek().client(request(80877102, 16)), 'commit')
    assert.equal(new StartupPeek(100).client(Buffer.concat([startupPacket(), Buffer.alloc(200)])), 'commit')
    const big = request(196608, 50_000)
    assert.equal(new StartupPeek().client(big.subarray(0, 8)), 'commit')
    assert.equal(new StartupPeek().client(Buffer.from('GET / HTTP/1.1\r\n')), 'commit')
  })

  it('server bytes before the client finished asking commit', () => {
    const p = new StartupPeek()
    p.client(startupPacket().subarray(0, 4))
    const e = errorResponse('57P03', 'the database system is shutting down')
    assert.deepEqual(p.server(e), { state: 'commit', toClient: e })
  })

  it('release hands back what is held', () => {
    const p = new StartupPeek()
    p.client(startupPacket())
    const e = errorResponse('57P03', 'x')
    p.server(e.subarray(0, 4))
    assert.deepEqual(p.release(), e.subarray(0, 4))
  })
})

const log = pino({ level: 'silent' })
const servers: Server[] = []
const listeners: TcpListener[] = []

after(async () => {
  for (const l of listeners) await l.drain(0)
  for (const s of servers) await new Promise((r) => s.close(r))
})

interface FakePg {
  target: BackendTarget
  /** connections it accepted */
  connections: number
  /** the bytes of every startup packet it read, in order */
  readonly startups: Buffer[]
}

/**
 * A fake PostgreSQL server: answers an SSLRequest with `ssl` ('N' by default; after 'S' it echoes
 * whatever comes, as if encrypted), reads the startup
 * packet, then `onStartup` takes the socket (by default: AuthenticationOk, ReadyForQuery, then an
 * echo of everything after, prefixed by its name so the client knows where it landed).
 */
async function fakePg(
  name: string,
  opts: { ssl?: string; onStartup?: (s: Socket) => void } = {},
): Promise<FakePg> {
  const fake: FakePg = {
    target: { id: name, host: '127.0.0.1', port: 0, weight: 1, maxconn: 100 },
    connections: 0,
    startups: [],
  }
  const server = createServer({ allowHalfOpen: true }, (s) => {
    fake.connections++
    s.on('error', () => undefined)
    let buf = Buffer.alloc(0)
    const onData = (d: Buffer) => {
      buf = Buffer.concat([buf, d])
      while (buf.length >= 8) {
        const length = buf.readUInt32BE(0)
        if (length === 8 && buf.readUInt32BE(4) === 80877103) {
          buf = buf.subarray(8)
          s.write(opts.ssl ?? 'N')
          if (opts.ssl === 'S') {
            // "TLS" from here on: an echo
            s.off('data', onData)
            if (buf.length > 0) s.write(buf)
            s.pipe(s)
            return
          }
          continue
        }
        if (buf.length < length) return
        fake.startups.push(buf.subarray(0, length))
        const rest = buf.subarray(length)
        s.off('data', onData)
        if (opts.onStartup !== undefined) return opts.onStartup(s)
        s.write(AUTH_OK)
        s.write(`${name}:`)
        if (rest.length > 0) s.write(rest)
        s.pipe(s)
        return
      }
    }
    s.on('data', onData)
  })
  servers.push(server)
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
  fake.target = { ...fake.target, port: (server.address() as { port: number }).port }
  return fake
}

/** Answers the startup packet with 57P03 and closes, as a postmaster that is shutting down does. */
const shuttingDown = (s: Socket) => s.end(errorResponse('57P03', 'the database system is shutting down'))

function spec(over: Partial<ListenerSpec> = {}): ListenerSpec {
  return {
    name: 'pg',
    host: '127.0.0.1',
    port: 0,
    balance: 'first',
    maxconn: 100,
    queueSize: 10,
    queueTimeoutMs: 2_000,
    connectTimeoutMs: 1_000,
    idleTimeoutMs: 10_000,
    keepAliveMs: 0,
    startupPeek: true,
    ...over,
  }
}

async function listen(s: ListenerSpec, candidates: () => readonly BackendTarget[]) {
  const l = new TcpListener(s, { candidates }, log)
  listeners.push(l)
  return { l, port: (await l.start()).port }
}

/** A client that sends `first` at once and `next` after `nextAfter` bytes came back; collects all until close. */
function pgClient(
  port: number,
  first: Buffer,
  opts: { next?: Buffer; nextAfter?: number; until?: (got: Buffer) => boolean } = {},
): Promise<Buffer> {
  return new Promise((done, fail) => {
    const c = connect({ host: '127.0.0.1', port })
    let got = Buffer.alloc(0)
    let sent = false
    const t = setTimeout(() => {
      c.destroy()
      fail(new Error(`no end within 5 s (got ${JSON.stringify(got.toString('latin1'))})`))
    }, 5_000)
    c.on('data', (d: Buffer) => {
      got = Buffer.concat([got, d])
      if (!sent && opts.next !== undefined && got.length >= (opts.nextAfter ?? 1)) {
        sent = true
        c.write(opts.next)
      }
      if (opts.until?.(got)) c.end()
    })
    c.on('error', () => undefined)
    c.on('close', () => {
      clearTimeout(t)
      done(got)
    })
    c.on('connect', () => c.write(first))
  })
}

const endsWith = (suffix: string) => (got: Buffer) => got.toString('latin1').endsWith(suffix)

describe('TCP listener, PostgreSQL-aware session start', () => {
  it('a server that answers 57P03 is dropped: the client lands on the next one and never sees the error', async () => {
    const down = await fakePg('down', { onStartup: shuttingDown })
    const up = await fakePg('up')
    const { l, port } = await listen(spec(), () => [down.target, up.target])
    const startup = startupPacket()
    const got = await pgClient(port, Buffer.concat([startup, Buffer.from('ping')]), {
      until: endsWith('ping'),
    })
    assert.deepEqual(got, Buffer.concat([AUTH_OK, Buffer.from('up:ping')]))
    assert.equal(down.connections, 1)
    // the healthy server got the very bytes the client sent
    assert.deepEqual(up.startups, [startup])
    assert.equal(l.backendCounters().get('down')?.connectErrors, 1)
    // held off: the next client goes straight to the healthy one
    await pgClient(port, startupPacket(), { until: endsWith('up:') })
    assert.equal(down.connections, 1)
  })

  it('with no other server, the client waits in the queue until the routes change', async () => {
    const down = await fakePg('only-down', { onStartup: shuttingDown })
    const up = await fakePg('promoted')
    let routes = [down.target]
    const { l, port } = await listen(spec(), () => routes)
    const pending = pgClient(port, startupPacket(), { until: endsWith('promoted:') })
    await sleep(500)
    // it was tried again after each hold-off, not in a tight loop
    assert.ok(down.connections >= 2 && down.connections <= 4, `${down.connections} connections`)
    assert.equal(l.counters.queued, 1)
    routes = [up.target]
    l.kick()
    assert.deepEqual(await pending, Buffer.concat([AUTH_OK, Buffer.from('promoted:')]))
    assert.deepEqual(up.startups, [startupPacket()])
  })

  it('a server that closes before answering is treated the same', async () => {
    const mute = await fakePg('mute', { onStartup: (s) => s.destroy() })
    const up = await fakePg('up-after-mute')
    const { port } = await listen(spec(), () => [mute.target, up.target])
    const got = await pgClient(port, startupPacket(), { until: endsWith('up-after-mute:') })
    assert.deepEqual(got, Buffer.concat([AUTH_OK, Buffer.from('up-after-mute:')]))
    assert.equal(mute.connections, 1)
  })

  it("gives up at the queue timeout with its own 57P03, not the backend's error", async () => {
    const down = await fakePg('always-down', { onStartup: shuttingDown })
    const { l, port } = await listen(spec({ queueTimeoutMs: 400, role: 'primary' }), () => [down.target])
    const started = Date.now()
    const got = await pgClient(port, startupPacket())
    assert.equal(got[0], 0x45, 'an ErrorResponse')
    const text = got.toString('utf8')
    assert.match(text, /C57P03\0/)
    assert.match(text, /pgmesh: no primary server took the connection within 400 ms \(listener "pg"\)/)
    assert.doesNotMatch(text, /shutting down/)
    assert.ok(Date.now() - started >= 350, 'closed before the queue timeout')
    assert.equal(l.counters.queueTimeouts, 1)
  })

  it('a normal session is spliced untouched, later error-looking bytes included', async () => {
    const up = await fakePg('plain')
    const { l, port } = await listen(spec(), () => [up.target])
    const later = errorResponse('57P03', 'not at start: just data')
    const got = await pgClient(port, startupPacket(), {
      next: later,
      nextAfter: AUTH_OK.length,
      until: (g) => g.length >= AUTH_OK.length + 'plain:'.length + later.length,
    })
    assert.deepEqual(got, Buffer.concat([AUTH_OK, Buffer.from('plain:'), later]))
    for (let i = 0; i < 50 && (l.backendCounters().get('plain')?.active ?? 1) > 0; i++) await sleep(10)
    const b = l.backendCounters().get('plain')!
    assert.equal(b.connectErrors, 0)
    assert.equal(b.bytesIn, startupPacket().length + later.length)
    assert.equal(b.bytesOut, got.length)
  })

  it('SSLRequest answered N, then the startup packet: replayed to the next server without the SSLRequest', async () => {
    const down = await fakePg('ssl-down', { onStartup: shuttingDown })
    const up = await fakePg('ssl-up')
    const { port } = await listen(spec(), () => [down.target, up.target])
    const startup = startupPacket('bob')
    // the client sends its startup packet only once it has its one 'N'
    const got = await pgClient(port, SSL_REQUEST, {
      next: startup,
      nextAfter: 1,
      until: endsWith('ssl-up:'),
    })
    assert.deepEqual(got, Buffer.concat([Buffer.from('N'), AUTH_OK, Buffer.from('ssl-up:')]))
    assert.deepEqual(down.startups, [startup])
    assert.deepEqual(up.startups, [startup])
  })

  it("'S' commits: the encrypted stream is passed through, whatever it holds", async () => {
    const tls = errorResponse('57P03', 'opaque bytes that only look like an error')
    const ssl = await fakePg('ssl', { ssl: 'S' })
    const other = await fakePg('never')
    const { port } = await listen(spec(), () => [ssl.target, other.target])
    const got = await pgClient(port, SSL_REQUEST, {
      next: tls,
      nextAfter: 1,
      until: (g) => g.length >= 1 + tls.length,
    })
    assert.deepEqual(got, Buffer.concat([Buffer.from('S'), tls]))
    assert.equal(other.connections, 0)
  })

  it('a `servers` listener (no startup peek) passes a 57P03 on as it is', async () => {
    const down = await fakePg('raw-down', { onStartup: shuttingDown })
    const { port } = await listen(spec({ startupPeek: false }), () => [down.target])
    const got = await pgClient(port, startupPacket())
    assert.deepEqual(got, errorResponse('57P03', 'the database system is shutting down'))
  })
})
