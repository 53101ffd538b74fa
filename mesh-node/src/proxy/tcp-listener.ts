import { connect, createServer, type Server, type Socket } from 'node:net'
import type { Logger } from '../log.js'
import { type BalanceAlgorithm, type BalancerState, newBalancerState, pickBackend } from './balancer.js'

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
  readonly queueTimeoutMs: number
  readonly connectTimeoutMs: number
  /** a connection with no traffic either way for this long is closed */
  readonly idleTimeoutMs: number
  /** TCP keepalive probes on both sides after this much idle time; 0 = off */
  readonly keepAliveMs: number
}

export interface ListenerRouting {
  /** the backends this listener may send a new connection to now, in preference order */
  candidates(): readonly BackendTarget[]
}

export interface BackendCounters {
  active: number
  total: number
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

interface Session {
  readonly client: Socket
  upstream: Socket | null
  backend: string | null
}

interface Waiting {
  readonly client: Socket
  readonly timer: NodeJS.Timeout
  readonly retriesLeft: number
}

/** One listening socket: accept, queue, pick a backend, connect, splice both ways. */
export class TcpListener {
  readonly #log: Logger
  readonly #balancer: BalancerState = newBalancerState()
  readonly #sessions = new Set<Session>()
  readonly #queue: Waiting[] = []
  readonly #backends = new Map<string, BackendCounters>()
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
      if (!this.#tryDispatch(w.client, w.retriesLeft)) return
      this.#queue.shift()
      clearTimeout(w.timer)
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

  /** Stops accepting; resolves when every session ended or `timeoutMs` passed (then closes the rest). */
  async drain(timeoutMs: number): Promise<void> {
    this.#accepting = false
    const server = this.#server
    this.#server = null
    const closed =
      server === null ? Promise.resolve() : new Promise<void>((done) => server.close(() => done()))
    for (const w of this.#queue.splice(0)) {
      clearTimeout(w.timer)
      w.client.destroy()
    }
    const deadline = Date.now() + timeoutMs
    while (this.#sessions.size > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20))
    for (const s of this.#sessions) {
      s.client.destroy()
      s.upstream?.destroy()
    }
    await closed
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
    this.counters.total++
    if (this.#sessions.size >= this.#spec.maxconn || !this.#tryDispatch(client, 1)) this.#enqueue(client, 1)
  }

  #enqueue(client: Socket, retriesLeft: number): void {
    if (this.#queue.length >= this.#spec.queueSize) {
      this.counters.refused++
      client.destroy()
      return
    }
    const w: Waiting = {
      client,
      retriesLeft,
      timer: setTimeout(() => {
        const i = this.#queue.indexOf(w)
        if (i >= 0) this.#queue.splice(i, 1)
        this.counters.queued = this.#queue.length
        this.counters.queueTimeouts++
        client.destroy()
      }, this.#spec.queueTimeoutMs),
    }
    // a client that gives up while queued leaves the queue
    client.once('close', () => {
      const i = this.#queue.indexOf(w)
      if (i < 0) return
      this.#queue.splice(i, 1)
      clearTimeout(w.timer)
      this.counters.queued = this.#queue.length
    })
    this.#queue.push(w)
    this.counters.queued = this.#queue.length
  }

  /** Starts a session for `client` if a backend can take it now; false when it must wait. */
  #tryDispatch(client: Socket, retriesLeft: number): boolean {
    if (client.destroyed) return true
    if (this.#sessions.size >= this.#spec.maxconn) return false
    const candidates = this.routing
      .candidates()
      .filter((b) => this.#counter(b.id).active < b.maxconn)
      .map((b) => ({ ...b, active: this.#counter(b.id).active }))
    const picked = pickBackend(this.#spec.balance, candidates, this.#balancer, client.remoteAddress ?? '')
    if (picked === null) return false
    const target = candidates.find((b) => b.id === picked.id)!
    this.#connect(client, target, retriesLeft)
    return true
  }

  #connect(client: Socket, target: BackendTarget, retriesLeft: number): void {
    const spec = this.#spec
    const session: Session = { client, upstream: null, backend: target.id }
    this.#sessions.add(session)
    this.counters.active = this.#sessions.size
    const counters = this.#counter(target.id)
    counters.active++
    const upstream = connect({ host: target.host, port: target.port, allowHalfOpen: true })
    session.upstream = upstream
    let connected = false
    const connectTimer = setTimeout(
      () => upstream.destroy(new Error('connect timeout')),
      spec.connectTimeoutMs,
    )
    let finished = false
    const finish = () => {
      if (finished) return
      finished = true
      clearTimeout(connectTimer)
      // the sockets count their own bytes: nothing extra on the per-chunk path
      if (connected) {
        counters.bytesIn += client.bytesRead
        counters.bytesOut += upstream.bytesRead
      }
      this.#sessions.delete(session)
      this.counters.active = this.#sessions.size
      counters.active--
      this.kick()
    }
    upstream.once('connect', () => {
      connected = true
      clearTimeout(connectTimer)
      counters.total++
      upstream.setNoDelay(true)
      client.setNoDelay(true)
      if (spec.keepAliveMs > 0) {
        upstream.setKeepAlive(true, spec.keepAliveMs)
        client.setKeepAlive(true, spec.keepAliveMs)
      }
      upstream.setTimeout(spec.idleTimeoutMs)
      client.setTimeout(spec.idleTimeoutMs)
      const idle = () => {
        client.destroy()
        upstream.destroy()
      }
      upstream.on('timeout', idle)
      client.on('timeout', idle)
      // pipe() pauses the reader while the writer's buffer is full: a client that stops reading
      // holds at most one socket buffer per direction, never more
      client.pipe(upstream)
      upstream.pipe(client)
      client.resume()
    })
    upstream.on('error', (e) => {
      if (connected) return
      counters.connectErrors++
      this.counters.connectErrors++
      this.#log.warn({ backend: target.id, err: e.message }, `cannot connect to ${target.id}`)
    })
    upstream.on('close', (hadError) => {
      if (!connected && !client.destroyed && retriesLeft > 0) {
        // redispatch once: another backend may take it
        finish()
        if (!this.#tryDispatch(client, retriesLeft - 1)) this.#enqueue(client, retriesLeft - 1)
        return
      }
      // a clean close has already ended the client side through pipe(), data flushed first
      if (hadError || !connected) client.destroy()
      if (client.destroyed) finish()
    })
    client.on('close', (hadError) => {
      if (hadError || !connected) upstream.destroy()
      if (upstream.destroyed) finish()
    })
  }
}
