import { connect, createServer, type Server, type Socket } from 'node:net'
import type { SecureContext } from 'node:tls'
import type { ErrorCode } from '@pgmesh/protocol'
import type { Logger } from '../log.js'
import { type AdmittedClient, backendOrigin, type ListenerGate } from '../policy/listener-gate.js'
import { encodeProxyHeader } from '../policy/proxy-protocol.js'
import type { LeaseGate } from '../vip/lease-gate.js'
import { type BackendTls, startBackendTls } from './backend-tls.js'
import { type BalanceAlgorithm, type BalancerState, newBalancerState, pickBackend } from './balancer.js'
import { CancelBudget, type CancelTarget, sendCancel } from './cancel-fanout.js'
import { type MonoClock, systemMonoClock } from './clock.js'
import { type DirectReads, directReads } from './direct-reads.js'
import { type HoldOff, HoldOffs } from './hold-offs.js'
import { type EdgeDrop, type EdgeResult, negotiateEdge } from './pg-edge.js'
import { StartupPeek } from './pg-startup.js'
import {
  CANCEL_REQUEST_CODE,
  CANCEL_REQUEST_LENGTH,
  classifyFirstPacket,
  errorResponse,
  REFUSAL,
} from './pg-wire.js'
import { WaitQueue } from './wait-queue.js'

export interface BackendTarget {
  readonly id: string
  readonly host: string
  readonly port: number
  readonly weight: number
  /** most connections this listener opens to it at once */
  readonly maxconn: number
  /** a PROXY protocol header to send it first */
  readonly sendProxy?: 'v1' | 'v2' | undefined
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
  /** what the backends are, for refusal messages ("primary", "replica"); default "backend" */
  readonly role?: string
  /** TLS termination: the context clients get (swapped by a reload; sessions keep theirs) */
  readonly tls?: {
    readonly context: SecureContext
    /** PostgreSQL listeners: a plain client is refused with an ErrorResponse */
    readonly requireClientTls: boolean
  }
  /** TLS to the backends (verify-full); none = plain */
  readonly backendTls?: BackendTls
  /** PostgreSQL listeners: append the client's address to application_name */
  readonly applicationNameAddHost?: boolean
  /** the client's startup (TLS handshake included) must be read within this. Default 5000 */
  readonly handshakeTimeoutMs?: number
  /** PostgreSQL listeners: CancelRequests copied to every cancel target, at most this many per second; 0 = off. Default 0 */
  readonly cancelFanoutPerSecond?: number
}

export const DEFAULT_HANDSHAKE_TIMEOUT_MS = 5_000

export interface ListenerRouting {
  /** the backends this listener may send a new connection to now, in preference order */
  candidates(): readonly BackendTarget[]
  /** where a CancelRequest may belong: every database node that could hold its session; default candidates() */
  cancelTargets?(): readonly CancelTarget[]
}

