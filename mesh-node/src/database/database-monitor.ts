import { readFile } from 'node:fs/promises'
import type { DatabaseConfig } from '@pgmesh/protocol'
import type { Logger } from '../log.js'
import { type PatroniObservation, probePatroni } from './probe-patroni.js'
import { type PostgresObservation, probePostgres } from './probe-postgres.js'

export type DbState = 'primary' | 'replica' | 'down'

export interface DatabaseChecks {
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
  readonly postgres: PostgresObservation | null
  readonly patroni: PatroniObservation | null
}

/** What one round of probes says, before rise/fall: the database's own answer decides. */
export function classify(pg: PostgresObservation): DbState {
  if (!pg.reachable) return 'down'
  return pg.writable ? 'primary' : 'replica'
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

interface Tracked {
  readonly config: DatabaseConfig
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
        },
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
    for (const t of this.#tracked.values()) void this.#round(t)
  }

  stop(): void {
    this.#running = false
    this.#abort.abort()
    for (const t of this.#tracked.values()) if (t.timer !== null) clearTimeout(t.timer)
  }

  statuses(): DbStatus[] {
    return [...this.#tracked.values()].map((t) => t.status)
  }

  status(name: string): DbStatus | undefined {
    return this.#tracked.get(name)?.status
  }

  async #round(t: Tracked): Promise<void> {
    if (!this.#running) return
    const started = this.now()
    const c = this.checks
    const [pg, patroni] = await Promise.all([
      probePostgres(
        {
          host: t.config.address.host,
          port: t.config.address.port,
          user: c.user,
          database: c.database,
          ...(this.#password === undefined ? {} : { password: this.#password }),
        },
        c.timeoutMs,
        this.#abort.signal,
      ),
      t.config.patroniUrl === undefined
        ? Promise.resolve(null)
        : probePatroni(t.config.patroniUrl, c.timeoutMs, this.#abort.signal),
    ])
    if (!this.#running) return
    const seen = classify(pg)
    t.streak = seen === t.candidate ? t.streak + 1 : 1
    t.candidate = seen
    const from = t.status.state
    const to = confirm(from, seen, t.streak, c.rise, c.fall) ? seen : from
    t.status = {
      name: t.config.name,
      state: to,
      timeline: pg.timeline ?? patroni?.timeline ?? t.status.timeline,
      lagBytes: pg.lagBytes ?? patroni?.lagBytes ?? null,
      at: this.now(),
      postgres: pg,
      patroni,
    }
    if (to !== from) {
      this.#log[to === 'down' ? 'warn' : 'info'](
        { database: t.config.name, from, to, timeline: t.status.timeline, error: pg.error },
        `database ${t.config.name} is ${to}`,
      )
      this.onChange(t.config.name, from, to)
    }
    t.timer = setTimeout(() => void this.#round(t), Math.max(0, c.intervalMs - (this.now() - started)))
  }
}
