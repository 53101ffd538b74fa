import { readFile } from 'node:fs/promises'
import type { DatabaseConfig, DB_CHECK_KINDS, DbState } from '@pgmesh/protocol'
import type { Logger } from '../log.js'
import { type PatroniObservation, probePatroni } from './probe-patroni.js'
import { type PostgresObservation, PostgresProber } from './probe-postgres.js'
import { probeTcp, type TcpObservation } from './probe-tcp.js'

export type { DbState }

export interface DatabaseChecks {
  readonly use: readonly (typeof DB_CHECK_KINDS)[number][]
  readonly user: string
  readonly passwordFile?: string | undefined
  readonly database: string
  readonly intervalMs: number
  readonly timeoutMs: number
  readonly rise: number
  readonly fall: number
}

/** This node's confirmed view of one database node, and the raw results behind it. */
export interface DbStatus {
  readonly name: string
  readonly state: DbState
  readonly timeline: number | null
  readonly lagBytes: number | null
  /** monotonic ms of the latest probe result */
  readonly at: number
  /** how long the latest round of probes took, ms (absent before the first) */
  readonly probeMs?: number
  readonly postgres: PostgresObservation | null
  readonly patroni: PatroniObservation | null
  readonly tcp: TcpObservation | null
}

/** One round's raw results; null = that probe is not in use for this database. */
export interface ProbeResults {
  readonly postgres: PostgresObservation | null
  readonly patroni: PatroniObservation | null
  readonly tcp: TcpObservation | null
}

/**
 * What one round of probes says, before rise/fall. A refused TCP connect is down whatever else
 * answered; the database's own answer decides when it is probed; Patroni can say "replica" but
 * never "primary" (a hung or stale Patroni must not send writes anywhere), so its leader is `up`.
 */
export function classify(r: ProbeResults): DbState {
  if (r.tcp !== null && !r.tcp.reachable) return 'down'
  if (r.postgres !== null) {
    if (!r.postgres.reachable) return 'down'
    return r.postgres.writable ? 'primary' : 'replica'
  }
  if (r.patroni?.reachable === true) return r.patroni.role === 'replica' ? 'replica' : 'up'
  return r.tcp?.reachable === true ? 'up' : 'down'
}

/**
 * Rise/fall: leaving `primary`, or going `down`, takes `fall` consecutive results (one flaky check
 * must not cut every session); becoming `primary` or coming back takes `rise`.
 */
export function confirm(
  current: DbState,
  seen: DbState,
  streak: number,
  rise: number,
  fall: number,
): boolean {
  if (seen === current) return false
  const needed = current === 'primary' || seen === 'down' ? fall : rise
  return streak >= needed
}

/**
 * A replica's lag, bytes: what it received but has not replayed, or — when this node's latest
 * check of the primary gave its WAL position — how far its replay is behind the primary, whichever
 * is larger. Received − replayed alone reads 0 on a replica whose WAL stream stopped (its receiver
 * cut off from the primary) while it falls behind without bound. The primary's position comes from
 * its own latest check, at most one check interval from the replica's (Patroni's `/replica?lag`
 * compares with a position up to `loop_wait` old).
 */
export function replicaLag(
  received: number | null,
  replayedLsn: number | null | undefined,
  primaryLsn: number | null | undefined,
): number | null {
  if (replayedLsn === null || replayedLsn === undefined || primaryLsn === null || primaryLsn === undefined)
    return received
  const behind = Math.max(0, primaryLsn - replayedLsn)
  return received === null ? behind : Math.max(received, behind)
}

interface Tracked {
  readonly config: DatabaseConfig
  prober: PostgresProber | null
  status: DbStatus
  candidate: DbState
  streak: number
  timer: NodeJS.Timeout | null
}

/** Probes every database node on its own timer and keeps the confirmed state of each. */
export class DatabaseMonitor {
  readonly #log: Logger
  readonly #tracked = new Map<string, Tracked>()
  readonly #abort = new AbortController()
  #password: string | undefined
  #running = false

