import type { ListenerConfig } from '@pgmesh/protocol'
import { cancelAll } from '../core/clock.js'
import type { Clock, Startable, Timer } from '../core/contracts.js'
import type { Logger } from '../log.js'
import type { BackendTarget } from '../proxy/tcp-listener.js'
import type { SessionControl } from '../routing/routing-service.js'
import { type CommandResult, describeFailure, runCommand } from '../run-command.js'
import {
  conntrackCutArgs,
  counterName,
  fastPathRemoveScript,
  fastPathScript,
  fastPathTable,
  type KernelRoute,
  parseCounters,
} from './nft-rules.js'

const COMMAND_TIMEOUT_MS = 5_000
/** how often the kernel's counters (new connections, sessions per backend) are read for the status */
export const FASTPATH_STATS_INTERVAL_MS = 5_000

export type Exec = (argv: readonly string[]) => Promise<CommandResult>

export interface KernelFastPathDeps {
  readonly node: string
  readonly clock: Clock
  readonly logger: Logger
  /** the kernel routes as routing sees them now (see kernelRoutes) */
  readonly routes: () => KernelRoute[]
  readonly exec?: Exec
  readonly nft?: string
  readonly conntrack?: string
}

export interface FastPathListenerStatus {
  readonly name: string
  /** `kernel` while a DNAT rule forwards new connections; `node` while the route is uncertain */
  readonly path: 'kernel' | 'node'
  readonly targets: readonly string[]
  /** new connections the kernel forwarded since the rules were last replaced */
  readonly newConnections: number
  /** established flows per backend id, as conntrack last counted them */
  readonly sessions: Readonly<Record<string, number>>
}

export interface FastPathStatus {
  readonly available: boolean
  readonly table: string
  /** times the kernel table was replaced (a route changed) */
  readonly updates: number
  readonly cuts: number
  readonly listeners: readonly FastPathListenerStatus[]
}

/**
 * The kernel data path: an nftables table of pgmesh's own that DNATs new connections of `kernel`
 * listeners straight to the backend routing chose, replaced atomically whenever a route changes.
 * pgmesh keeps every decision (balancing, the agreed primary, lag limits); an uncertain route has
 * no rule, so its connections reach the Node listener on the same address and queue there. Cuts
 * delete the flows from conntrack: the client's next packet meets a socket that does not know it
 * and gets a RST.
 */
export class KernelFastPath implements Startable {
  readonly #d: KernelFastPathDeps
  readonly #log: Logger
  readonly #table: string
  readonly #exec: Exec
  readonly #nft: string
  readonly #conntrack: string
  readonly #timers: Timer[] = []
  #available = false
  /** nft was tried (at start with kernel listeners, or when the first one appears) */
  #probed = false
  /** a table of ours exists (an update succeeded) */
  #owned = false
  #warned = false
  #applied = ''
  /** the routes the kernel runs (the status) */
  #routes: KernelRoute[] = []
  /** the routes last computed (where flows may be, for cuts) */
  #latest: KernelRoute[] = []
  #queue: Promise<void> = Promise.resolve()
  #updates = 0
  #cuts = 0
  #cutting = new Set<string>()
  /** packets of each named counter (one per new connection), by counter name */
  #counters = new Map<string, number>()
  /** the named counters the kernel's table has */
  #counterNames = new Set<string>()
  #sessions = new Map<string, Record<string, number>>()
  #running = false

  constructor(d: KernelFastPathDeps) {
    this.#d = d
    this.#log = d.logger.child({ component: 'fastpath' })
    this.#table = fastPathTable(d.node)
    this.#exec = d.exec ?? ((argv) => runCommand(argv, { timeoutMs: COMMAND_TIMEOUT_MS }))
    this.#nft = d.nft ?? 'nft'
    this.#conntrack = d.conntrack ?? 'conntrack'
  }

  get table(): string {
    return this.#table
  }

  /** With kernel listeners: removes a table a killed predecessor left, and probes nft. */
  async start(): Promise<void> {
    this.#running = true
    // nothing to do without kernel listeners: no nft runs at all (the first one added probes)
    // queued: a sync() while nft is probed waits for the answer instead of taking "not yet known"
    // for "unavailable" (the rules were then never installed, while the status said kernel)
    if (this.#d.routes().length > 0) {
      this.#queue = this.#queue.then(() => this.#probe())
      await this.#queue
    }
    this.#timers.push(this.#d.clock.every(FASTPATH_STATS_INTERVAL_MS, () => void this.#refreshStats()))
    this.sync()
  }

