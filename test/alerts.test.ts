import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, it } from 'node:test'
import { promisify } from 'node:util'
import { parse } from 'yaml'
import { ROOT } from './helpers/processes.js'

const run = promisify(execFile)
const PROM_DIR = join(ROOT, 'deploy', 'prometheus')
const RULES = join(PROM_DIR, 'pgmesh-alerts.yml')
const DASHBOARD = join(ROOT, 'deploy', 'grafana', 'pgmesh.json')
/** agreed with the TLS listener work; emitted only when TLS listeners exist */
const TLS_METRIC = 'pgmesh_tls_certificate_expiry_seconds'

async function promtool(args: string[], cwd = PROM_DIR): Promise<{ code: number; out: string }> {
  try {
    const r = await run('promtool', args, { cwd, timeout: 60_000 })
    return { code: 0, out: r.stdout + r.stderr }
  } catch (e) {
    const x = e as { code?: number | string; stdout?: string; stderr?: string }
    return {
      code: typeof x.code === 'number' ? x.code : -1,
      out: `${x.stdout ?? ''}${x.stderr ?? ''}${String(x.code)}`,
    }
  }
}

const PROMQL_WORDS = new Set([
  'and',
  'or',
  'unless',
  'by',
  'without',
  'on',
  'ignoring',
  'group_left',
  'group_right',
  'bool',
  'offset',
  'inf',
  'nan',
])

/** The metric names a PromQL expression reads (not labels, functions, keywords or numbers). */
function metricNames(expr: string): string[] {
  const bare = expr
    .replace(/"(?:[^"\\]|\\.)*"/g, '""')
    .replace(/\{[^}]*\}/g, ' ')
    .replace(/\[[^\]]*\]/g, ' ')
    .replace(/\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)/g, ' ')
  const names = new Set<string>()
  for (const m of bare.matchAll(/[A-Za-z_:][A-Za-z0-9_:]*/g)) {
    const rest = bare.slice((m.index ?? 0) + m[0].length)
    if (/^\s*\(/.test(rest) || PROMQL_WORDS.has(m[0].toLowerCase())) continue
    if (/\$\w*$/.test(bare.slice(0, m.index ?? 0))) continue
    names.add(m[0])
  }
  return [...names]
}

async function documentedMetrics(): Promise<Set<string>> {
  const md = await readFile(join(ROOT, 'docs', 'metrics.md'), 'utf8')
  return new Set([...md.matchAll(/`([a-z_:][a-z0-9_:]*)`/g)].map((m) => m[1]!))
}

interface Panel {
  readonly id: number
  readonly type: string
  readonly title: string
  readonly gridPos: { x: number; y: number; w: number; h: number }
  readonly targets?: readonly { expr: string }[]
}

async function dashboard(): Promise<{ panels: Panel[]; uid: string }> {
  return JSON.parse(await readFile(DASHBOARD, 'utf8')) as { panels: Panel[]; uid: string }
}

async function ruleExprs(): Promise<{ alert: string; expr: string }[]> {
  const doc = parse(await readFile(RULES, 'utf8')) as {
    groups: { rules: { alert: string; expr: string }[] }[]
  }
  return doc.groups.flatMap((g) => g.rules)
}

/** Grafana's variables as Prometheus would see them after substitution. */
const withoutVariables = (expr: string) =>
  expr.replace(/\$__rate_interval/g, '5m').replace(/"\$job"/g, '".+"')