/** What happened at the PostgreSQL edge: TLS, refusals, bad input, cancels. */
export interface EdgeCounters {
  tlsSessions: number
  /** handshakes that failed (garbage ClientHello, wrong protocol, no ALPN on direct TLS) */
  tlsFailures: number
  handshakeTimeouts: number
  /** plain clients refused by a TLS-only listener */
  plainRefused: number
  /** truncated, oversized or malformed startup/SSLRequest packets */
  badStartup: number
  /** CancelRequests copied to the cancel targets */
  cancelsForwarded: number
  /** CancelRequests over the fan-out budget */
  cancelsDropped: number
  /** sessions to a backend that failed TLS (verify-full) */
  backendTlsFailures: number
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

let streamReadsReported = false

function reportStreamReads(log: Logger, why: string): void {
  if (streamReadsReported) return
  streamReadsReported = true
  log.warn(
    { code: 'PROXY_READS_UNTUNED' satisfies ErrorCode, why },
    "clients' bytes are read through 'data' events: this Node's socket internals are not the expected ones (more CPU per read, nothing else changes)",
  )
}

/** idle checks per idle timeout */
const IDLE_CHECKS = 4

/**
 * Every backend socket and every plain client socket reads into this one buffer (net's `onread`,
 * direct-reads.ts for accepted sockets) and each read is copied out at once: no stream machinery
 * per chunk, and no read buffer per connection. Sharing is safe because a read's callback runs
 * before the next read anywhere in the process. The copy (a slice of Node's buffer pool for small
 * reads) is what lets the write keep its bytes while the socket drains.
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
  /** the client stream: the socket, or TLS over it */
  readonly client: Socket
  /** the accepted socket, for its addresses */
  readonly raw: Socket
  /** the real client (from a trusted PROXY header) when the listener has a policy */
  readonly admitted: AdmittedClient | null
  /** its address for `source` balancing and stickiness */
  readonly source: string
  /** its first bytes are still to be checked for a forged PROXY header */
  sniff: boolean
  /** the edge read the startup packet: the client waits for the server's answer to it */
  readonly startupRead: boolean
  /** the client's first bytes were looked at for a CancelRequest */
  sawFirst: boolean
  /** refusing: the client's bytes read until its startup packet, then the ErrorResponse */
  refusal: { buf: Buffer; readonly code: string; readonly message: string } | null
  /** clock.mono() after which it stops waiting for a backend */
  readonly deadline: number
  /** backends it may still try after one failed (role listeners retry until the deadline instead) */
  retriesLeft: number
  /** the session start under inspection; null once committed to a backend (or never inspected) */
  peek: StartupPeek | null
  upstream: Socket | null
  backend: string | null
  /** host:port of `backend` */
  backendAddress: string | null
  connected: boolean
  /** `client.bytesRead` when this backend was picked, less what it was replayed: for bytesIn */
  readBase: number
  /** the idle check, while connected */
  idle: NodeJS.Timeout | null
}

/** One listening socket: accept, queue, pick a backend, connect, splice both ways. */
export class TcpListener {
  readonly #log: Logger
  readonly #balancer: BalancerState = newBalancerState()
  readonly #sessions = new Set<Conn>()
  readonly #queue: WaitQueue<Conn>
  readonly #backends = new Map<string, BackendCounters>()
  readonly #holds: HoldOffs
  readonly #clock: MonoClock
  readonly counters: ListenerCounters = {
    active: 0,
    total: 0,
    queued: 0,
    refused: 0,
    queueTimeouts: 0,
    connectErrors: 0,
    cut: 0,
  }
  readonly edge: EdgeCounters = {
    tlsSessions: 0,
    tlsFailures: 0,
    handshakeTimeouts: 0,
    plainRefused: 0,
    badStartup: 0,
    cancelsForwarded: 0,
    cancelsDropped: 0,
    backendTlsFailures: 0,
  }
  /** connections still in their TLS handshake or startup */
  readonly #negotiating = new Set<Socket>()
  readonly #cancelBudget: CancelBudget
  #server: Server | null = null
  /** plain client sockets read straight into READ_BUFFER (null: through 'data' events) */
  #directReads: DirectReads | null = null
  #accepting = false
  #spec: ListenerSpec

