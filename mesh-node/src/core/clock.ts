import type { Clock, Timer } from './contracts.js'

/** The real clock: performance.now() for durations, Date.now() for display, Node's timers. */
export const systemClock: Clock = {
  mono: () => performance.now(),
  wall: () => Date.now(),
  after(ms, fn) {
    const t = setTimeout(fn, Math.max(0, ms))
    return { cancel: () => clearTimeout(t) }
  },
  every(ms, fn) {
    const t = setInterval(fn, Math.max(1, ms))
    return { cancel: () => clearInterval(t) }
  },
  sleep(ms, signal) {
    return new Promise<void>((resolve, reject) => {
      if (signal?.aborted) {
        reject(signal.reason)
        return
      }
      const onAbort = () => {
        clearTimeout(t)
        reject(signal?.reason)
      }
      const t = setTimeout(
        () => {
          signal?.removeEventListener('abort', onAbort)
          resolve()
        },
        Math.max(0, ms),
      )
      signal?.addEventListener('abort', onAbort, { once: true })
    })
  },
}

/** Cancels every timer in `timers` and empties the list. */
export function cancelAll(timers: Timer[]): void {
  for (const t of timers) t.cancel()
  timers.length = 0
}
