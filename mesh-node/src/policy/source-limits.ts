/**
 * Per-source limits of one listener, pure: open connections per source (this node's own count)
 * and a token bucket of new connections per source, which the mesh shares: the connections other
 * nodes admitted from a source are taken out of this node's bucket too ({@link debit}).
 * Every decision is O(1); the bucket table is bounded (least recently seen forgotten first).
 */

export interface LimitsConfig {
  readonly maxConnPerSource?: number | undefined
  /** new connections per second */
  readonly ratePerSource?: number | undefined
  readonly burst?: number | undefined
  readonly trackedSources: number
}

interface Bucket {
  tokens: number
  /** mono ms of the last refill */
  at: number
  /** connections admitted here since the last export */
  used: number
  /** mono ms it was last moved to the recent end of the table */
  moved: number
}

/** A bucket is moved to the recent end of the table at most this often (a move costs a delete and an insert). */
const REORDER_MS = 1_000

export type LimitVerdict = 'ok' | 'overConnections' | 'overRate'

export interface RateUse {
  readonly source: string
  readonly used: number
}

export class SourceLimits {
  #config: LimitsConfig
  /** sources with open connections: bounded by the listener's own connections */
  readonly #open = new Map<string, number>()
  /** least recently seen first */
  readonly #buckets = new Map<string, Bucket>()
  /** sources admitted since the last export */
  readonly #dirty = new Set<string>()

  constructor(config: LimitsConfig) {
    this.#config = config
  }

  update(config: LimitsConfig): void {
    this.#config = config
    this.#trim()
  }

  get burst(): number {
    const c = this.#config
    return c.burst ?? Math.max(1, Math.ceil(c.ratePerSource ?? 1))
  }

  /** Takes a slot and a token for a new connection, or says which limit refuses it. */
  admit(source: string, now: number): LimitVerdict {
    const c = this.#config
    // open connections are counted only when limited: nothing to keep per source otherwise
    const open = c.maxConnPerSource === undefined ? -1 : (this.#open.get(source) ?? 0)
    if (c.maxConnPerSource !== undefined && open >= c.maxConnPerSource) return 'overConnections'
    if (c.ratePerSource !== undefined) {
      const b = this.#bucket(source, now)
      if (b.tokens < 1) return 'overRate'
      b.tokens -= 1
      b.used++
      this.#dirty.add(source)
    }
    if (open >= 0) this.#open.set(source, open + 1)
    return 'ok'
  }

  /** A connection admitted by {@link admit} ended. */
  release(source: string): void {
    if (this.#open.size === 0) return
    const open = this.#open.get(source) ?? 0
    if (open <= 1) this.#open.delete(source)
    else this.#open.set(source, open - 1)
  }

  /** Connections another node admitted from `source`: they count against its rate here too. */
  debit(source: string, used: number, now: number): void {
    if (this.#config.ratePerSource === undefined) return
    const b = this.#bucket(source, now)
    // the debt is bounded so a source that stops is served again within two bursts' time
    b.tokens = Math.max(-this.burst, b.tokens - used)
  }

  /**
   * The sources admitted here since the previous call, the closest to their limit first (at most
   * `max`): what the other nodes should debit.
   */
  exportUse(now: number, max: number): RateUse[] {
    const rows: { source: string; used: number; tokens: number }[] = []
    for (const source of this.#dirty) {
      const b = this.#buckets.get(source)
      if (b === undefined || b.used === 0) continue
      this.#refill(b, now)
      rows.push({ source, used: Math.min(b.used, 1_000_000), tokens: b.tokens })
      b.used = 0
    }
    this.#dirty.clear()
    rows.sort((a, b) => a.tokens - b.tokens || b.used - a.used)
    return rows.slice(0, max).map(({ source, used }) => ({ source, used }))
  }

  get trackedSources(): number {
    return this.#buckets.size
  }

  get connectedSources(): number {
    return this.#open.size
  }

  /** Open connections from `source` (for tests and status). */
  openFrom(source: string): number {
    return this.#open.get(source) ?? 0
  }

  /** Whole tokens `source` has left now (the burst when unknown). */
  tokens(source: string, now: number): number {
    const b = this.#buckets.get(source)
    if (b === undefined) return this.burst
    this.#refill(b, now)
    return b.tokens
  }

  #bucket(source: string, now: number): Bucket {
    let b = this.#buckets.get(source)
    if (b === undefined) {
      b = { tokens: this.burst, at: now, used: 0, moved: now }
      this.#buckets.set(source, b)
      this.#trim()
      return b
    }
    this.#refill(b, now)
    if (now - b.moved >= REORDER_MS) {
      // least recently seen first, to within REORDER_MS
      b.moved = now
      this.#buckets.delete(source)
      this.#buckets.set(source, b)
    }
    return b
  }

  #refill(b: Bucket, now: number): void {
    const rate = this.#config.ratePerSource ?? 0
    const dt = Math.max(0, now - b.at)
    b.tokens = Math.min(this.burst, b.tokens + (dt * rate) / 1000)
    b.at = now
  }

  #trim(): void {
    const max = this.#config.trackedSources
    // iterating a Map that often had entries moved to its end is not free: only when over
    if (this.#buckets.size <= max) return
    for (const source of this.#buckets.keys()) {
      if (this.#buckets.size <= max) break
      this.#buckets.delete(source)
      this.#dirty.delete(source)
    }
  }
}
