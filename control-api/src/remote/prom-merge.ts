/**
 * Several nodes' Prometheus text expositions as one: every sample gets a `pgmesh_node` label
 * naming its node, and each metric family is written once (its HELP and TYPE, then the samples of
 * every node), which the text format requires. Lines that are not samples or HELP/TYPE are dropped.
 */

interface Family {
  help: string | null
  type: string | null
  samples: string[]
}

const NAME = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(.*)$/

function escapeLabel(v: string): string {
  return v.replace(/\\/g, '\\\\').replace(/\n/g, '\\n').replace(/"/g, '\\"')
}

function withLabel(sample: string, label: string): string | null {
  const m = NAME.exec(sample)
  if (m === null) return null
  const [, name, rest = ''] = m
  if (rest.startsWith('{}')) return `${name}{${label}}${rest.slice(2)}`
  if (rest.startsWith('{')) return `${name}{${label},${rest.slice(1)}`
  if (!rest.startsWith(' ')) return null
  return `${name}{${label}}${rest}`
}

export function mergeExpositions(parts: readonly { node: string; text: string }[]): string {
  const families = new Map<string, Family>()
  const family = (name: string): Family => {
    let f = families.get(name)
    if (f === undefined) {
      f = { help: null, type: null, samples: [] }
      families.set(name, f)
    }
    return f
  }
  for (const { node, text } of parts) {
    const label = `pgmesh_node="${escapeLabel(node)}"`
    let current: string | null = null
    for (const raw of text.split('\n')) {
      const line = raw.trimEnd()
      if (line === '') continue
      const meta = /^# (HELP|TYPE) ([a-zA-Z_:][a-zA-Z0-9_:]*) ?(.*)$/.exec(line)
      if (meta !== null) {
        const [, kind, name = '', value = ''] = meta
        current = name
        const f = family(name)
        if (kind === 'HELP') f.help ??= value
        else f.type ??= value
        continue
      }
      if (line.startsWith('#')) continue
      const sample = withLabel(line, label)
      if (sample === null) continue
      const name = NAME.exec(line)?.[1] ?? ''
      // a histogram's _bucket/_sum/_count samples belong to the family declared above them
      const owner = current !== null && name.startsWith(current) ? current : name
      family(owner).samples.push(sample)
    }
  }
  const out: string[] = []
  for (const [name, f] of families) {
    if (f.samples.length === 0) continue
    if (f.help !== null) out.push(`# HELP ${name} ${f.help}`)
    if (f.type !== null) out.push(`# TYPE ${name} ${f.type}`)
    out.push(...f.samples)
  }
  return out.length === 0 ? '' : `${out.join('\n')}\n`
}
