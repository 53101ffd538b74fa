import type { Clock, Timer } from '../core/contracts.js'

interface Scheduled {
  at: number
  readonly seq: number
  readonly every: number | null
  readonly fn: () => void
  cancelled: boolean
}

/** Lets pending promises, I/O callbacks and setImmediate work run (memory transport deliveries). */
export async function settle(rounds = 4): Promise<void> {
  for (let i = 0; i < rounds; i++) await new Promise<void>((r) => setImmediate(r))
}

/**
 * Virtual time for a whole node or cluster in one process: timers fire only from `advance()`, in
 * time order, with the asynchronous work each one starts settled before the next fires. Real time
 * spent is what the code costs, not what its timings say.
 */
export class FakeClock implements Clock {
  #now: number
  #seq = 0
  readonly #timers: Scheduled[] = []

  constructor(
    start = 1_000_000,
    private readonly wallOffset = Date.UTC(2026, 11, 1),
  ) {
    this.#now = start
  }

  mono(): number {
    return this.#now
  }

  wall(): number {
    return this.wallOffset + this.#now
  }

  after(ms: number, fn: () => void): Timer {
    return this.#add(Math.max(0, ms), null, fn)
  }

  every(ms: number, fn: () => void): Timer {
    return this.#add(Math.max(1, ms), Math.max(1, ms), fn)
  }

  sleep(ms: number, signal?: AbortSignal): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      if (signal?.aborted) {
        reject(signal.reason)
        return
      }
      const t = this.after(ms, () => {
        signal?.removeEventListener('abort', onAbort)
        resolve()
      })
      const onAbort = () => {
        t.cancel()
        reject(signal?.reason)
      }
      signal?.addEventListener('abort', onAbort, { once: true })
    })
  }

  /** Moves time forward by `ms`, firing every timer that falls due on the way. */
  async advance(ms: number): Promise<void> {
    const target = this.#now + ms
    for (;;) {
      await settle()
      const next = this.#nextDue(target)
      if (next === undefined) break
      this.#now = Math.max(this.#now, next.at)
      if (next.every === null) next.cancelled = true
      else next.at += next.every
      next.fn()
    }
    this.#now = target
    await settle()
  }

  /** Advances in `stepMs` steps until `done()` holds or `maxMs` of virtual time passed; returns whether it held. */
  async until(done: () => boolean, maxMs: number, stepMs = 10): Promise<boolean> {
    for (let waited = 0; waited <= maxMs; waited += stepMs) {
      if (done()) return true
      await this.advance(stepMs)
    }
    return done()
  }

  /** timers still scheduled (a stopped node should leave none) */
  pending(): number {
    this.#prune()
    return this.#timers.length
  }

  #add(ms: number, every: number | null, fn: () => void): Timer {
    const s: Scheduled = { at: this.#now + ms, seq: this.#seq++, every, fn, cancelled: false }
    this.#timers.push(s)
    return {
      cancel: () => {
        s.cancelled = true
      },
    }
  }

  #prune(): void {
    for (let i = this.#timers.length - 1; i >= 0; i--)
      if (this.#timers[i]!.cancelled) this.#timers.splice(i, 1)
  }

  #nextDue(target: number): Scheduled | undefined {
    this.#prune()
    let best: Scheduled | undefined
    for (const t of this.#timers) {
      if (t.at > target) continue
      if (best === undefined || t.at < best.at || (t.at === best.at && t.seq < best.seq)) best = t
    }
    return best
  }
}
