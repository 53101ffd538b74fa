import type { BackendsView, ClusterStatus } from '@pgmesh/protocol'
import { Html, html } from './status-html.js'

/**
 * The status page's charts: each render embeds one point of numbers (JSON, in the page), and the
 * page's script keeps the points of the last minutes in the browser (sessionStorage, so a reload
 * keeps them) and draws them as inline SVG. No build step, no library, nothing kept server-side.
 */

/** One sample: wall time (ms) and named values; a name's prefix says which chart it belongs to. */
export interface ChartPoint {
  readonly t: number
  readonly v: Readonly<Record<string, number>>
}

export function chartPoint(status: ClusterStatus, backends: BackendsView): ChartPoint {
  const v: Record<string, number> = {}
  for (const l of status.listeners) {
    v[`conn:${l.name}`] = l.active
    v[`cut:${l.name}`] = l.cut
  }
  for (const d of backends.databases) {
    if (typeof d.local.probeMs === 'number') v[`probe:${d.name}`] = d.local.probeMs
  }
  for (const r of backends.agreed.replicas) if (r.lagBytes !== null) v[`lag:${r.db}`] = r.lagBytes
  for (const n of status.aggregate?.nodes ?? []) {
    if (n.latencyMs !== null) v[`api:${n.id ?? n.url}`] = n.latencyMs
  }
  const t = Date.parse(status.generatedAt)
  return { t: Number.isFinite(t) ? t : 0, v }
}

const CHARTS = [
  { key: 'conn', title: 'Connections per listener', unit: '' },
  { key: 'cut', title: 'Sessions cut per listener', unit: '', delta: true },
  { key: 'probe', title: 'Check latency', unit: 'ms' },
  { key: 'lag', title: 'Replica lag', unit: 'B' },
  { key: 'api', title: 'Node API latency (from the control plane)', unit: 'ms', only: 'aggregate' },
] as const

/** JSON inside <script>: `<` escaped so no value can close the element. */
function scriptJson(value: unknown): string {
  return JSON.stringify(value).replace(/</g, '\\u003c')
}

export function chartsSection(point: ChartPoint, aggregate: boolean): Html {
  const cards = CHARTS.filter((c) => !('only' in c) || aggregate).map(
    (c) =>
      html`<div class="card chart" data-testid="chart" data-chart="${c.key}"><div class="label">${c.title}</div><div class="plot"><span class="muted">collecting…</span></div></div>`,
  )
  return html`<section id="charts"><h2>Last minutes <span class="muted">kept by this browser</span></h2><div class="cards charts">${cards}</div>
<script type="application/json" id="pgmesh-chart-point">${new Html(scriptJson(point))}</script></section>`
}

export const CHART_STYLE = `
.charts{grid-template-columns:repeat(auto-fit,minmax(170px,1fr))}.chart svg{width:100%;height:90px;display:block}
.chart .legend{font-size:.75rem;display:flex;flex-wrap:wrap;gap:2px 10px}.chart .legend i{display:inline-block;width:10px;height:3px;margin-right:4px;vertical-align:middle}
ol.timeline{list-style:none;margin:0;padding:0;background:var(--card);border:1px solid var(--line);border-radius:8px}
ol.timeline li{padding:6px 8px;border-bottom:1px solid var(--line)}ol.timeline li:last-child{border-bottom:0}
ol.timeline time{font-family:ui-monospace,monospace;color:var(--muted);margin-right:4px}
`