  constructor(
    databases: readonly DatabaseConfig[],
    private readonly checks: DatabaseChecks,
    logger: Logger,
    private readonly onChange: (name: string, from: DbState, to: DbState) => void,
    private readonly now: () => number = () => performance.now(),
    /** every finished probe round, e.g. for metrics */
    private readonly onRound: (status: DbStatus) => void = () => undefined,
  ) {
    this.#log = logger.child({ component: 'databases' })
    for (const d of databases) {
      this.#tracked.set(d.name, {
        config: d,
        status: {
          name: d.name,
          state: 'down',
          timeline: null,
          lagBytes: null,
          at: -Infinity,
          postgres: null,
          patroni: null,
          tcp: null,
        },
        prober: null,
        candidate: 'down',
        streak: 0,
        timer: null,
      })
    }
  }

  async start(): Promise<void> {
    if (this.checks.passwordFile !== undefined) {
      this.#password = (await readFile(this.checks.passwordFile, 'utf8')).split('\n')[0]
    }
    this.#running = true
    for (const t of this.#tracked.values()) {
      if (this.checks.use.includes('postgres')) {
        t.prober = new PostgresProber({
          host: t.config.address.host,
          port: t.config.address.port,
          user: this.checks.user,
          database: this.checks.database,
          ...(this.#password === undefined ? {} : { password: this.#password }),
        })
      }
      void this.#round(t)
    }
  }

  stop(): void {
    this.#running = false
    this.#abort.abort()
    for (const t of this.#tracked.values()) {
      if (t.timer !== null) clearTimeout(t.timer)
      t.prober?.close()
    }
  }

  statuses(): DbStatus[] {
    return [...this.#tracked.values()].map((t) => t.status)
  }

  /**
   * Before start: takes over what `old` confirmed of the database nodes both track at the same
   * address, so a config edit does not send a healthy primary back through `rise` checks.
   */
  carryOver(old: DatabaseMonitor): void {
    for (const [name, t] of this.#tracked) {
      const prev = old.#tracked.get(name)
      if (prev === undefined || formatAddress(prev.config) !== formatAddress(t.config)) continue
      t.status = prev.status
      t.candidate = prev.candidate
      t.streak = prev.streak
    }
  }

  /** the WAL position of the one database this node confirms as primary, by its latest check */
  #primaryLsn(): number | null {
    const primaries = [...this.#tracked.values()].filter((t) => t.status.state === 'primary')
    // none, or two (a split brain under way): no reference to measure against
    return primaries.length === 1 ? (primaries[0]!.status.postgres?.walLsn ?? null) : null
  }

  status(name: string): DbStatus | undefined {
    return this.#tracked.get(name)?.status
  }

  async #round(t: Tracked): Promise<void> {
    if (!this.#running) return
    const started = this.now()
    const results = await this.#probe(t)
    if (!this.#running) return
    const c = this.checks
    const { postgres: pg, patroni, tcp } = results
    const seen = classify(results)
    t.streak = seen === t.candidate ? t.streak + 1 : 1
    t.candidate = seen
    const from = t.status.state
    const to = confirm(from, seen, t.streak, c.rise, c.fall) ? seen : from
    t.status = {
      name: t.config.name,
      state: to,
      timeline: pg?.timeline ?? patroni?.timeline ?? t.status.timeline,
      lagBytes:
        to === 'replica'
          ? replicaLag(pg?.lagBytes ?? patroni?.lagBytes ?? null, pg?.walLsn, this.#primaryLsn())
          : (pg?.lagBytes ?? patroni?.lagBytes ?? null),
      at: this.now(),
      probeMs: Math.round(this.now() - started),
      postgres: pg,
      patroni,
      tcp,
    }
    this.onRound(t.status)
    if (to !== from) {
      const error = pg?.error ?? tcp?.error ?? patroni?.error ?? null
      this.#log[to === 'down' ? 'warn' : 'info'](
        { database: t.config.name, from, to, timeline: t.status.timeline, error },
        `database ${t.config.name} is ${to}`,
      )
      this.onChange(t.config.name, from, to)
    }
    t.timer = setTimeout(() => void this.#round(t), Math.max(0, c.intervalMs - (this.now() - started)))
  }

  /** The probes in `use`, in parallel; each never throws and is bounded by the check timeout. */
  async #probe(t: Tracked): Promise<ProbeResults> {
    const c = this.checks
    const d = t.config
    const signal = this.#abort.signal
    const use = new Set(c.use)
    const [postgres, patroni, tcp] = await Promise.all([
      t.prober === null ? null : t.prober.probe(c.timeoutMs, signal),
      use.has('patroni') && d.patroniUrl !== undefined
        ? probePatroni(d.patroniUrl, c.timeoutMs, signal)
        : null,
      use.has('tcp') ? probeTcp(d.address.host, d.address.port, c.timeoutMs, signal) : null,
    ])
    return { postgres, patroni, tcp }
  }
}

const formatAddress = (d: DatabaseConfig) => `${d.address.host}:${d.address.port}`
