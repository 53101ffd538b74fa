import { connect } from 'node:net'
import type { MonoClock } from './clock.js'

export interface CancelTarget {
  readonly id: string
  readonly host: string
  readonly port: number
}

/** the most database nodes one CancelRequest is copied to */
export const CANCEL_FANOUT_MAX_TARGETS = 64

/**
 * Token bucket of `perSecond` cancels (burst: one second's worth) over the injected monotonic clock:
 * a client flooding CancelRequests cannot make the node open connections without bound.
 */
export class CancelBudget {
  #tokens: number
  #at: number

  constructor(
    private readonly clock: MonoClock,
    private perSecond: number,
  ) {
    this.#tokens = perSecond
    this.#at = clock.mono()
  }

  setRate(perSecond: number): void {
    this.perSecond = perSecond
    this.#tokens = Math.min(this.#tokens, perSecond)
  }

  take(): boolean {
    const now = this.clock.mono()
    this.#tokens = Math.min(this.perSecond, this.#tokens + ((now - this.#at) * this.perSecond) / 1000)
    this.#at = now
    if (this.#tokens < 1) return false
    this.#tokens -= 1
    return true
  }
}

/**
 * Sends one CancelRequest (16 bytes: the backend's pid and secret key) to each target on its own
 * short connection, as libpq does. PostgreSQL acts on the one whose key matches and ignores the
 * others, and answers none of them, so nothing comes back: each connection just ends.
 */
export function sendCancel(
  packet: Buffer,
  targets: readonly CancelTarget[],
  connectTimeoutMs: number,
): { readonly sent: number; readonly done: Promise<void> } {
  const picked = targets.slice(0, CANCEL_FANOUT_MAX_TARGETS)
  const closed = picked.map(
    (t) =>
      new Promise<void>((done) => {
        const s = connect({ host: t.host, port: t.port })
        s.on('error', () => undefined)
        // the whole exchange is bounded: a server that neither answers nor closes is let go
        s.setTimeout(connectTimeoutMs, () => s.destroy())
        s.once('connect', () => s.end(packet))
        s.once('close', () => done())
      }),
  )
  return { sent: picked.length, done: Promise.all(closed).then(() => undefined) }
}
