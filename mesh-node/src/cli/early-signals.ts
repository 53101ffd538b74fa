export type StopSignal = 'SIGTERM' | 'SIGINT'

type Signal = StopSignal | 'SIGHUP'
interface SignalSource {
  on(signal: Signal, handler: () => void): unknown
  off(signal: Signal, handler: () => void): unknown
}

/**
 * Holds the signals that arrive while a node is starting. Until a handler is installed, Node's
 * default for SIGHUP and SIGTERM ends the process at once: a reload sent as soon as the API
 * answers (the gossip transport can take seconds longer on a busy host) would kill the node, and a
 * stop would skip the graceful leave. Held signals are acted on once the node runs.
 */
export class EarlySignals {
  #stop: StopSignal | null = null
  #reload = false
  readonly #handlers: ReadonlyArray<readonly [Signal, () => void]> = [
    ['SIGTERM', () => this.#held('SIGTERM')],
    ['SIGINT', () => this.#held('SIGINT')],
    ['SIGHUP', () => this.#held('SIGHUP')],
  ]

  constructor(private readonly source: SignalSource = process) {
    for (const [s, h] of this.#handlers) source.on(s, h)
  }

  #held(s: Signal): void {
    if (s === 'SIGHUP') this.#reload = true
    else this.#stop ??= s
  }

  /** Stops holding (the caller has installed its own handlers) and says what arrived meanwhile. */
  release(): { readonly stop: StopSignal | null; readonly reload: boolean } {
    for (const [s, h] of this.#handlers) this.source.off(s, h)
    return { stop: this.#stop, reload: this.#reload }
  }
}
