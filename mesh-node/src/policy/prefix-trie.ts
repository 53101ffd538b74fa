/**
 * Longest-prefix match over IP addresses: a binary trie in typed arrays, one per address family,
 * so a lookup costs at most 32 (IPv4) or 128 (IPv6) steps whatever the number of prefixes.
 */

const NONE = -1

class BitTrie {
  #zero = new Int32Array(64).fill(NONE)
  #one = new Int32Array(64).fill(NONE)
  #value = new Int32Array(64).fill(NONE)
  #size = 1

  get nodes(): number {
    return this.#size
  }

  /** Sets the value at a prefix; `keep(old, new)` true keeps the value already there. */
  insert(words: readonly number[], bits: number, value: number, keep: (old: number) => boolean): void {
    let node = 0
    for (let i = 0; i < bits; i++) {
      const bit = (words[i >>> 5]! >>> (31 - (i & 31))) & 1
      const next = bit === 0 ? this.#zero : this.#one
      let child = next[node]!
      if (child === NONE) {
        child = this.#alloc()
        ;(bit === 0 ? this.#zero : this.#one)[node] = child
      }
      node = child
    }
    const old = this.#value[node]!
    if (old === NONE || !keep(old)) this.#value[node] = value
  }

  /** The value of the longest prefix holding `words` (its first `bits` bits), or -1. */
  match(words: readonly number[], bits: number): number {
    const zero = this.#zero
    const one = this.#one
    const values = this.#value
    let node = 0
    let found = values[0]!
    for (let i = 0; i < bits; i++) {
      const bit = (words[i >>> 5]! >>> (31 - (i & 31))) & 1
      node = bit === 0 ? zero[node]! : one[node]!
      if (node === NONE) break
      const v = values[node]!
      if (v !== NONE) found = v
    }
    return found
  }

  #alloc(): number {
    if (this.#size === this.#zero.length) {
      const grow = (a: Int32Array) => {
        const b = new Int32Array(a.length * 2).fill(NONE)
        b.set(a)
        return b
      }
      this.#zero = grow(this.#zero)
      this.#one = grow(this.#one)
      this.#value = grow(this.#value)
    }
    return this.#size++
  }
}

export interface Prefix {
  readonly family: 4 | 6
  readonly words: readonly number[]
  readonly bits: number
}

/** Prefixes of both families mapping to a non-negative number (a rule index, say). */
export class PrefixTrie {
  readonly #v4 = new BitTrie()
  readonly #v6 = new BitTrie()

  /** `keep(old)`: when the prefix is already there, true keeps the old value. */
  insert(p: Prefix, value: number, keep: (old: number) => boolean = () => false): void {
    if (p.family === 4) this.#v4.insert(p.words, p.bits, value, keep)
    else this.#v6.insert(p.words, p.bits, value, keep)
  }

  /** The value of the most specific prefix holding the address, or -1. */
  match(ip: { readonly family: 4 | 6; readonly words: readonly number[] }): number {
    return ip.family === 4 ? this.#v4.match(ip.words, 32) : this.#v6.match(ip.words, 128)
  }

  get nodes(): number {
    return this.#v4.nodes + this.#v6.nodes
  }
}
