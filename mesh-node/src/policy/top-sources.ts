/**
 * The sources refused most, in bounded memory: the space-saving algorithm keeps `capacity`
 * counters; a new source takes over the smallest one (and its count, as an over-estimate), so a
 * flood of distinct addresses never grows it and a heavy hitter is never lost.
 */
export class TopSources {
  readonly #counts = new Map<string, number>()

  constructor(readonly capacity = 64) {}

  add(source: string): void {
    const c = this.#counts.get(source)
    if (c !== undefined) {
      this.#counts.set(source, c + 1)
      return
    }
    if (this.#counts.size < this.capacity) {
      this.#counts.set(source, 1)
      return
    }
    let minKey = ''
    let min = Number.POSITIVE_INFINITY
    for (const [k, v] of this.#counts) {
      if (v < min) {
        min = v
        minKey = k
      }
    }
    this.#counts.delete(minKey)
    this.#counts.set(source, min + 1)
  }

  get size(): number {
    return this.#counts.size
  }

  /** The `n` largest, largest first. */
  top(n: number): { source: string; refused: number }[] {
    return [...this.#counts]
      .sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : 1))
      .slice(0, n)
      .map(([source, refused]) => ({ source, refused }))
  }
}
