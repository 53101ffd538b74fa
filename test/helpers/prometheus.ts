import assert from 'node:assert/strict'

export interface Sample {
  readonly name: string
  readonly labels: Readonly<Record<string, string>>
  readonly value: number
}

/**
 * A strict reader of the Prometheus text format 0.0.4: every line is a HELP, a TYPE or a sample of
 * a family declared before it. Throws on anything else.
 */
export function parseExposition(text: string): { types: Map<string, string>; samples: Sample[] } {
  const types = new Map<string, string>()
  const samples: Sample[] = []
  for (const line of text.split('\n')) {
    if (line === '') continue
    const meta = /^# (HELP|TYPE) ([a-zA-Z_:][a-zA-Z0-9_:]*) (.*)$/.exec(line)
    if (meta !== null) {
      if (meta[1] === 'TYPE') {
        assert.match(meta[3]!, /^(counter|gauge|histogram|summary|untyped)$/, line)
        types.set(meta[2]!, meta[3]!)
      }
      continue
    }
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line)
    assert.ok(m !== null, `not a sample line: ${line}`)
    const labels: Record<string, string> = {}
    const body = m[2] ?? ''
    const re = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)",?/gy
    let consumed = 0
    for (let l = re.exec(body); l !== null; l = re.exec(body)) {
      labels[l[1]!] = l[2]!
      consumed = re.lastIndex
    }
    assert.equal(consumed, body.length, `bad labels in: ${line}`)
    // Prometheus reads values with Go's ParseFloat: NaN and Inf in any case (prom-client writes "Nan")
    const raw = m[3]!
    const value = /^[+-]?inf$/i.test(raw)
      ? raw.startsWith('-')
        ? -Infinity
        : Infinity
      : /^nan$/i.test(raw)
        ? Number.NaN
        : Number(raw)
    assert.ok(!Number.isNaN(value) || /^nan$/i.test(raw), `bad value in: ${line}`)
    const name = m[1]!
    const family = [...types.keys()].find(
      (f) => name === f || name === `${f}_bucket` || name === `${f}_sum` || name === `${f}_count`,
    )
    assert.ok(family !== undefined, `sample before its TYPE: ${line}`)
    samples.push({ name, labels, value })
  }
  return { types, samples }
}

/** The value of the one sample named `name` whose labels include `labels`. */
export function sampleValue(
  samples: readonly Sample[],
  name: string,
  labels: Record<string, string> = {},
): number {
  const hits = samples.filter(
    (s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v),
  )
  assert.equal(hits.length, 1, `${name} ${JSON.stringify(labels)}: ${hits.length} samples`)
  return hits[0]!.value
}
