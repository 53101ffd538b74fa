/**
 * mulberry32 as a pure function: the state machine keeps the seed in its state, so a step stays a
 * function of its inputs (the driver seeds it from a random source, the simulator from its PRNG).
 */
export function nextRandom(seed: number): { readonly value: number; readonly seed: number } {
  const next = (seed + 0x6d2b79f5) | 0
  let t = next
  t = Math.imul(t ^ (t >>> 15), t | 1)
  t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
  return { value: ((t ^ (t >>> 14)) >>> 0) / 4294967296, seed: next }
}
