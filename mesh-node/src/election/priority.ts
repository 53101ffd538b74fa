import { MAX_EFFECTIVE_PRIORITY, MIN_EFFECTIVE_PRIORITY } from '@pgmesh/protocol'

export interface WeightedCheck {
  readonly name: string
  readonly weight: number
}

export interface EffectivePriority {
  readonly priority: number
  /** false while a weight-0 check fails (Keepalived's FAULT state) */
  readonly eligible: boolean
}

/** Keepalived's arithmetic: negative weights count while failing, positive while passing; clamped to 1..254. */
export function effectivePriority(
  base: number,
  checks: readonly WeightedCheck[],
  failing: ReadonlySet<string>,
): EffectivePriority {
  let priority = base
  let eligible = true
  for (const c of checks) {
    const fails = failing.has(c.name)
    if (c.weight === 0 && fails) eligible = false
    else if (c.weight < 0 && fails) priority += c.weight
    else if (c.weight > 0 && !fails) priority += c.weight
  }
  return {
    priority: Math.min(MAX_EFFECTIVE_PRIORITY, Math.max(MIN_EFFECTIVE_PRIORITY, priority)),
    eligible,
  }
}

/** Total order on candidates: higher effective priority wins, equal priorities fall back to the id. */
export function outranks(aPriority: number, aId: string, bPriority: number, bId: string): boolean {
  return aPriority > bPriority || (aPriority === bPriority && aId > bId)
}