  /** Removes the table: every kernel listener's new connections reach the Node listener again. */
  async stop(): Promise<void> {
    this.#running = false
    cancelAll(this.#timers)
    await this.#queue
    if (!this.#available || !this.#owned) return
    const r = await this.#exec([this.#nft, fastPathRemoveScript(this.#table)])
    if (r.code !== 0) {
      this.#log.error(
        { code: 'FASTPATH_FAILED', table: this.#table, reason: describeFailure(r, COMMAND_TIMEOUT_MS) },
        `cannot remove the nftables table ${this.#table}: remove it by hand (nft delete table ip ${this.#table})`,
      )
    }
  }

  /** Brings the kernel's rules in line with the routes; a no-op when nothing changed. */
  sync(): void {
    if (!this.#running) return
    const routes = this.#d.routes()
    const key = JSON.stringify(routes)
    if (key === this.#applied) return
    this.#applied = key
    this.#latest = routes
    if (!this.#probed && routes.length > 0) this.#queue = this.#queue.then(() => this.#probe())
    const names = new Set(routes.map((r) => counterName(r.listener)))
    const script = fastPathScript(
      this.#table,
      routes,
      [...this.#counterNames].filter((n) => !names.has(n)),
    )
    this.#queue = this.#queue.then(async () => {
      if (!this.#running) return
      if (!this.#available) {
        this.#routes = routes
        return
      }
      const r = await this.#exec([this.#nft, script])
      if (r.code !== 0) {
        this.#applied = ''
        this.#log.error(
          { code: 'FASTPATH_FAILED', reason: describeFailure(r, COMMAND_TIMEOUT_MS) },
          'cannot update the kernel fast path; new connections keep the previous rules',
        )
        return
      }
      // the status says `kernel` only once the kernel does
      this.#routes = routes
      this.#owned = true
      this.#updates++
      this.#counterNames = names
      this.#log.info(
        {
          routes: routes.map((x) => ({ listener: x.listener, targets: x.targets?.map((t) => t.id) ?? null })),
        },
        'kernel fast path updated',
      )
    })
  }

  /**
   * Closes the kernel-path sessions whose backend stopped being what their listener routes to, as
   * the proxy does for its own (same rule `why`). Edge-triggered: each listener/backend pair is cut
   * once when it turns bad, after the rules stopped sending new connections there.
   */
  cut(
    listeners: readonly ListenerConfig[],
    backends: ReadonlyMap<string, { host: string; port: number }>,
    why: (listener: ListenerConfig, backend: string) => string | null,
  ): void {
    if (!this.#available) return
    const now = new Set<string>()
    for (const l of listeners) {
      const route = this.#latest.find((r) => r.listener === l.name)
      if (route === undefined) continue
      for (const [id, address] of backends) {
        const reason = why(l, id)
        if (reason === null) continue
        const key = `${l.name}/${id}`
        now.add(key)
        if (this.#cutting.has(key)) continue
        this.#queue = this.#queue.then(async () => {
          const r = await this.#exec([this.#conntrack, ...conntrackCutArgs(route, address)])
          // exit 1 with "0 flow entries": nothing to cut
          const deleted = /(\d+) flow entries have been deleted/.exec(r.stderr)
          const n = deleted === null ? 0 : Number(deleted[1])
          if (n > 0) {
            this.#cuts += n
            this.#log.warn(
              { listener: l.name, backend: id, sessions: n, reason },
              `cut ${n} kernel-path session(s) to ${id}: ${reason}`,
            )
          }
        })
      }
    }
    this.#cutting = now
  }

  /** Resolves once every rule update and cut asked for so far has run. */
  settled(): Promise<void> {
    return this.#queue
  }

  status(): FastPathStatus {
    return {
      available: this.#available,
      table: this.#table,
      updates: this.#updates,
      cuts: this.#cuts,
      listeners: this.#routes.map((r) => ({
        name: r.listener,
        path: r.targets !== null && r.targets.length > 0 && this.#available ? 'kernel' : 'node',
        targets: (r.targets ?? []).map((t) => t.id),
        newConnections: this.#counters.get(counterName(r.listener)) ?? 0,
        sessions: { ...(this.#sessions.get(r.listener) ?? {}) },
      })),
    }
  }

  async #refreshStats(): Promise<void> {
    if (!this.#available || this.#routes.length === 0) return
    const listed = await this.#exec([this.#nft, '-j', 'list', 'counters', 'table', 'ip', this.#table])
    if (listed.code === 0) this.#counters = parseCounters(listed.stdout)
    for (const r of this.#routes) {
      const flows = await this.#exec([
        this.#conntrack,
        '-L',
        '-p',
        'tcp',
        ...(r.host === '0.0.0.0' ? [] : ['--orig-dst', r.host]),
        '--orig-port-dst',
        String(r.port),
      ])
      this.#sessions.set(r.listener, countByBackend(flows.stdout, r.targets ?? []))
    }
  }

  /** Removes a table a killed predecessor left, and finds out whether nft works here. */
  async #probe(): Promise<void> {
    if (this.#probed) return
    this.#probed = true
    const r = await this.#exec([this.#nft, fastPathRemoveScript(this.#table)])
    this.#available = r.code === 0
    if (!this.#available) this.#warnUnavailable(r)
  }

  #warnUnavailable(r: CommandResult): void {
    if (this.#warned) return
    this.#warned = true
    this.#log.warn(
      { code: 'FASTPATH_UNAVAILABLE', reason: describeFailure(r, COMMAND_TIMEOUT_MS) },
      'nftables is not usable here: kernel listeners run on the Node path (install nftables and run with CAP_NET_ADMIN)',
    )
  }
}

