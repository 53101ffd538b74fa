import { formatHostPort, type ListenerConfig, type ListenerStatus } from '@pgmesh/protocol'
import type { Logger } from '../log.js'
import { ListenerGate } from '../policy/listener-gate.js'
import { hasPolicy, ListenerPolicy } from '../policy/listener-policy.js'
import { MeshPolicy } from '../policy/mesh-policy.js'
import {
  type CertificateInfo,
  expiryState,
  isTlsFileError,
  loadCa,
  loadServerMaterial,
} from '../tls/tls-material.js'
import type { LeaseGate } from '../vip/lease-gate.js'
import type { BackendTls } from './backend-tls.js'
import type { CancelTarget } from './cancel-fanout.js'
import { type MonoClock, systemMonoClock } from './clock.js'
import { type BackendTarget, type ListenerSpec, localIp, TcpListener } from './tcp-listener.js'

interface Running {
  config: ListenerConfig
  readonly listener: TcpListener
  servers: BackendTarget[]
  bound: string
  /** the certificate clients get now (terminate) */
  certificate: CertificateInfo | null
}

/** What a listener's TLS files gave: the parts of its spec, or why they cannot be used. */
type TlsLoad =
  | {
      readonly ok: true
      readonly spec: Pick<ListenerSpec, 'tls' | 'backendTls'>
      readonly certificate: CertificateInfo | null
    }
  | { readonly ok: false; readonly error: string }

async function loadTls(c: ListenerConfig): Promise<TlsLoad> {
  const t = c.tls
  if (t === undefined || t.mode === 'passthrough') return { ok: true, spec: {}, certificate: null }
  const m = await loadServerMaterial(t.certFile!, t.keyFile!)
  if (isTlsFileError(m)) return { ok: false, error: `${m.code}: ${m.message}` }
  let backendTls: BackendTls | undefined
  if (t.backend === 'verify-full') {
    const ca = await loadCa(t.backendCaFile!)
    if (isTlsFileError(ca)) return { ok: false, error: `${ca.code}: ${ca.message}` }
    backendTls = {
      ca,
      postgres: c.role !== 'servers',
      ...(t.backendServerName !== undefined ? { serverName: t.backendServerName } : {}),
    }
  }
  return {
    ok: true,
    spec: {
      tls: { context: m.context, requireClientTls: t.requireClientTls },
      ...(backendTls !== undefined ? { backendTls } : {}),
    },
    certificate: m.certificate,
  }
}

/** How often certificates are looked at for their expiry (and a warning repeated). */
export const CERT_EXPIRY_CHECK_MS = 86_400_000

/** Default `cancelFanoutPerSecond` of a PostgreSQL listener. */
export const DEFAULT_CANCEL_FANOUT_PER_SECOND = 100

export interface ProxyServiceOptions {
  /** monotonic time for queue deadlines, hold-offs and drains. Default performance.now() */
  readonly clock?: MonoClock
  /** wall-clock ms, for certificate expiry only. Default Date.now */
  readonly wallNow?: () => number
  /**
   * Every database node a CancelRequest to a PostgreSQL listener may belong to (all of the
   * cluster's `databases`). Default: the listener's current candidates.
   */
  readonly cancelTargets?: () => readonly CancelTarget[]
  /** connections to the VIP only while this node's lease runs (vip/lease-gate.ts) */
  readonly leaseGate?: Pick<LeaseGate, 'mayServe'>
}

/** A listener's certificate and when it expires, for the metrics. */
export interface CertificateExpiry {
  readonly listener: string
  readonly notAfterMs: number
  readonly remainingMs: number
}

export interface ApplyResult {
  readonly started: string[]
  readonly updated: string[]
  readonly removed: string[]
  /** listeners that could not start (their previous version, if any, keeps serving) */
  readonly failed: { name: string; error: string }[]
}

function specOf(c: ListenerConfig, tls: Pick<ListenerSpec, 'tls' | 'backendTls'> = {}): ListenerSpec {
  const postgres = c.role !== 'servers'
  return {
    ...tls,
    role: postgres ? c.role : 'backend',
    handshakeTimeoutMs: c.tls?.handshakeTimeoutMs ?? 5_000,
    applicationNameAddHost: postgres && c.applicationNameAddHost === true,
    cancelFanoutPerSecond: postgres ? (c.cancelFanoutPerSecond ?? DEFAULT_CANCEL_FANOUT_PER_SECOND) : 0,
    name: c.name,
    host: c.bind.host,
    port: c.bind.port,
    balance: c.balance,
    maxconn: c.maxconn,
    queueSize: c.queueSize,
    queueTimeoutMs: c.queueTimeoutMs,
    connectTimeoutMs: c.connectTimeoutMs,
    idleTimeoutMs: c.idleTimeoutMs,
    keepAliveMs: c.keepAliveMs,
    startupPeek: c.role !== 'servers',
  }
}

