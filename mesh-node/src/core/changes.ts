import type { ChangeKind, ChangeListener, Changes } from './contracts.js'

/**
 * The node's "something changed" bus. A listener that throws is isolated: the others still run
 * and the error goes to `onError`, never into the emitter's caller.
 */
export class ChangeEmitter implements Changes {
  readonly #listeners = new Set<ChangeListener>()

  constructor(private readonly onError: (err: unknown) => void = () => undefined) {}

  emit(kind: ChangeKind): void {
    for (const l of this.#listeners) {
      try {
        l(kind)
      } catch (e) {
        this.onError(e)
      }
    }
  }

  on(listener: ChangeListener): () => void {
    this.#listeners.add(listener)
    return () => this.#listeners.delete(listener)
  }
}
