import type { MonoClock } from './clock.js'

/** A backend new dispatches skip for now, and why. */
export interface HoldOff {
  readonly backend: string
  readonly reason: string
  /** how much longer it is skipped */
  readonly remainingMs: number
}

interface Held {
  until: number
  reason: string
}

/**
 * Backends that failed a connect or refused a session, skipped by new dispatches for `holdMs`. Pure
 * bookkeeping over an injected monotonic clock; the caller owns the timer that serves its queue
 * again when a hold ends.
 */
export class HoldOffs {
  readonly #held = new Map<string, Held>()

  constructor(
    private readonly clock: MonoClock,
    readonly holdMs: number,
  ) {}

  /** Holds `backend` off for `holdMs` from now; true when it was not held already (worth a log line). */
  hold(backend: string, reason: string): boolean {
    const now = this.clock.mono()
    const h = this.#held.get(backend)
    const fresh = h === undefined || h.until <= now
    this.#held.set(backend, { until: now + this.holdMs, reason })
    return fresh
  }

  /** Whether new dispatches skip `backend` now. */
  isHeld(backend: string, now = this.clock.mono()): boolean {
    if (this.#held.size === 0) return false
    const h = this.#held.get(backend)
    return h !== undefined && h.until > now
  }

  get size(): number {
    return this.#held.size
  }

  /** Forgets holds that have ended. */
  prune(now = this.clock.mono()): void {
    for (const [b, h] of this.#held) if (h.until <= now) this.#held.delete(b)
  }

  /** The holds in force now, for the listener status. */
  list(now = this.clock.mono()): HoldOff[] {
    const out: HoldOff[] = []
    for (const [backend, h] of this.#held) {
      if (h.until > now) out.push({ backend, reason: h.reason, remainingMs: Math.ceil(h.until - now) })
    }
    return out
  }
}