describe('alerting rules and dashboard', () => {
  it('promtool accepts the rules', async () => {
    const r = await promtool(['check', 'rules', RULES])
    assert.equal(r.code, 0, r.out)
    assert.match(r.out, /SUCCESS: 9 rules found/)
  })

  it('every alert fires on its synthetic series and stays quiet otherwise (promtool test rules)', async () => {
    const r = await promtool(['test', 'rules', 'pgmesh-alerts.test.yml'])
    assert.equal(r.code, 0, r.out)
    assert.match(r.out, /SUCCESS/)
    // every alert has a test case
    const tests = await readFile(join(PROM_DIR, 'pgmesh-alerts.test.yml'), 'utf8')
    for (const { alert } of await ruleExprs())
      assert.match(tests, new RegExp(`alertname: ${alert}\\n`), alert)
  })

  it('a broken rule fails its unit test (the tests can fail)', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'pgmesh-alerts-'))
    try {
      const rules = (await readFile(RULES, 'utf8')).replace(
        'sum by (job) (pgmesh_master) == 0',
        'sum by (job) (pgmesh_master) == 1',
      )
      await writeFile(join(dir, 'pgmesh-alerts.yml'), rules)
      await writeFile(
        join(dir, 'pgmesh-alerts.test.yml'),
        await readFile(join(PROM_DIR, 'pgmesh-alerts.test.yml')),
      )
      const r = await promtool(['test', 'rules', 'pgmesh-alerts.test.yml'], dir)
      assert.notEqual(r.code, 0)
      assert.match(r.out, /PgmeshMasterLost/)
    } finally {
      await rm(dir, { recursive: true, force: true })
    }
  })

  it('every metric the rules and the dashboard read is documented in docs/metrics.md', async () => {
    const documented = await documentedMetrics()
    const used = new Map<string, string>()
    for (const r of await ruleExprs()) for (const m of metricNames(r.expr)) used.set(m, `alert ${r.alert}`)
    for (const p of (await dashboard()).panels) {
      for (const t of p.targets ?? []) for (const m of metricNames(t.expr)) used.set(m, `panel "${p.title}"`)
    }
    assert.ok(
      used.has('pgmesh_master') && used.has('process_resident_memory_bytes'),
      'the extractor finds names',
    )
    for (const [m, where] of used) {
      assert.ok(documented.has(m) || m === TLS_METRIC, `${m} (${where}) is not in docs/metrics.md`)
    }
    assert.ok(documented.has(TLS_METRIC), 'docs/metrics.md names the TLS certificate metric')
  })

  it('the metric-name extractor skips labels, functions and keywords', () => {
    assert.deepEqual(
      metricNames(
        'count by (job) (a_total{state="x",job=~"$job"}) unless on (job) (max by (job) (rate(b[5m])) * 2 > on(job) count(c)) - time()',
      ).sort(),
      ['a_total', 'b', 'c'],
    )
  })

  it('every dashboard query is valid PromQL, and panels neither share ids nor overlap', async () => {
    const d = await dashboard()
    assert.equal(d.uid, 'pgmesh-overview')
    const ids = d.panels.map((p) => p.id)
    assert.equal(new Set(ids).size, ids.length, 'panel ids are unique')
    const boxes = d.panels.map((p) => p.gridPos)
    boxes.forEach((a, i) => {
      assert.ok(a.x >= 0 && a.x + a.w <= 24, `panel ${d.panels[i]!.title} fits the 24-column grid`)
      boxes.slice(i + 1).forEach((b, j) => {
        const overlap = a.x < b.x + b.w && b.x < a.x + a.w && a.y < b.y + b.h && b.y < a.y + a.h
        assert.ok(!overlap, `panels "${d.panels[i]!.title}" and "${d.panels[i + j + 1]!.title}" overlap`)
      })
    })
    const exprs = d.panels.flatMap((p) => (p.targets ?? []).map((t) => withoutVariables(t.expr)))
    assert.ok(exprs.length >= 30)
    const dir = await mkdtemp(join(tmpdir(), 'pgmesh-dashboard-'))
    try {
      // promtool parses recording rules' expressions: one rule per dashboard query
      const rules = {
        groups: [
          {
            name: 'dashboard',
            rules: exprs.map((expr, i) => ({ record: `pgmesh:dashboard_query_${i}`, expr })),
          },
        ],
      }
      await writeFile(join(dir, 'queries.yml'), JSON.stringify(rules))
      const r = await promtool(['check', 'rules', join(dir, 'queries.yml')], dir)
      assert.equal(r.code, 0, r.out)
    } finally {
      await rm(dir, { recursive: true, force: true })
    }
  })
})