/** conntrack -L lines counted by the reply source (the backend), established flows only. */
export function countByBackend(
  text: string,
  targets: readonly { id: string; host: string; port: number }[],
): Record<string, number> {
  const out: Record<string, number> = {}
  for (const line of text.split('\n')) {
    if (!line.includes('ESTABLISHED')) continue
    const srcs = [...line.matchAll(/src=(\S+)/g)].map((m) => m[1])
    const sports = [...line.matchAll(/sport=(\d+)/g)].map((m) => Number(m[1]))
    const t = targets.find((x) => x.host === srcs[1] && x.port === sports[1])
    if (t !== undefined) out[t.id] = (out[t.id] ?? 0) + 1
  }
  return out
}

/**
 * The kernel routes of the listeners that ask for the kernel path: the backends routing allows
 * now, or null (Node path) while there are none or the listener needs what only Node does.
 */
export function kernelRoutes(
  listeners: readonly ListenerConfig[],
  bound: (name: string) => { host: string; port: number } | null,
  candidates: (l: ListenerConfig) => BackendTarget[],
): KernelRoute[] {
  const routes: KernelRoute[] = []
  for (const l of listeners) {
    if (l.dataPath !== 'kernel' || l.balance === 'leastconn') continue
    const at = bound(l.name)
    if (at === null) continue
    const targets = candidates(l)
    routes.push({
      listener: l.name,
      host: at.host,
      port: at.port,
      balance: l.balance,
      targets:
        targets.length === 0
          ? null
          : // sorted: the same backends in another order are the same rules (no replace, no counter reset)
            targets
              .map((t) => ({ id: t.id, host: t.host, port: t.port, weight: t.weight }))
              .sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0)),
    })
  }
  return routes
}

/**
 * Routing's session control over both data paths: the kernel's rules are brought in line first
 * (no new connection goes to a backend about to be cut), then its flows and the proxy's sessions
 * are cut by the same rule.
 */
export function bothPaths(
  proxy: SessionControl,
  fastpath: KernelFastPath,
  listeners: () => readonly ListenerConfig[],
  databases: () => ReadonlyMap<string, { host: string; port: number }>,
): SessionControl {
  return {
    cut(why) {
      fastpath.sync()
      fastpath.cut(
        listeners().filter((l) => l.dataPath === 'kernel'),
        databases(),
        why,
      )
      return proxy.cut(why)
    },
    kickAll: () => proxy.kickAll(),
  }
}

/** `127.0.0.1:6432` as a listener status shows its bound address; null for anything but IPv4. */
export function parseBound(bound: string): { host: string; port: number } | null {
  const m = /^(\d{1,3}(?:\.\d{1,3}){3}):(\d+)$/.exec(bound)
  return m === null ? null : { host: m[1]!, port: Number(m[2]) }
}