/** Client side: take the page's point into the history, draw every chart. Plain ES2017. */
export const CHART_SCRIPT = `
const pgmeshCharts = (() => {
  const WINDOW_MS = 10 * 60 * 1000, MAX_POINTS = 400
  const KEY = 'pgmesh-history:' + location.host + location.pathname
  const CHARTS = ${JSON.stringify(CHARTS)}
  const COLORS = ['#0969da', '#cf222e', '#1a7f37', '#9a6700', '#8250df', '#bf3989', '#0a3069', '#57606a']
  const NS = 'http://www.w3.org/2000/svg'
  let hist = []
  try { hist = JSON.parse(sessionStorage.getItem(KEY) || '[]') } catch (e) { hist = [] }
  function take() {
    const el = document.getElementById('pgmesh-chart-point')
    if (!el) return
    let p
    try { p = JSON.parse(el.textContent) } catch (e) { return }
    if (!p || typeof p.t !== 'number') return
    const last = hist[hist.length - 1]
    if (!last || p.t > last.t) hist.push(p)
    hist = hist.filter((x) => x.t >= p.t - WINDOW_MS).slice(-MAX_POINTS)
    try { sessionStorage.setItem(KEY, JSON.stringify(hist)) } catch (e) {}
  }
  function fmt(v, unit) {
    if (unit === 'B') {
      const u = ['B', 'KiB', 'MiB', 'GiB']; let i = 0
      while (Math.abs(v) >= 1024 && i < u.length - 1) { v /= 1024; i++ }
      return (i === 0 ? v : v.toFixed(1)) + ' ' + u[i]
    }
    return (Math.round(v * 10) / 10) + (unit ? ' ' + unit : '')
  }
  function el(name, attrs) {
    const e = document.createElementNS(NS, name)
    for (const k in attrs) e.setAttribute(k, String(attrs[k]))
    return e
  }
  function series(chart) {
    const names = []
    for (const p of hist) for (const k in p.v) if (k.indexOf(chart.key + ':') === 0 && names.indexOf(k) < 0) names.push(k)
    return names.map((k) => {
      const pts = []
      let prev = null
      for (const p of hist) {
        if (!(k in p.v)) { prev = null; continue }
        let v = p.v[k]
        if (chart.delta) { const d = prev === null ? 0 : Math.max(0, v - prev); prev = v; v = d }
        pts.push([p.t, v])
      }
      return { name: k.slice(chart.key.length + 1), pts }
    })
  }
  function draw() {
    for (const chart of CHARTS) {
      const card = document.querySelector('[data-chart="' + chart.key + '"] .plot')
      if (!card) continue
      const all = series(chart)
      if (hist.length < 2 || all.length === 0) {
        card.innerHTML = ''
        const s = document.createElement('span'); s.className = 'muted'
        s.textContent = all.length === 0 ? 'nothing reported' : 'collecting…'
        card.appendChild(s)
        continue
      }
      const t0 = hist[0].t, t1 = hist[hist.length - 1].t
      let max = 0
      for (const s of all) for (const p of s.pts) max = Math.max(max, p[1])
      if (max === 0) max = 1
      const W = 300, H = 90, pad = 2
      const svg = el('svg', { viewBox: '0 0 ' + W + ' ' + H, preserveAspectRatio: 'none', role: 'img' })
      svg.appendChild(el('line', { x1: 0, y1: H - pad, x2: W, y2: H - pad, stroke: 'currentColor', 'stroke-opacity': 0.2 }))
      all.forEach((s, i) => {
        const pts = s.pts.map((p) => {
          const x = t1 === t0 ? W : ((p[0] - t0) / (t1 - t0)) * W
          const y = H - pad - (p[1] / max) * (H - 2 * pad)
          return x.toFixed(1) + ',' + y.toFixed(1)
        })
        svg.appendChild(el('polyline', { points: pts.join(' '), fill: 'none', stroke: COLORS[i % COLORS.length], 'stroke-width': 1.5, 'vector-effect': 'non-scaling-stroke' }))
      })
      const legend = document.createElement('div'); legend.className = 'legend'
      all.forEach((s, i) => {
        const item = document.createElement('span')
        const sw = document.createElement('i'); sw.style.background = COLORS[i % COLORS.length]
        const last = s.pts.length ? s.pts[s.pts.length - 1][1] : 0
        item.appendChild(sw); item.appendChild(document.createTextNode(s.name + ' ' + fmt(last, chart.unit)))
        legend.appendChild(item)
      })
      const scale = document.createElement('div'); scale.className = 'sub'
      scale.textContent = 'max ' + fmt(max, chart.unit) + ' · last ' + Math.max(1, Math.round((t1 - t0) / 1000)) + ' s'
      card.innerHTML = ''
      card.appendChild(svg); card.appendChild(legend); card.appendChild(scale)
    }
  }
  return { update() { take(); draw() } }
})()
`
