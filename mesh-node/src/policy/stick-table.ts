/**
 * Sticky sessions of one listener, pure: source → the backend it was last sent to, expiring
 * `ttlMs` after that, at most `maxEntries` (least recently used dropped first). Shared through
 * the mesh: entries made here are exported, and a remote entry replaces a local one when it was
 * used more recently.
 */

export interface StickConfig {
  readonly ttlMs: number
  readonly maxEntries: number
}

interface Entry {
  backend: string
  /** mono ms it was last used (here, or on the node it came from) */
  last: number
}

export interface StickUse {
  readonly source: string
  readonly backend: string
  readonly ageMs: number
}

export class StickTable {
  #config: StickConfig
  /** least recently used first (remote entries are placed by arrival, close enough for trimming) */
  readonly #entries = new Map<string, Entry>()
  readonly #dirty = new Set<string>()

  constructor(config: StickConfig) {
    this.#config = config
  }

  update(config: StickConfig): void {
    this.#config = config
    this.#trim()
  }

  get config(): StickConfig {
    return this.#config
  }

  get size(): number {
    return this.#entries.size
  }

  /** The backend `source` is stuck to, unless the entry expired (then it is dropped). */
  get(source: string, now: number): string | null {
    const e = this.#entries.get(source)
    if (e === undefined) return null
    if (now - e.last > this.#config.ttlMs) {
      this.#entries.delete(source)
      this.#dirty.delete(source)
      return null
    }
    return e.backend
  }

  /** `source` was just sent to `backend`. */
  touch(source: string, backend: string, now: number): void {
    this.#entries.delete(source)
    this.#entries.set(source, { backend, last: now })
    this.#dirty.add(source)
    this.#trim()
  }

  /** Another node sent `source` to `backend` `ageMs` ago. */
  merge(source: string, backend: string, ageMs: number, now: number): void {
    const last = now - ageMs
    if (ageMs > this.#config.ttlMs) return
    const e = this.#entries.get(source)
    if (e !== undefined && e.last >= last) return
    this.#entries.delete(source)
    this.#entries.set(source, { backend, last })
    // what came from elsewhere is not sent on again
    this.#dirty.delete(source)
    this.#trim()
  }

  /** Entries used here since the previous call, the most recent first (at most `max`). */
  exportUse(now: number, max: number): StickUse[] {
    const out: StickUse[] = []
    for (const source of this.#dirty) {
      const e = this.#entries.get(source)
      if (e === undefined || now - e.last > this.#config.ttlMs) continue
      out.push({ source, backend: e.backend, ageMs: Math.max(0, Math.round(now - e.last)) })
    }
    this.#dirty.clear()
    out.sort((a, b) => a.ageMs - b.ageMs)
    return out.slice(0, max)
  }

  /** Drops expired entries from the least recently used end. */
  sweep(now: number): void {
    for (const [source, e] of this.#entries) {
      if (now - e.last <= this.#config.ttlMs) break
      this.#entries.delete(source)
      this.#dirty.delete(source)
    }
  }

  /** The most recently used entries, newest first (one pass, no copy of the table). */
  recent(now: number, max: number): { source: string; backend: string; expiresInMs: number }[] {
    const ring: [string, Entry][] = []
    let next = 0
    for (const kv of this.#entries) {
      if (now - kv[1].last > this.#config.ttlMs) continue
      if (ring.length < max) ring.push(kv)
      else ring[next] = kv
      next = (next + 1) % max
    }
    const ordered = ring.length < max ? ring : [...ring.slice(next), ...ring.slice(0, next)]
    return ordered.reverse().map(([source, e]) => ({
      source,
      backend: e.backend,
      expiresInMs: Math.round(this.#config.ttlMs - (now - e.last)),
    }))
  }

  #trim(): void {
    if (this.#entries.size <= this.#config.maxEntries) return
    for (const source of this.#entries.keys()) {
      if (this.#entries.size <= this.#config.maxEntries) break
      this.#entries.delete(source)
      this.#dirty.delete(source)
    }
  }
}
