/**
 * Bounds checked on inbound data before any work on it: JSON.parse, schema validation and hashing
 * all cost time or stack in proportion to what a peer chose to send.
 */

/**
 * The deepest nesting of arrays and objects a pgmesh message may have. A whole gossip message with
 * the cluster config inside needs about 8; anything near this is hostile (hashing or printing a
 * structure thousands deep overflows the stack).
 */
export const MAX_JSON_DEPTH = 32

/** The deepest nesting a cluster config section may have (it travels 3 levels down in a message). */
export const MAX_CONFIG_DEPTH = 24

/** The most values a config document may hold (a 1 MiB message cannot hold more than ~500 000). */
export const MAX_CONFIG_VALUES = 1_000_000

/**
 * True when JSON text nests arrays/objects deeper than `max`. A linear scan with no recursion and no
 * allocation, so it is safe to run on anything before JSON.parse; it does not validate the JSON.
 */
export function jsonTextTooDeep(text: string, max: number): boolean {
  let depth = 0
  let inString = false
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i)
    if (inString) {
      if (c === 0x5c)
        i++ // backslash: the next character is escaped
      else if (c === 0x22) inString = false
    } else if (c === 0x22) inString = true
    else if (c === 0x5b || c === 0x7b) {
      if (++depth > max) return true
    } else if (c === 0x5d || c === 0x7d) depth--
  }
  return false
}

/**
 * True when a parsed value nests arrays/objects deeper than `maxDepth` or holds more than
 * `maxValues` values (which also stops on a structure that refers to itself). Iterative: never
 * recurses, however deep the input.
 */
export function valueTooDeep(value: unknown, maxDepth: number, maxValues = MAX_CONFIG_VALUES): boolean {
  const stack: { readonly v: unknown; readonly depth: number }[] = [{ v: value, depth: 0 }]
  let seen = 0
  while (stack.length > 0) {
    const top = stack.pop()
    if (top === undefined || typeof top.v !== 'object' || top.v === null) continue
    const depth = top.depth + 1
    if (depth > maxDepth) return true
    const children = Array.isArray(top.v) ? top.v : Object.values(top.v)
    seen += children.length
    if (seen > maxValues) return true
    for (const v of children) if (typeof v === 'object' && v !== null) stack.push({ v, depth })
  }
  return false
}
