import { connect, createServer, type Server, type Socket } from 'node:net'
import type { Logger } from '../log.js'
import type { LeaseGate } from '../vip/lease-gate.js'
import { type BalanceAlgorithm, type BalancerState, newBalancerState, pickBackend } from './balancer.js'
import { StartupPeek } from './pg-startup.js'

export interface BackendTarget {
  readonly id: string
  readonly host: string
  readonly port: number
  readonly weight: number
  /** most connections this listener opens to it at once */
  readonly maxconn: number
}

export interface ListenerSpec {
  readonly name: string
  readonly host: string
  readonly port: number
  readonly balance: BalanceAlgorithm
  /** most client connections at once; more wait in the queue */
  readonly maxconn: number
  /** clients waiting for a backend (none routable, or all at maxconn); beyond it they are refused */
  readonly queueSize: number
  /** the longest a client waits for a backend that takes it, from its accept */
  readonly queueTimeoutMs: number
  readonly connectTimeoutMs: number
  /** a connection with no traffic either way for this long (up to a quarter more) is closed */
  readonly idleTimeoutMs: number
  /** TCP keepalive probes on both sides after this much idle time; 0 = off */
  readonly keepAliveMs: number
  /**
   * PostgreSQL backends: read each server's first answer before committing a client to it; a
   * server that is not accepting sessions (57P03, or it closes without answering) is skipped and
   * the client's startup replayed to another one, or the client waits in the queue for one
   */
  readonly startupPeek?: boolean
}

export interface ListenerRouting {
  /** the backends this listener may send a new connection to now, in preference order */
  candidates(): readonly BackendTarget[]
}

export interface BackendCounters {
  active: number
  total: number
  /** connects that failed, and sessions it refused at start (57P03) */
  connectErrors: number
  /** client → backend bytes of ended sessions */
  bytesIn: number
  /** backend → client bytes of ended sessions */
  bytesOut: number
  cut: number
}

export interface ListenerCounters {
  active: number
  total: number
  queued: number
  refused: number
  queueTimeouts: number
  connectErrors: number
  cut: number
}

/** A backend that failed a connect or refused a session is skipped by new dispatches this long. */
export const HOLD_OFF_MS = 200

/** idle checks per idle timeout */
const IDLE_CHECKS = 4

/**
 * Every backend socket reads into this one buffer (net's `onread`) and each read is copied out at
 * once: no stream machinery per chunk on that side, and no read buffer per connection. Sharing is
 * safe because a read's callback runs before the next read anywhere in the process.
 */
const READ_BUFFER = Buffer.allocUnsafe(64 * 1024)

function takeRead(n: number): Buffer {
  const b = Buffer.allocUnsafe(n)
  READ_BUFFER.copy(b, 0, 0, n)
  return b
}

/**
 * An address as a socket's `localAddress` would compare: an IPv4-mapped IPv6 address (a dual-stack
 * listener) as plain IPv4, IPv6 in canonical lower-case form.
 */
export function localIp(address: string | undefined): string {
  if (address === undefined) return ''
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address)
  if (mapped !== null) return mapped[1]!
  if (!address.includes(':')) return address
  try {
    return new URL(`http://[${address}]/`).hostname.slice(1, -1)
  } catch {
    return address.toLowerCase()
  }
}

/** One client, from accept to close: waiting in the queue, trying a backend, or spliced to one. */
interface Conn {
  readonly client: Socket
  /** Date.now() after which it stops waiting for a backend */
  readonly deadline: number
  /** backends it may still try after one failed (role listeners retry until the deadline instead) */
  retriesLeft: number
  /** the session start under inspection; null once committed to a backend (or never inspected) */
  peek: StartupPeek | null
  upstream: Socket | null
  backend: string | null
  connected: boolean
  /** `client.bytesRead` when this backend was picked, less what it was replayed: for bytesIn */
  readBase: number
  /** the queue timeout, while queued */
  timer: NodeJS.Timeout | null
  /** the idle check, while connected */
  idle: NodeJS.Timeout | null
}

