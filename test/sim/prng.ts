/** xoshiro128** seeded through splitmix32: the simulator's only source of randomness. */
export class Prng {
  private a: number
  private b: number
  private c: number
  private d: number

  constructor(seed: number) {
    let s = seed >>> 0
    const split = () => {
      s = (s + 0x9e3779b9) >>> 0
      let z = s
      z = Math.imul(z ^ (z >>> 16), 0x85ebca6b) >>> 0
      z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35) >>> 0
      return (z ^ (z >>> 16)) >>> 0
    }
    this.a = split()
    this.b = split()
    this.c = split()
    this.d = split()
  }

  /** uniform in [0, 1) */
  next(): number {
    const result = Math.imul(rotl(Math.imul(this.b, 5) >>> 0, 7), 9) >>> 0
    const t = (this.b << 9) >>> 0
    this.c = (this.c ^ this.a) >>> 0
    this.d = (this.d ^ this.b) >>> 0
    this.b = (this.b ^ this.c) >>> 0
    this.a = (this.a ^ this.d) >>> 0
    this.c = (this.c ^ t) >>> 0
    this.d = rotl(this.d, 11)
    return result / 4294967296
  }

  /** uniform in [lo, hi) */
  range(lo: number, hi: number): number {
    return lo + this.next() * (hi - lo)
  }

  /** integer in [lo, hi] */
  int(lo: number, hi: number): number {
    return lo + Math.floor(this.next() * (hi - lo + 1))
  }

  chance(p: number): boolean {
    return this.next() < p
  }

  pick<T>(items: readonly T[]): T {
    const item = items[Math.floor(this.next() * items.length)]
    if (item === undefined) throw new Error('pick from an empty list')
    return item
  }

  uint32(): number {
    return Math.floor(this.next() * 4294967296) >>> 0
  }
}

function rotl(x: number, k: number): number {
  return ((x << k) | (x >>> (32 - k))) >>> 0
}