function serversOf(c: ListenerConfig): BackendTarget[] {
  return c.servers.map((s) => ({
    id: formatHostPort(s.address),
    host: s.address.host,
    port: s.address.port,
    weight: s.weight,
    maxconn: s.maxconn,
    sendProxy: s.sendProxy,
  }))
}

/** How often a paused listener looks whether its sessions have ended. */
const PAUSE_POLL_MS = 50

const sameBind = (a: ListenerConfig, b: ListenerConfig) =>
  a.bind.host === b.bind.host && a.bind.port === b.bind.port

/**
 * The node's listeners, kept in line with the config: `apply()` starts new ones, changes existing
 * ones in place (established sessions keep running), moves re-bound ones (the new socket first,
 * then the old one drains) and drains removed ones.
 */
export class ProxyService {
  readonly #log: Logger
  readonly #running = new Map<string, Running>()
  readonly #draining = new Set<Promise<void>>()
  /** listeners removed or re-bound by a reload, still draining */
  readonly #drainingListeners = new Set<TcpListener>()
  #failed: ApplyResult['failed'] = []
  #paused = false
  /** listener name → its traffic policy; kept across reloads (counters, buckets, sticky entries) */
  readonly #policies = new Map<string, ListenerPolicy>()
  /** the listeners' policies as the mesh shares them: `exportDelta` for the heartbeat, `mergeRemote` for a peer's */
  readonly policy = new MeshPolicy(() => this.#policies)
  /** bumped by every pause and resume: a drain of an older pause stops waiting */
  #pauseRun = 0
  readonly #clock: MonoClock
  readonly #wallNow: () => number
  readonly #cancelTargets: (() => readonly CancelTarget[]) | undefined
  readonly #leaseGate: Pick<LeaseGate, 'mayServe'> | undefined
  #expiryTimer: NodeJS.Timeout | null = null

  /**
   * `route` gives the backends a role listener (primary, replica, any) may use now; `servers`
   * listeners use their own list.
   */
  constructor(
    private readonly logger: Logger,
    private readonly route: (listener: ListenerConfig) => readonly BackendTarget[] = () => [],
    options: ProxyServiceOptions = {},
  ) {
    this.#log = logger.child({ component: 'proxy' })
    this.#clock = options.clock ?? systemMonoClock
    this.#wallNow = options.wallNow ?? Date.now
    this.#cancelTargets = options.cancelTargets
    this.#leaseGate = options.leaseGate
  }

  /** The listener's policy brought in line with its config; its gate, or null without a policy. */
  #gateFor(c: ListenerConfig): ListenerGate | null {
    if (!hasPolicy(c)) {
      this.#policies.delete(c.name)
      return null
    }
    let p = this.#policies.get(c.name)
    if (p === undefined) {
      p = new ListenerPolicy(c)
      this.#policies.set(c.name, p)
    } else p.update(c)
    return new ListenerGate(p, {
      listener: c.name,
      postgres: c.role !== 'servers',
      mono: () => this.#clock.mono(),
      logger: this.logger,
    })
  }

