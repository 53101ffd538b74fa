import type { z } from 'zod'
import type { Issue } from './errors.js'

/**
 * Unknown fields, two ways. Config files and API bodies are strict: a misspelt `prioirty` is an
 * error naming its path, with the closest known field as a hint (HAProxy and Keepalived both
 * reject unknown keywords). A cluster config that arrives over gossip or from this node's own
 * store may come from a newer pgmesh during a rolling upgrade: there the unknown fields are
 * dropped (and reported), the rest is validated as usual, so a newer node never bricks an older.
 * Both rest on the config schemas' objects being `.strict()` (test: config.test.ts).
 */

type Schema = z.ZodType
type Path = readonly PropertyKey[]

/** Levenshtein distance, bounded inputs (field names). */
export function editDistance(a: string, b: string): number {
  const prev = Array.from({ length: b.length + 1 }, (_, j) => j)
  for (let i = 1; i <= a.length; i++) {
    let diag = prev[0]!
    prev[0] = i
    for (let j = 1; j <= b.length; j++) {
      const up = prev[j]!
      prev[j] = Math.min(up + 1, prev[j - 1]! + 1, diag + (a[i - 1] === b[j - 1] ? 0 : 1))
      diag = up
    }
  }
  return prev[b.length]!
}

/** The known name closest to `word`, when it is close enough to be a likely typo. */
export function closestName(word: string, known: Iterable<string>): string | undefined {
  const w = word.toLowerCase()
  let best: { name: string; d: number } | undefined
  for (const name of known) {
    const d = editDistance(w, name.toLowerCase())
    if (best === undefined || d < best.d) best = { name, d }
  }
  if (best === undefined) return undefined
  // a third of the longer name, at least 1: `prioirty` → `priority` (2), not `id` → `vip`
  const limit = Math.max(1, Math.floor(Math.max(w.length, best.name.length) / 3))
  return best.d <= limit ? best.name : undefined
}

function def(s: Schema): { type: string } & Record<string, unknown> {
  return s._zod.def as unknown as { type: string } & Record<string, unknown>
}

/** The object schemas a value at `path` below `root` may be checked by (several for unions). */
function objectsAt(root: Schema, path: Path): Schema[] {
  let here: Schema[] = [root]
  const unwrap = (s: Schema): Schema[] => {
    const d = def(s)
    switch (d.type) {
      case 'optional':
      case 'nullable':
      case 'default':
      case 'prefault':
      case 'readonly':
      case 'catch':
      case 'nonoptional':
        return unwrap(d.innerType as Schema)
      case 'pipe':
        return unwrap(d.in as Schema)
      case 'union':
        return (d.options as Schema[]).flatMap(unwrap)
      case 'lazy':
        return unwrap((d.getter as () => Schema)())
      default:
        return [s]
    }
  }
  here = here.flatMap(unwrap)
  for (const seg of path) {
    const next: Schema[] = []
    for (const s of here) {
      const d = def(s)
      if (d.type === 'object' && typeof seg === 'string') {
        const child = (d.shape as Record<string, Schema>)[seg]
        if (child !== undefined) next.push(child)
      } else if (d.type === 'array' && typeof seg === 'number') {
        next.push(d.element as Schema)
      } else if (d.type === 'record') {
        next.push(d.valueType as Schema)
      }
    }
    here = next.flatMap(unwrap)
  }
  return here.filter((s) => def(s).type === 'object')
}

function knownFields(root: Schema, path: Path): Set<string> {
  const names = new Set<string>()
  for (const o of objectsAt(root, path)) for (const k of Object.keys(def(o).shape as object)) names.add(k)
  return names
}

interface UnknownField {
  readonly path: readonly PropertyKey[]
  readonly key: string
}

function unknownFieldsOf(error: z.ZodError): UnknownField[] {
  const out: UnknownField[] = []
  for (const i of error.issues) {
    if (i.code !== 'unrecognized_keys') continue
    for (const key of i.keys) out.push({ path: i.path, key })
  }
  return out
}

const join = (path: readonly PropertyKey[]) => path.map(String).join('.')

/**
 * The issues of a failed parse, unknown fields rewritten as `a.b.field: unknown field (did you
 * mean "…"?)`, one per field. `prefix` is prepended to every path (e.g. "cluster").
 */
export function issuesWithHints(root: Schema, error: z.ZodError, prefix = ''): Issue[] {
  const at = (path: readonly PropertyKey[]) => [prefix, join(path)].filter((s) => s !== '').join('.')
  const out: Issue[] = []
  for (const i of error.issues) {
    if (i.code !== 'unrecognized_keys') {
      out.push({ path: at(i.path), message: i.message })
      continue
    }
    const known = knownFields(root, i.path)
    for (const key of i.keys) {
      const hint = closestName(key, known)
      out.push({
        path: at([...i.path, key]),
        message:
          hint === undefined
            ? `unknown field (known here: ${[...known].sort().join(', ') || 'none'})`
            : `unknown field (did you mean "${hint}"?)`,
      })
    }
  }
  return out
}

type Json = Record<string, unknown> | unknown[]

function dropAt(doc: unknown, path: readonly PropertyKey[], key: string): void {
  let here: unknown = doc
  for (const seg of path) {
    if (typeof here !== 'object' || here === null) return
    here = (here as Record<PropertyKey, unknown>)[seg]
  }
  if (typeof here === 'object' && here !== null && !Array.isArray(here)) {
    delete (here as Record<string, unknown>)[key]
  }
}

/**
 * Parses `doc` with unknown fields dropped instead of refused: what a node does with a config
 * that a newer node wrote. `doc` is not changed. Returns the parse result and the dropped paths.
 */
export function parseIgnoringUnknownFields<S extends Schema>(
  schema: S,
  doc: unknown,
): { result: z.ZodSafeParseResult<z.output<S>>; ignored: string[] } {
  const ignored: string[] = []
  let current = doc
  let result = schema.safeParse(current)
  // each round drops what the parse reached; unions can reveal deeper fields only after a fix
  for (let round = 0; round < 8 && !result.success; round++) {
    const unknown = unknownFieldsOf(result.error)
    if (unknown.length === 0) break
    if (current === doc) current = structuredClone(doc) as Json
    for (const u of unknown) {
      dropAt(current, u.path, u.key)
      ignored.push(join([...u.path, u.key]))
    }
    result = schema.safeParse(current)
  }
  return { result, ignored }
}

/** Paths of every object in `root` that accepts unknown fields silently (should be none). */
export function nonStrictObjects(root: Schema): string[] {
  const out: string[] = []
  const seen = new Set<Schema>()
  const walk = (s: Schema, path: string): void => {
    if (seen.has(s)) return
    seen.add(s)
    const d = def(s)
    switch (d.type) {
      case 'object': {
        const catchall = d.catchall as Schema | undefined
        if (catchall === undefined || def(catchall).type !== 'never') out.push(path || '(root)')
        for (const [k, v] of Object.entries(d.shape as Record<string, Schema>)) {
          walk(v, path ? `${path}.${k}` : k)
        }
        return
      }
      case 'optional':
      case 'nullable':
      case 'default':
      case 'prefault':
      case 'readonly':
      case 'catch':
      case 'nonoptional':
        walk(d.innerType as Schema, path)
        return
      case 'pipe':
        walk(d.in as Schema, path)
        return
      case 'union':
        for (const o of d.options as Schema[]) walk(o, path)
        return
      case 'array':
        walk(d.element as Schema, `${path}[]`)
        return
      case 'record':
        walk(d.valueType as Schema, `${path}.*`)
        return
      default:
        return
    }
  }
  walk(root, '')
  return out
}