/** One listening socket: accept, queue, pick a backend, connect, splice both ways. */
export class TcpListener {
  readonly #log: Logger
  readonly #balancer: BalancerState = newBalancerState()
  readonly #sessions = new Set<Conn>()
  readonly #queue: Conn[] = []
  readonly #backends = new Map<string, BackendCounters>()
  /** backend id → Date.now() until which new dispatches skip it */
  readonly #holds = new Map<string, number>()
  readonly counters: ListenerCounters = {
    active: 0,
    total: 0,
    queued: 0,
    refused: 0,
    queueTimeouts: 0,
    connectErrors: 0,
    cut: 0,
  }
  #server: Server | null = null
  #accepting = false
  #spec: ListenerSpec

  constructor(
    spec: ListenerSpec,
    private readonly routing: ListenerRouting,
    logger: Logger,
    /** `leaseGate`: connections to the VIP are reset at accept unless this node's lease runs (vip/lease-gate.ts) */
    private readonly gate: { readonly leaseGate?: Pick<LeaseGate, 'mayServe'> } = {},
  ) {
    this.#spec = spec
    this.#log = logger.child({ component: 'proxy', listener: spec.name })
  }

  get spec(): ListenerSpec {
    return this.#spec
  }

  /** Applies changed limits and timeouts to new connections (the bind address cannot change). */
  update(spec: ListenerSpec): void {
    this.#spec = spec
    this.kick()
  }