  /** Routes changed: every listener serves its queue again. */
  kickAll(): void {
    for (const r of this.#running.values()) r.listener.kick()
  }

  /** Closes the sessions `why` names a reason for; returns how many. */
  cut(why: (listener: ListenerConfig, backend: string) => string | null): number {
    let n = 0
    for (const r of this.#running.values()) {
      for (const b of r.listener.activeBackends()) {
        const reason = why(r.config, b)
        if (reason !== null) n += r.listener.cutBackend(b, reason)
      }
    }
    return n
  }

  async apply(configs: readonly ListenerConfig[]): Promise<ApplyResult> {
    const result: ApplyResult = { started: [], updated: [], removed: [], failed: [] }
    const wanted = new Map(configs.map((c) => [c.name, c]))
    for (const [name, r] of this.#running) {
      if (wanted.has(name)) continue
      this.#running.delete(name)
      this.#policies.delete(name)
      this.#drainInBackground(r)
      result.removed.push(name)
    }
    for (const c of configs) {
      const r = this.#running.get(c.name)
      // certificates are read again on every apply: a reload or config edit picks up rotated files
      const tls = await loadTls(c)
      if (!tls.ok) {
        this.#log.error({ listener: c.name }, tls.error)
        result.failed.push({ name: c.name, error: tls.error })
        continue
      }
      if (r !== undefined && sameBind(r.config, c)) {
        r.config = c
        r.servers = serversOf(c)
        r.certificate = tls.certificate
        r.listener.update(specOf(c, tls.spec))
        r.listener.gate = this.#gateFor(c)
        result.updated.push(c.name)
        continue
      }
      // the routing reads the entry's current config and servers, which a reload updates in place
      const live = { config: c, servers: serversOf(c) }
      const candidates = () => (live.config.role === 'servers' ? live.servers : this.route(live.config))
      const cancelTargets = this.#cancelTargets
      const listener = new TcpListener(
        specOf(c, tls.spec),
        {
          candidates,
          cancelTargets: () =>
            live.config.role !== 'servers' && cancelTargets !== undefined ? cancelTargets() : candidates(),
        },
        // the listener adds its own component and listener name (a child of #log would repeat the field)
        this.logger,
        this.#clock,
        this.#gateFor(c),
        this.#leaseGate === undefined ? {} : { leaseGate: this.#leaseGate },
      )
      const entry: Running = Object.assign(live, { listener, bound: '', certificate: tls.certificate })
      try {
        const b = await listener.start()
        entry.bound = formatHostPort(b)
        // in maintenance a new listener proves its address is free, then takes no connections
        if (this.#paused) listener.stopAccepting()
      } catch (e) {
        const error = `cannot listen on ${formatHostPort(c.bind)}: ${(e as Error).message}`
        this.#log.error({ listener: c.name }, error)
        result.failed.push({ name: c.name, error })
        continue
      }
      if (r !== undefined) this.#drainInBackground(r)
      this.#running.set(c.name, entry)
      result.started.push(c.name)
    }
    this.#failed = result.failed
    this.#checkExpiry()
    return result
  }

  /**
   * Reads every terminating listener's certificate, key and CA files again (SIGHUP, rotated files):
   * new connections get the new certificate, established sessions keep theirs. Returns the
   * listeners whose files cannot be used; those keep their previous certificate.
   */
  async reloadTls(): Promise<ApplyResult['failed']> {
    const failed: ApplyResult['failed'] = []
    for (const r of this.#running.values()) {
      if (r.config.tls?.mode !== 'terminate') continue
      const tls = await loadTls(r.config)
      if (!tls.ok) {
        this.#log.error({ listener: r.config.name }, tls.error)
        failed.push({ name: r.config.name, error: tls.error })
        continue
      }
      r.certificate = tls.certificate
      r.listener.update(specOf(r.config, tls.spec))
      this.#log.info(
        {
          listener: r.config.name,
          notAfter: tls.certificate?.notAfter,
          fingerprint256: tls.certificate?.fingerprint256,
        },
        'certificate reloaded',
      )
    }
    this.#checkExpiry()
    return failed
  }

  /** Each terminating listener's certificate expiry (for the metrics). */
  certificateExpiries(): CertificateExpiry[] {
    const now = this.#wallNow()
    const out: CertificateExpiry[] = []
    for (const r of this.#running.values()) {
      if (r.certificate === null) continue
      out.push({
        listener: r.config.name,
        notAfterMs: r.certificate.notAfterMs,
        remainingMs: r.certificate.notAfterMs - now,
      })
    }
    return out
  }

  /** Logs a warning for each certificate inside its listener's `expiryWarningMs`; runs after every load and daily. */
  #checkExpiry(): void {
    const now = this.#wallNow()
    let any = false
    for (const r of this.#running.values()) {
      if (r.certificate === null) continue
      any = true
      const warnMs = r.config.tls?.expiryWarningMs ?? 14 * 86_400_000
      const e = expiryState(r.certificate.notAfterMs, now, warnMs)
      if (!e.warn) continue
      const days = Math.floor(e.remainingMs / 86_400_000)
      this.#log.warn(
        { listener: r.config.name, notAfter: r.certificate.notAfter, subject: r.certificate.subject },
        e.expired
          ? `the certificate of listener ${r.config.name} has expired (${r.certificate.notAfter})`
          : `the certificate of listener ${r.config.name} expires in ${days} day(s) (${r.certificate.notAfter})`,
      )
    }
    if (any && this.#expiryTimer === null) {
      this.#expiryTimer = setInterval(() => this.#checkExpiry(), CERT_EXPIRY_CHECK_MS).unref()
    }
  }

  /** Stops accepting on every listener and waits for sessions, each up to its drain timeout. */
  async drain(): Promise<void> {
    if (this.#expiryTimer !== null) clearInterval(this.#expiryTimer)
    this.#expiryTimer = null
    const all = [...this.#running.values()]
    this.#running.clear()
    await Promise.all([...all.map((r) => r.listener.drain(r.config.drainTimeoutMs)), ...this.#draining])
  }

  get paused(): boolean {
    return this.#paused
  }

  /** Sessions open on every listener (draining ones included). */
  activeSessions(): number {
    let n = 0
    for (const r of this.#running.values()) n += r.listener.counters.active
    return n
  }

  /**
   * Clients connected to the local address `address` (a VIP, say) on any listener, draining ones
   * included: in a session or queued for one.
   */
  sessionsTo(address: string): number {
    const ip = localIp(address)
    let n = 0
    for (const r of this.#running.values()) n += r.listener.sessionsTo(ip)
    for (const l of this.#drainingListeners) n += l.sessionsTo(ip)
    return n
  }

  /**
   * Maintenance: every listener stops accepting (its port closes, so new connections are refused
   * at once) and its sessions may run for up to its `drainTimeoutMs`; the rest are closed then.
   * Listeners applied while paused stay closed. Resolves when drained, or when `resume()` is called.
   */
  async pause(): Promise<void> {
    if (this.#paused) return
    this.#paused = true
    const run = ++this.#pauseRun
    await Promise.all(
      [...this.#running.values()].map(async (r) => {
        r.listener.stopAccepting()
        const name = r.config.name
        const timeoutMs = r.config.drainTimeoutMs
        this.#log.info(
          { listener: name, sessions: r.listener.counters.active, timeoutMs },
          'maintenance: listener closed, draining its sessions',
        )
        const deadline = this.#clock.mono() + timeoutMs
        while (this.#pauseRun === run && r.listener.counters.active > 0 && this.#clock.mono() < deadline) {
          await new Promise((done) => setTimeout(done, PAUSE_POLL_MS))
        }
        if (this.#pauseRun !== run) return
        let cut = 0
        for (const b of r.listener.activeBackends()) {
          cut += r.listener.cutBackend(b, 'maintenance: drain timeout')
        }
        this.#log.info({ listener: name, cut }, 'maintenance: listener drained')
      }),
    )
  }

  /** Ends maintenance: every listener listens again; returns those that cannot bind now. */
  async resume(): Promise<ApplyResult['failed']> {
    if (!this.#paused) return []
    this.#paused = false
    this.#pauseRun++
    const failed: ApplyResult['failed'] = []
    for (const r of this.#running.values()) {
      if (r.listener.accepting) continue
      try {
        r.bound = formatHostPort(await r.listener.start())
      } catch (e) {
        const error = `cannot listen on ${formatHostPort(r.config.bind)}: ${(e as Error).message}`
        this.#log.error({ listener: r.config.name }, error)
        failed.push({ name: r.config.name, error })
      }
    }
    this.#failed = [...this.#failed, ...failed]
    return failed
  }

  failed(): ApplyResult['failed'] {
    return this.#failed
  }

  status(): ListenerStatus[] {
    const now = this.#clock.mono()
    return [...this.#running.values()].map((r) => ({
      name: r.config.name,
      bind: r.bound,
      role: r.config.role,
      balance: r.config.balance,
      ...r.listener.counters,
      backends: [...r.listener.backendCounters()].map(([id, b]) => ({ id, ...b })),
      ...(this.#policies.has(r.config.name)
        ? { policy: this.#policies.get(r.config.name)!.status(now) }
        : {}),
      clientReads: r.listener.clientReads,
      holdOffs: r.listener.holdOffs(),
      ...(r.config.role !== 'servers' || r.config.tls !== undefined ? { edge: { ...r.listener.edge } } : {}),
      ...(r.config.tls !== undefined
        ? {
            tls: {
              mode: r.config.tls.mode,
              backend: r.config.tls.backend,
              certificate:
                r.certificate === null
                  ? null
                  : {
                      subject: r.certificate.subject,
                      notAfter: r.certificate.notAfter,
                      fingerprint256: r.certificate.fingerprint256,
                      expiresInMs: Math.round(r.certificate.notAfterMs - this.#wallNow()),
                      expiryWarning: expiryState(
                        r.certificate.notAfterMs,
                        this.#wallNow(),
                        r.config.tls.expiryWarningMs,
                      ).warn,
                    },
            },
          }
        : {}),
    }))
  }

  #drainInBackground(r: Running): void {
    this.#log.info({ listener: r.config.name, timeoutMs: r.config.drainTimeoutMs }, 'draining listener')
    const listener = r.listener
    this.#drainingListeners.add(listener)
    const p = listener.drain(r.config.drainTimeoutMs).finally(() => {
      this.#draining.delete(p)
      this.#drainingListeners.delete(listener)
    })
    this.#draining.add(p)
  }
}
