import type { MonoClock } from './clock.js'

/** Why a client did not get a place in the queue. */
export type EnqueueRefusal = 'full' | 'expired'

interface Waiting<T> {
  readonly item: T
  timer: NodeJS.Timeout
}

/**
 * Clients waiting for a backend, in order, each until its own deadline (monotonic ms from the
 * injected clock). `onTimeout` gets an item whose deadline passed, already out of the queue.
 */
export class WaitQueue<T> {
  readonly #items: Waiting<T>[] = []

  constructor(
    private readonly clock: MonoClock,
    private readonly onTimeout: (item: T) => void,
  ) {}

  get length(): number {
    return this.#items.length
  }

  /** Queues `item` until `deadline`; `first` puts it ahead of the others (it was waiting before them). */
  push(item: T, deadline: number, capacity: number, first = false): EnqueueRefusal | null {
    if (this.#items.length >= capacity) return 'full'
    const left = deadline - this.clock.mono()
    if (left <= 0) return 'expired'
    const w: Waiting<T> = {
      item,
      timer: setTimeout(() => {
        const i = this.#items.indexOf(w)
        if (i >= 0) this.#items.splice(i, 1)
        this.onTimeout(item)
      }, left),
    }
    if (first) this.#items.unshift(w)
    else this.#items.push(w)
    return null
  }

  peek(): T | undefined {
    return this.#items[0]?.item
  }

  /** Takes the head out (it got a backend). */
  shift(): T | undefined {
    const w = this.#items.shift()
    if (w === undefined) return undefined
    clearTimeout(w.timer)
    return w.item
  }

  /** Takes `item` out wherever it is (its client went away); false if it was not queued. */
  remove(item: T): boolean {
    const i = this.#items.findIndex((w) => w.item === item)
    if (i < 0) return false
    clearTimeout(this.#items[i]!.timer)
    this.#items.splice(i, 1)
    return true
  }

  has(item: T): boolean {
    return this.#items.some((w) => w.item === item)
  }

  /** Empties the queue; returns what was in it, in order. */
  clear(): T[] {
    const out = this.#items.splice(0).map((w) => {
      clearTimeout(w.timer)
      return w.item
    })
    return out
  }

  *[Symbol.iterator](): IterableIterator<T> {
    for (const w of this.#items) yield w.item
  }
}