  constructor(
    spec: ListenerSpec,
    private readonly routing: ListenerRouting,
    logger: Logger,
    clock: MonoClock = systemMonoClock,
    /** the listener's traffic policy (allow/deny, limits, stickiness, PROXY protocol); a reload may set or clear it */
    public gate: ListenerGate | null = null,
    /** `leaseGate`: connections to the VIP are reset at accept unless this node's lease runs (vip/lease-gate.ts) */
    private readonly vip: { readonly leaseGate?: Pick<LeaseGate, 'mayServe'> } = {},
  ) {
    this.#spec = spec
    this.#clock = clock
    this.#holds = new HoldOffs(clock, HOLD_OFF_MS)
    this.#cancelBudget = new CancelBudget(clock, spec.cancelFanoutPerSecond ?? 0)
    this.#queue = new WaitQueue<Conn>(clock, (conn) => {
      this.counters.queued = this.#queue.length
      this.counters.queueTimeouts++
      this.#refuse(conn, REFUSAL.noBackend, this.#noBackendMessage())
    })
    this.#log = logger.child({ component: 'proxy', listener: spec.name })
  }

  get spec(): ListenerSpec {
    return this.#spec
  }

  /** Applies changed limits and timeouts to new connections (the bind address cannot change). */
  update(spec: ListenerSpec): void {
    this.#spec = spec
    this.#cancelBudget.setRate(spec.cancelFanoutPerSecond ?? 0)
    this.kick()
  }

  async start(): Promise<{ host: string; port: number }> {
    const probe = await directReads()
    this.#directReads = probe.ok ? probe.reads : null
    if (!probe.ok) reportStreamReads(this.#log, probe.why)
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
    this.#log.info(
      {
        address: `${bound.host}:${bound.port}`,
        balance: this.#spec.balance,
        clientReads: this.clientReads,
      },
      'listening',
    )
    return bound
  }

  /** how plain clients are read: straight into the shared buffer, or through 'data' events */
  get clientReads(): 'direct' | 'stream' {
    return this.#directReads === null ? 'stream' : 'direct'
  }

  backendCounters(): ReadonlyMap<string, Readonly<BackendCounters>> {
    return this.#backends
  }

  /** Backends new dispatches skip now (a failed connect, a refused session), with the reason. */
  holdOffs(): HoldOff[] {
    return this.#holds.list()
  }

  /** Routes may have changed (a primary appeared): serve the queue. */
  kick(): void {
    for (let w = this.#queue.peek(); w !== undefined; w = this.#queue.peek()) {
      if (!this.#tryDispatch(w)) return
      this.#queue.shift()
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
    for (const s of this.#sessions) if (localIp(s.raw.localAddress) === ip) n++
    for (const w of this.#queue) if (localIp(w.raw.localAddress) === ip) n++
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
    const deadline = this.#clock.mono() + timeoutMs
    while (this.#sessions.size > 0 && this.#clock.mono() < deadline)
      await new Promise((r) => setTimeout(r, 20))
    for (const s of this.#sessions) {
      s.client.destroy()
      s.upstream?.destroy()
    }
    await closed
  }

  #dropQueue(): void {
    for (const w of this.#queue.clear()) w.client.destroy()
    for (const s of this.#negotiating) s.destroy()
    this.#negotiating.clear()
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

  #accept(raw: Socket): void {
    raw.on('error', () => undefined)
    if (!this.#accepting) {
      raw.destroy()
      return
    }
    // the VIP only while this node's lease runs, on the monotonic clock, at the moment of accept
    if (this.vip.leaseGate?.mayServe(raw.localAddress) === false) {
      raw.resetAndDestroy()
      return
    }
    // the policy decides before a byte is read (beyond a trusted PROXY header) or a backend dialled
    if (this.gate !== null) this.gate.accept(raw, (a) => this.#admitted(raw, a))
    else this.#admitted(raw, null)
  }

  #admitted(raw: Socket, admitted: AdmittedClient | null): void {
    if (raw.destroyed || !this.#accepting) {
      raw.destroy()
      return
    }
    this.counters.total++
    const spec = this.#spec
    // TLS termination and startup rewriting read the client's first packets before any backend
    if (spec.tls === undefined && spec.applicationNameAddHost !== true) {
      this.#admit(raw, raw, false, admitted)
      return
    }
    // the handshake is several small writes each way: Nagle would hold each until the peer's
    // (delayed) ACK, tens of milliseconds per connection
    raw.setNoDelay(true)
    this.#negotiating.add(raw)
    const deadline = this.#clock.mono() + spec.queueTimeoutMs
    void negotiateEdge(raw, {
      listener: spec.name,
      context: () => this.#spec.tls?.context ?? null,
      requireTls: spec.tls?.requireClientTls ?? false,
      postgres: spec.startupPeek === true,
      applicationNameAddHost: spec.applicationNameAddHost === true,
      handshakeTimeoutMs: spec.handshakeTimeoutMs ?? DEFAULT_HANDSHAKE_TIMEOUT_MS,
    })
      .then((r) => this.#negotiated(raw, r, deadline, admitted))
      .catch((e: unknown) => {
        // a bug, not the client's doing: this connection ends, the listener keeps serving
        this.#negotiating.delete(raw)
        raw.destroy()
        this.#log.error({ err: e instanceof Error ? e.message : String(e) }, 'edge negotiation failed')
      })
  }

  #negotiated(raw: Socket, r: EdgeResult, deadline: number, admitted: AdmittedClient | null): void {
    const wasNegotiating = this.#negotiating.delete(raw)
    if (r.kind === 'cancel' && (this.#spec.cancelFanoutPerSecond ?? 0) === 0) {
      // fan-out off: the cancel goes where the balancer sends it, as through a plain TCP proxy
      raw.unshift(r.packet)
      this.#admit(raw, raw, false, admitted, deadline)
      return
    }
    if (r.kind === 'cancel') {
      // the client learns the cancel was delivered when its connection closes, as from PostgreSQL
      void this.#cancel(r.packet, null).then(() => raw.end())
      return
    }
    if (r.kind === 'drop') {
      this.#dropped(r.why, r.detail)
      return
    }
    if (!wasNegotiating || !this.#accepting) {
      r.client.destroy()
      raw.destroy()
      return
    }
    if (r.tls) this.edge.tlsSessions++
    r.client.on('error', () => undefined)
    this.#admit(r.client, raw, this.#spec.startupPeek === true, admitted, deadline)
  }

  #dropped(why: EdgeDrop, detail: string): void {
    if (why === 'closed') return
    if (why === 'tls-failed') this.edge.tlsFailures++
    else if (why === 'handshake-timeout') this.edge.handshakeTimeouts++
    else if (why === 'plain-refused') this.edge.plainRefused++
    else this.edge.badStartup++
    this.#log.debug({ why, detail }, 'connection dropped at the edge')
  }

  /** A CancelRequest: to every database node that could hold its session, within the budget. */
  /** `alreadySentTo`: host:port the client's own connection carries it to (a second copy could cancel its next query) */
  async #cancel(packet: Buffer, alreadySentTo: string | null): Promise<void> {
    if (!this.#cancelBudget.take()) {
      this.edge.cancelsDropped++
      return
    }
    const all = this.routing.cancelTargets?.() ?? this.routing.candidates()
    const seen = new Set<string>(alreadySentTo === null ? [] : [alreadySentTo])
    const targets = all.filter((t) => {
      const a = `${t.host}:${t.port}`
      if (seen.has(a)) return false
      seen.add(a)
      return true
    })
    const { sent, done } = sendCancel(packet, targets, this.#spec.connectTimeoutMs)
    this.edge.cancelsForwarded += sent
    await done
  }

  #admit(
    client: Socket,
    raw: Socket,
    startupRead: boolean,
    admitted: AdmittedClient | null,
    deadline?: number,
  ): void {
    const conn: Conn = {
      client,
      raw,
      admitted,
      source: admitted?.origin.source ?? raw.remoteAddress ?? '',
      sniff: admitted?.sniff === true,
      startupRead,
      sawFirst: startupRead,
      refusal: null,
      deadline: deadline ?? this.#clock.mono() + this.#spec.queueTimeoutMs,
      retriesLeft: 1,
      peek: this.#spec.startupPeek === true ? new StartupPeek() : null,
      upstream: null,
      backend: null,
      backendAddress: null,
      connected: false,
      readBase: 0,
      idle: null,
    }
    // explicitly paused, so the data listener does not start reading before a backend is connected
    client.pause()
    client.on('data', (chunk: Buffer) => this.#fromClient(conn, chunk))
    // what it sends from now on skips the stream machinery ('data' above still gets anything unshifted)
    if (client === raw)
      this.#directReads?.attach(client, READ_BUFFER, (n) => {
        this.#fromClient(conn, takeRead(n))
        return undefined
      })
    client.on('end', () => {
      if (conn.refusal !== null) return
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
    const refused = this.#queue.push(conn, conn.deadline, this.#spec.queueSize, first)
    if (refused === 'full') {
      this.counters.refused++
      const s = this.#spec
      this.#refuse(
        conn,
        REFUSAL.full,
        `pgmesh: listener "${s.name}" is full (${s.maxconn} sessions and ${s.queueSize} waiting)`,
      )
      return
    }
    if (refused === 'expired') {
      this.counters.queueTimeouts++
      this.#refuse(conn, REFUSAL.noBackend, this.#noBackendMessage())
      return
    }
    this.counters.queued = this.#queue.length
  }

  /** Starts a session for `conn` if a backend can take it now; false when it must wait. */
  #tryDispatch(conn: Conn): boolean {
    if (conn.client.destroyed) return true
    if (this.#sessions.size >= this.#spec.maxconn) return false
    const now = this.#holds.size > 0 ? this.#clock.mono() : 0
    const candidates: (BackendTarget & { active: number })[] = []
    for (const b of this.routing.candidates()) {
      const active = this.#counter(b.id).active
      if (active >= b.maxconn || (now > 0 && this.#holds.isHeld(b.id, now))) continue
      candidates.push({ ...b, active })
    }
    const choose = () => pickBackend(this.#spec.balance, candidates, this.#balancer, conn.source)
    const picked = this.gate === null ? choose() : this.gate.pick(conn.source, candidates, choose)
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
    conn.backendAddress = `${target.host}:${target.port}`
    conn.connected = false
    conn.readBase = client.bytesRead - (replay?.length ?? 0)
    const tls = spec.backendTls
    const raw: Socket =
      tls === undefined
        ? connect({
            host: target.host,
            port: target.port,
            allowHalfOpen: true,
            onread: { buffer: READ_BUFFER, callback: (n) => this.#fromUpstream(conn, raw, n) },
          })
        : connect({ host: target.host, port: target.port, allowHalfOpen: true, noDelay: true })
    conn.upstream = raw
    const connectTimer = setTimeout(
      () => (conn.upstream ?? raw).destroy(new Error('connect timeout')),
      spec.connectTimeoutMs,
    )
    const established = (upstream: Socket) => {
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
      if (target.sendProxy !== undefined)
        upstream.write(encodeProxyHeader(target.sendProxy, backendOrigin(conn.admitted, conn.raw)))
      if (replay !== null && replay.length > 0) upstream.write(replay)
      client.resume()
    }
    raw.on('error', (e) => {
      if (conn.connected) return
      counters.connectErrors++
      this.counters.connectErrors++
      this.#log.warn({ backend: target.id, err: e.message }, `cannot connect to ${target.id}`)
    })
    if (tls === undefined) {
      raw.once('connect', () => established(raw))
      this.#wire(conn, target, raw, connectTimer)
      return
    }
    raw.once('close', () => {
      // before TLS is up the raw socket is the upstream: a failure there is a failed connect
      if (conn.upstream === raw) this.#connectFailed(conn, target, connectTimer)
    })
    raw.once('connect', () =>
      startBackendTls(
        raw,
        target.host,
        tls,
        (secure) => {
          if (conn.upstream !== raw) return secure.destroy()
          conn.upstream = secure
          secure.on('data', (chunk: Buffer) => {
            if (!this.#fromUpstreamChunk(conn, secure, chunk)) secure.pause()
          })
          this.#wire(conn, target, secure, connectTimer)
          established(secure)
        },
        (why) => {
          if (conn.upstream !== raw) return
          this.edge.backendTlsFailures++
          this.#log.warn({ backend: target.id, err: why }, `cannot set up TLS to ${target.id}`)
        },
      ),
    )
  }

  /** The events of an upstream socket that carries the session (plain, or TLS once it is up). */
  #wire(conn: Conn, target: BackendTarget, upstream: Socket, connectTimer: NodeJS.Timeout): void {
    const { client } = conn
    // backpressure, client → backend: the client was paused when a write filled the buffer
    upstream.on('drain', () => {
      if (conn.upstream === upstream) client.resume()
    })
    upstream.on('error', () => undefined)
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
      if (!conn.connected) return this.#connectFailed(conn, target, connectTimer)
      if (conn.peek?.awaitingReply()) return this.#refused(conn, 'closed the connection before answering')
      // a clean close has already ended the client side (upstream 'end'), data flushed first
      if (hadError || conn.peek !== null) client.destroy()
      if (client.destroyed) this.#release(conn)
    })
  }

  #connectFailed(conn: Conn, target: BackendTarget, connectTimer: NodeJS.Timeout): void {
    clearTimeout(connectTimer)
    // held off first: the release serves the queue, which must not be sent to it again
    if (!conn.client.destroyed) this.#holdOff(target.id, 'cannot connect')
    this.#release(conn)
    this.#retry(conn)
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
    if (conn.refusal !== null) {
      this.#refusalRead(conn, chunk)
      return
    }
    const upstream = conn.upstream
    if (upstream === null) {
      // only reachable if data slipped past a pause between backends: keep it for the next one
      conn.client.pause()
      conn.client.unshift(chunk)
      return
    }
    if (conn.sniff) {
      conn.sniff = false
      if (this.gate?.forged(chunk, conn.raw) === true) {
        conn.raw.resetAndDestroy()
        upstream.destroy()
        return
      }
    }
    if (!conn.sawFirst) {
      conn.sawFirst = true
      // a passthrough listener sees a CancelRequest go by: its session may be on another backend
      if (isCancelRequest(chunk) && (this.#spec.cancelFanoutPerSecond ?? 0) > 0) {
        void this.#cancel(chunk.subarray(0, CANCEL_REQUEST_LENGTH), conn.backendAddress)
      }
    }
    if (conn.peek !== null && conn.peek.client(chunk) === 'commit') this.#commit(conn)
    if (!upstream.write(chunk)) conn.client.pause()
  }

  /** A read from the backend, in READ_BUFFER; false pauses its reading (until the client drains). */
  #fromUpstream(conn: Conn, upstream: Socket, n: number): boolean {
    if (conn.upstream !== upstream) return false
    return this.#fromUpstreamChunk(conn, upstream, takeRead(n))
  }

  #fromUpstreamChunk(conn: Conn, upstream: Socket, chunk: Buffer): boolean {
    if (conn.upstream !== upstream) return false
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

  #noBackendMessage(): string {
    const s = this.#spec
    return `pgmesh: no ${s.role ?? 'backend'} server took the connection within ${s.queueTimeoutMs} ms (listener "${s.name}")`
  }

  /**
   * Turns a client away in PostgreSQL's words where it understands them: the ErrorResponse after its
   * startup packet (an SSLRequest is answered N first), so psql and drivers show the reason. Other
   * listeners just close. The client's startup is awaited for the handshake timeout at most.
   */
  #refuse(conn: Conn, code: string, message: string): void {
    const { client } = conn
    if (this.#spec.startupPeek !== true || client.destroyed) {
      client.destroy()
      return
    }
    conn.refusal = { buf: Buffer.alloc(0), code, message }
    if (conn.startupRead) {
      this.#sendRefusal(conn)
      return
    }
    setTimeout(() => client.destroy(), this.#spec.handshakeTimeoutMs ?? DEFAULT_HANDSHAKE_TIMEOUT_MS).unref()
    // what a backend that turned the client down was sent is the client's unanswered request
    const seen = conn.peek?.replay()
    conn.peek = null
    client.resume()
    if (seen !== undefined && seen.length > 0) this.#refusalRead(conn, seen)
  }

  #refusalRead(conn: Conn, chunk: Buffer): void {
    const r = conn.refusal!
    r.buf = r.buf.length === 0 ? chunk : Buffer.concat([r.buf, chunk])
    for (;;) {
      const p = classifyFirstPacket(r.buf, false)
      if (p.kind === 'partial') return
      if (p.kind === 'ssl-request' || p.kind === 'gssenc-request') {
        conn.client.write('N')
        r.buf = r.buf.subarray(8)
        continue
      }
      if (p.kind === 'startup') {
        this.#sendRefusal(conn)
        return
      }
      conn.client.destroy()
      return
    }
  }

  #sendRefusal(conn: Conn): void {
    const r = conn.refusal!
    const { client } = conn
    client.pause()
    client.end(errorResponse(r.code, r.message))
    // a client that does not close after the error is not waited for
    setTimeout(() => client.destroy(), this.#spec.handshakeTimeoutMs ?? DEFAULT_HANDSHAKE_TIMEOUT_MS).unref()
  }

  #holdOff(backend: string, why: string): void {
    if (this.#holds.hold(backend, why)) {
      this.#log.warn({ backend, reason: why }, `${backend} ${why}: skipped for ${HOLD_OFF_MS} ms`)
    }
    setTimeout(() => {
      this.#holds.prune()
      this.kick()
    }, HOLD_OFF_MS + 1).unref()
  }

  #clientClosed(conn: Conn, hadError: boolean): void {
    if (this.#queue.remove(conn)) this.counters.queued = this.#queue.length
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
    conn.backendAddress = null
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

function isCancelRequest(chunk: Buffer): boolean {
  return (
    chunk.length >= CANCEL_REQUEST_LENGTH &&
    chunk.readUInt32BE(0) === CANCEL_REQUEST_LENGTH &&
    chunk.readUInt32BE(4) === CANCEL_REQUEST_CODE
  )
}