  async start(): Promise<{ host: string; port: number }> {
    const server = createServer({ pauseOnConnect: true, allowHalfOpen: true }, (s) => this.#accept(s))
    server.on('error', (e) => this.#log.error({ err: e.message }, 'listener error'))
    await new Promise<void>((done, fail) => {
      server.once('error', fail)
      server.listen(this.#spec.port, this.#spec.host, () => {
        server.off('error', fail)
        done()
      })
    })
    this.#server = server
    this.#accepting = true
    const a = server.address()
    const bound =
      typeof a === 'object' && a !== null ? { host: a.address, port: a.port } : { host: '', port: 0 }
    this.#log.info({ address: `${bound.host}:${bound.port}`, balance: this.#spec.balance }, 'listening')
    return bound
  }

  backendCounters(): ReadonlyMap<string, Readonly<BackendCounters>> {
    return this.#backends
  }

  /** Routes may have changed (a primary appeared): serve the queue. */
  kick(): void {
    while (this.#queue.length > 0) {
      const w = this.#queue[0]!
      if (!this.#tryDispatch(w)) return
      this.#queue.shift()
      clearTimeout(w.timer ?? undefined)
      w.timer = null
      this.counters.queued = this.#queue.length
    }
  }

  /** Closes every session to `backend` (it stopped being what this listener routes to). */
  cutBackend(backend: string, reason: string): number {
    let n = 0
    for (const s of this.#sessions) {
      if (s.backend !== backend) continue
      s.client.destroy()
      s.upstream?.destroy()
      n++
    }
    if (n > 0) {
      this.counters.cut += n
      const b = this.#counter(backend)
      b.cut += n
      this.#log.warn({ backend, sessions: n, reason }, `closed ${n} session(s) to ${backend}: ${reason}`)
    }
    return n
  }

  /** Which backends have open sessions now. */
  activeBackends(): Set<string> {
    const out = new Set<string>()
    for (const s of this.#sessions) if (s.backend !== null) out.add(s.backend)
    return out
  }

  /** Clients (in a session, or queued for one) that connected to the local address `ip`, given in {@link localIp} form. */
  sessionsTo(ip: string): number {
    let n = 0
    for (const s of this.#sessions) if (localIp(s.client.localAddress) === ip) n++
    for (const w of this.#queue) if (localIp(w.client.localAddress) === ip) n++
    return n
  }

  /**
   * Closes the listening socket (new connections are refused) and drops the queue, but keeps
   * established sessions; `start()` listens again.
   */
  stopAccepting(): void {
    this.#accepting = false
    this.#server?.close()
    this.#server = null
    this.#dropQueue()
  }

  get accepting(): boolean {
    return this.#accepting
  }

  /** Stops accepting; resolves when every session ended or `timeoutMs` passed (then closes the rest). */
  async drain(timeoutMs: number): Promise<void> {
    this.#accepting = false
    const server = this.#server
    this.#server = null
    const closed =
      server === null ? Promise.resolve() : new Promise<void>((done) => server.close(() => done()))
    this.#dropQueue()
    const deadline = Date.now() + timeoutMs
    while (this.#sessions.size > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20))
    for (const s of this.#sessions) {
      s.client.destroy()
      s.upstream?.destroy()
    }
    await closed
  }

  #dropQueue(): void {
    for (const w of this.#queue.splice(0)) {
      clearTimeout(w.timer ?? undefined)
      w.timer = null
      w.client.destroy()
    }
    this.counters.queued = 0
  }

  #counter(id: string): BackendCounters {
    let c = this.#backends.get(id)
    if (c === undefined) {
      c = { active: 0, total: 0, connectErrors: 0, bytesIn: 0, bytesOut: 0, cut: 0 }
      this.#backends.set(id, c)
    }
    return c
  }

  #accept(client: Socket): void {
    client.on('error', () => undefined)
    if (!this.#accepting) {
      client.destroy()
      return
    }
    if (this.gate.leaseGate?.mayServe(client.localAddress) === false) return void client.resetAndDestroy()
    this.counters.total++
    const conn: Conn = {
      client,
      deadline: Date.now() + this.#spec.queueTimeoutMs,
      retriesLeft: 1,
      peek: this.#spec.startupPeek === true ? new StartupPeek() : null,
      upstream: null,
      backend: null,
      connected: false,
      readBase: 0,
      timer: null,
      idle: null,
    }
    // explicitly paused, so the data listener does not start reading before a backend is connected
    client.pause()
    client.on('data', (chunk: Buffer) => this.#fromClient(conn, chunk))
    client.on('end', () => {
      // a client that half-closes mid-startup gets whatever this backend answers
      if (conn.peek !== null) this.#commit(conn)
      conn.upstream?.end()
    })
    client.on('drain', () => conn.upstream?.resume())
    client.on('close', (hadError) => this.#clientClosed(conn, hadError))
    if (this.#sessions.size >= this.#spec.maxconn || !this.#tryDispatch(conn)) this.#enqueue(conn)
  }

  /** `first`: it was waiting before the ones queued now (a backend turned it down) */
  #enqueue(conn: Conn, first = false): void {
    const { client } = conn
    if (this.#queue.length >= this.#spec.queueSize) {
      this.counters.refused++
      client.destroy()
      return
    }
    const left = conn.deadline - Date.now()
    if (left <= 0) {
      this.counters.queueTimeouts++
      client.destroy()
      return
    }
    conn.timer = setTimeout(() => {
      conn.timer = null
      const i = this.#queue.indexOf(conn)
      if (i >= 0) this.#queue.splice(i, 1)
      this.counters.queued = this.#queue.length
      this.counters.queueTimeouts++
      client.destroy()
    }, left)
    if (first) this.#queue.unshift(conn)
    else this.#queue.push(conn)
    this.counters.queued = this.#queue.length
  }

  /** Starts a session for `conn` if a backend can take it now; false when it must wait. */
  #tryDispatch(conn: Conn): boolean {
    if (conn.client.destroyed) return true
    if (this.#sessions.size >= this.#spec.maxconn) return false
    const now = this.#holds.size > 0 ? Date.now() : 0
    const candidates: (BackendTarget & { active: number })[] = []
    for (const b of this.routing.candidates()) {
      const active = this.#counter(b.id).active
      if (active >= b.maxconn || (now > 0 && (this.#holds.get(b.id) ?? 0) > now)) continue
      candidates.push({ ...b, active })
    }
    const picked = pickBackend(
      this.#spec.balance,
      candidates,
      this.#balancer,
      conn.client.remoteAddress ?? '',
    )
    if (picked === null) return false
    this.#connect(conn, candidates.find((b) => b.id === picked.id)!)
    return true
  }

  #connect(conn: Conn, target: BackendTarget): void {
    const spec = this.#spec
    const { client } = conn
    const counters = this.#counter(target.id)
    this.#sessions.add(conn)
    this.counters.active = this.#sessions.size
    counters.active++
    const replay = conn.peek?.replay() ?? null
    conn.backend = target.id
    conn.connected = false
    conn.readBase = client.bytesRead - (replay?.length ?? 0)
    const upstream: Socket = connect({
      host: target.host,
      port: target.port,
      allowHalfOpen: true,
      onread: { buffer: READ_BUFFER, callback: (n) => this.#fromUpstream(conn, upstream, n) },
    })
    conn.upstream = upstream
    const connectTimer = setTimeout(
      () => upstream.destroy(new Error('connect timeout')),
      spec.connectTimeoutMs,
    )
    upstream.once('connect', () => {
      conn.connected = true
      clearTimeout(connectTimer)
      counters.total++
      upstream.setNoDelay(true)
      client.setNoDelay(true)
      if (spec.keepAliveMs > 0) {
        upstream.setKeepAlive(true, spec.keepAliveMs)
        client.setKeepAlive(true, spec.keepAliveMs)
      }
      conn.idle = this.#watchIdle(conn, upstream, spec.idleTimeoutMs)
      if (replay !== null && replay.length > 0) upstream.write(replay)
      client.resume()
    })
    // backpressure, client → backend: the client was paused when a write filled the buffer
    upstream.on('drain', () => {
      if (conn.upstream === upstream) client.resume()
    })
    upstream.on('error', (e) => {
      if (conn.connected) return
      counters.connectErrors++
      this.counters.connectErrors++
      this.#log.warn({ backend: target.id, err: e.message }, `cannot connect to ${target.id}`)
    })
    upstream.on('end', () => {
      if (conn.upstream !== upstream) return
      if (conn.peek !== null) {
        if (conn.peek.awaitingReply()) return this.#refused(conn, 'closed the connection before answering')
        this.#commit(conn)
      }
      client.end()
    })
    upstream.on('close', (hadError) => {
      clearTimeout(connectTimer)
      if (conn.upstream !== upstream) return
      if (!conn.connected) {
        // held off first: the release serves the queue, which must not be sent to it again
        if (!client.destroyed) this.#holdOff(target.id, 'cannot connect')
        this.#release(conn)
        return this.#retry(conn)
      }
      if (conn.peek?.awaitingReply()) return this.#refused(conn, 'closed the connection before answering')
      // a clean close has already ended the client side (upstream 'end'), data flushed first
      if (hadError || conn.peek !== null) client.destroy()
      if (client.destroyed) this.#release(conn)
    })
  }

  /**
   * Closes the session once no byte was read either way for `idleMs` (up to a quarter more),
   * checked a quarter of it apart: socket timeouts would re-arm a timer on every read and write.
   */
  #watchIdle(conn: Conn, upstream: Socket, idleMs: number): NodeJS.Timeout {
    let seen = conn.client.bytesRead + upstream.bytesRead
    let quiet = 0
    const timer = setTimeout(
      () => {
        const now = conn.client.bytesRead + upstream.bytesRead
        if (now !== seen) {
          seen = now
          quiet = 0
        } else if (++quiet >= IDLE_CHECKS) {
          conn.client.destroy()
          upstream.destroy()
          return
        }
        timer.refresh()
      },
      Math.ceil(idleMs / IDLE_CHECKS),
    )
    return timer.unref()
  }

  #fromClient(conn: Conn, chunk: Buffer): void {
    const upstream = conn.upstream
    if (upstream === null) {
      // only reachable if data slipped past a pause between backends: keep it for the next one
      conn.client.pause()
      conn.client.unshift(chunk)
      return
    }
    if (conn.peek !== null && conn.peek.client(chunk) === 'commit') this.#commit(conn)
    if (!upstream.write(chunk)) conn.client.pause()
  }

  /** A read from the backend, in READ_BUFFER; false pauses its reading (until the client drains). */
  #fromUpstream(conn: Conn, upstream: Socket, n: number): boolean {
    if (conn.upstream !== upstream) return false
    const chunk = takeRead(n)
    if (conn.peek === null) return conn.client.write(chunk)
    const step = conn.peek.server(chunk)
    if (step.state === 'reject') {
      this.#refused(conn, 'is not accepting sessions (57P03)')
      return false
    }
    if (step.state === 'commit') conn.peek = null
    return step.toClient === null || conn.client.write(step.toClient)
  }

  /** No more inspection: what the backend sent so far goes to the client, then bytes flow as they come. */
  #commit(conn: Conn): void {
    const held = conn.peek?.release()
    conn.peek = null
    if (held !== undefined && held.length > 0) conn.client.write(held)
  }

  /** The backend turned the session down before the client saw anything: another one gets it. */
  #refused(conn: Conn, why: string): void {
    const backend = conn.backend!
    conn.client.pause()
    const upstream = conn.upstream
    this.#counter(backend).connectErrors++
    this.counters.connectErrors++
    this.#holdOff(backend, why)
    this.#release(conn)
    upstream?.destroy()
    this.#retry(conn)
  }

  /** After a failed connect or a refused session: the next backend, the queue, or the end. */
  #retry(conn: Conn): void {
    if (conn.client.destroyed) return
    // role listeners wait for a backend until the deadline; a `servers` listener redispatches once
    if (this.#spec.startupPeek !== true) {
      if (conn.retriesLeft <= 0) {
        conn.client.destroy()
        return
      }
      conn.retriesLeft--
    }
    if (!this.#tryDispatch(conn)) this.#enqueue(conn, true)
  }

  #holdOff(backend: string, why: string): void {
    const now = Date.now()
    if ((this.#holds.get(backend) ?? 0) <= now) {
      this.#log.warn({ backend, reason: why }, `${backend} ${why}: skipped for ${HOLD_OFF_MS} ms`)
    }
    this.#holds.set(backend, now + HOLD_OFF_MS)
    setTimeout(() => {
      if ((this.#holds.get(backend) ?? 0) <= Date.now()) this.#holds.delete(backend)
      this.kick()
    }, HOLD_OFF_MS + 1).unref()
  }

  #clientClosed(conn: Conn, hadError: boolean): void {
    if (conn.timer !== null) {
      clearTimeout(conn.timer)
      conn.timer = null
      const i = this.#queue.indexOf(conn)
      if (i >= 0) this.#queue.splice(i, 1)
      this.counters.queued = this.#queue.length
    }
    const upstream = conn.upstream
    if (upstream === null) return
    if (hadError || !conn.connected || conn.peek !== null) upstream.destroy()
    if (upstream.destroyed) this.#release(conn)
  }

  /** Ends the client's use of its current backend (once per backend tried). */
  #release(conn: Conn): void {
    const upstream = conn.upstream
    const backend = conn.backend
    if (upstream === null || backend === null) return
    conn.upstream = null
    conn.backend = null
    clearTimeout(conn.idle ?? undefined)
    conn.idle = null
    const counters = this.#counter(backend)
    // the sockets count their own bytes: nothing extra on the per-chunk path
    if (conn.connected && conn.peek === null) {
      counters.bytesIn += conn.client.bytesRead - conn.readBase
      counters.bytesOut += upstream.bytesRead
    }
    this.#sessions.delete(conn)
    this.counters.active = this.#sessions.size
    counters.active--
    this.kick()
  }
}
