import { formatHostPort, type ListenerConfig, type ListenerStatus } from '@pgmesh/protocol'
import type { Logger } from '../log.js'
import { type MonoClock, systemMonoClock } from './clock.js'
import { type BackendTarget, type ListenerSpec, localIp, TcpListener } from './tcp-listener.js'

interface Running {
  config: ListenerConfig
  readonly listener: TcpListener
  servers: BackendTarget[]
  bound: string
}

export interface ProxyServiceOptions {
  /** monotonic time for queue deadlines, hold-offs and drains. Default performance.now() */
  readonly clock?: MonoClock
}

export interface ApplyResult {
  readonly started: string[]
  readonly updated: string[]
  readonly removed: string[]
  /** listeners that could not start (their previous version, if any, keeps serving) */
  readonly failed: { name: string; error: string }[]
}

function specOf(c: ListenerConfig): ListenerSpec {
  return {
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
  /** bumped by every pause and resume: a drain of an older pause stops waiting */
  #pauseRun = 0
  readonly #clock: MonoClock

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
      this.#drainInBackground(r)
      result.removed.push(name)
    }
    for (const c of configs) {
      const r = this.#running.get(c.name)
      if (r !== undefined && sameBind(r.config, c)) {
        r.config = c
        r.servers = serversOf(c)
        r.listener.update(specOf(c))
        result.updated.push(c.name)
        continue
      }
      // the routing reads the entry's current config and servers, which a reload updates in place
      const live = { config: c, servers: serversOf(c) }
      const listener = new TcpListener(
        specOf(c),
        { candidates: () => (live.config.role === 'servers' ? live.servers : this.route(live.config)) },
        // the listener adds its own component and listener name (a child of #log would repeat the field)
        this.logger,
        this.#clock,
      )
      const entry: Running = Object.assign(live, { listener, bound: '' })
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
    return result
  }

  /** Stops accepting on every listener and waits for sessions, each up to its drain timeout. */
  async drain(): Promise<void> {
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
    return [...this.#running.values()].map((r) => ({
      name: r.config.name,
      bind: r.bound,
      role: r.config.role,
      balance: r.config.balance,
      ...r.listener.counters,
      backends: [...r.listener.backendCounters()].map(([id, b]) => ({ id, ...b })),
      holdOffs: r.listener.holdOffs(),
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
