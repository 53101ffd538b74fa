/** The one clock the proxy reads: monotonic milliseconds (a wall clock step must not end a queue wait). */
export interface MonoClock {
  mono(): number
}

export const systemMonoClock: MonoClock = { mono: () => performance.now() }
